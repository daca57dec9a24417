package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetmq/fleetmq/broker/packet"
	"github.com/fleetmq/fleetmq/broker/topic"
)

// Read buffer sizing: a connection starts small so that idle connections are
// cheap, grows while reads fill the buffer, and shrinks once drained.
const (
	minReadBuffer  = 512
	maxReadBuffer  = 64 << 10
	maxWriteBatch  = 64 << 10 // flush the write buffer once it holds this much
	connectTimeout = 10 * time.Second
	writeTimeout   = 30 * time.Second
)

// outKind says what an outbound item is.
type outKind uint8

const (
	outAck      outKind = iota // PUBACK, PUBREC, PUBREL or PUBCOMP: typ, id, rc
	outPublish                 // a delivery: d, id, dup
	outPacket                  // any other packet, pre-built: pkt
	outPingresp                // PINGRESP
)

// outbound is one packet waiting for the connection's writer. Acks and
// PINGRESP are plain values so that the common control traffic does not
// allocate.
type outbound struct {
	kind outKind
	typ  packet.Type
	id   uint16
	rc   packet.ReasonCode
	dup  bool
	d    delivery
	pkt  packet.Packet
}

// conn is one client network connection. A reader goroutine runs for its
// whole life; its output is written by readers or a short-lived writer
// goroutine (writer.go), so an idle connection holds one goroutine and a
// small read buffer.
type conn struct {
	srv      *Server
	nc       net.Conn
	raw      *rawSocket // nc's socket for non-blocking reads and writes; nil unless plain TCP on Linux
	listener string

	// Set while handling CONNECT, read-only afterwards.
	version         packet.Version
	bridge          bool // another broker's bridge (packet.Connect.Bridge)
	clientID        string
	username        string
	keepAlive       time.Duration // 0 disables the read deadline
	sess            *session
	window          int    // outbound QoS 1/2 in flight allowed by the client
	clientMaxPacket int    // client's Maximum Packet Size, 0 = no limit
	clientAliasMax  uint16 // client's Topic Alias Maximum
	aliasMax        uint16 // our Topic Alias Maximum, as announced
	receiveMax      int    // our Receive Maximum, as announced
	maxPacket       int    // our Maximum Packet Size, as announced
	connectExpiry   uint32 // Session Expiry Interval from CONNECT
	will            *Message
	willDelay       time.Duration
	connected       atomic.Bool // CONNACK success queued

	// Reader goroutine only.
	rbuf        []byte
	rpos, rend  int
	inAliases   map[uint16]string
	normalClose bool          // DISCONNECT 0x00 received: discard the will
	backlogged  bool          // queueCtrl saw maxCtrlBacklog reached: throttle before the next read
	pending     pendingWrites // connections this reader writes to before its next read

	// Guarded by sess.mu once attached.
	ctrl      []outbound
	deferKick bool // the reader queued control packets; wake the writer before the next read
	writing   bool // a writer goroutine is running
	closing   bool // no more writes; the session must not hand us messages
	// farewell is the DISCONNECT reason closeWith left to the writer
	// because a write was under way; hasFarewell says there is one, and
	// that the writer is to send the control packets still queued before it.
	farewell    packet.ReasonCode
	hasFarewell bool
	// ctrlDrained, when set, is closed by the writer once it has taken
	// the control backlog (or stopped): the throttled reader waits on it.
	ctrlDrained chan struct{}

	// Writer goroutine only (one runs at a time).
	outAliases map[string]uint16
	nextAlias  uint16

	closed atomic.Bool
}

func newConn(srv *Server, nc net.Conn, listener string) *conn {
	return &conn{srv: srv, nc: nc, raw: newRawSocket(nc), listener: listener, rbuf: make([]byte, minReadBuffer)}
}

// logger returns a logger carrying the connection's identity. It is built
// per call, not kept, so that idle connections do not hold one.
func (c *conn) logger() *slog.Logger {
	l := c.srv.log.With("listener", c.listener, "remote", c.nc.RemoteAddr().String())
	if c.clientID != "" {
		l = l.With("client", c.clientID)
	}
	return l
}

// debug logs at debug level, building nothing when debug logs are off:
// connects and disconnects are too frequent to pay for a logger each.
func (c *conn) debug(msg string, args ...any) {
	if c.srv.log.Enabled(context.Background(), slog.LevelDebug) {
		c.logger().Debug(msg, args...)
	}
}

// serve handles CONNECT and then hands the connection to a fresh goroutine
// for the rest of its life. The handshake runs deep call chains (decoding,
// authentication, logging) that grow a goroutine's stack; starting the
// long-lived reader anew keeps an idle connection at a minimal stack.
func (c *conn) serve() {
	ok := false
	defer func() {
		if !ok {
			c.finish()
		}
	}()
	defer c.recoverPanic("connection handshake")
	if err := c.handshake(); err != nil {
		c.endOnError(err)
		return
	}
	ok = true
	go c.readLoop()
}

// readLoop reads and handles packets until the connection ends. It never
// panics: a bug in the handling of one connection is logged and costs that
// connection only.
func (c *conn) readLoop() {
	defer c.finish()
	defer c.recoverPanic("connection handling")
	// Whatever happens to this connection, the writer roles it took for
	// others must be exercised, or their output would wait forever.
	defer c.pending.flush()
	if c.keepAlive == 0 {
		// Keep alive off [MQTT-3.1.2-10]: nothing times the connection out,
		// not even the deadline the handshake set for CONNECT (readPacket
		// replaces it before every read only when keep alive is on).
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	for {
		fh, body, err := c.readPacket()
		if err != nil {
			c.endOnError(err)
			return
		}
		if c.closed.Load() {
			// Closed by another goroutine (a takeover, a revoked user)
			// while the socket waits for its writer's last bytes: what the
			// client sent meanwhile is not acted on.
			return
		}
		done, err := c.handle(fh, body)
		c.pending.flush()
		if err != nil {
			c.endOnError(err)
			return
		}
		if done {
			return
		}
		c.throttle()
	}
}

// maxCtrlBacklog bounds the control packets (acks, PINGRESP) queued for one
// connection. A client that keeps publishing without reading its
// acknowledgements would otherwise grow this queue for as long as the
// write timeout lets it; past the bound the reader stops reading until the
// writer has taken the backlog, so TCP pushes back on the client instead.
const maxCtrlBacklog = 4096

// throttle blocks the reader while the control backlog is at its bound.
// Only the reader queues control packets (queueCtrl), so the flag it set
// there keeps the common case free of a lock on the per-packet path.
func (c *conn) throttle() {
	s := c.sess
	if !c.backlogged || s == nil {
		return
	}
	c.backlogged = false
	s.mu.Lock()
	if len(c.ctrl) < maxCtrlBacklog || c.closing || c.closed.Load() {
		s.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	c.ctrlDrained = ch
	c.deferKick = false
	c.kickLocked()
	s.mu.Unlock()
	<-ch
}

// releaseReaderLocked wakes a reader waiting in throttle. Callers hold
// sess.mu.
func (c *conn) releaseReaderLocked() {
	if c.ctrlDrained != nil {
		close(c.ctrlDrained)
		c.ctrlDrained = nil
	}
}

// recoverPanic turns a panic into a logged, counted close of this
// connection. Deferred by every goroutine of a connection.
func (c *conn) recoverPanic(where string) {
	if r := recover(); r != nil {
		c.logPanic(where, r)
		c.closeWith(packet.ImplementationSpecificError)
	}
}

// logPanic counts and logs a recovered panic with its stack.
func (c *conn) logPanic(where string, r any) {
	c.srv.stats.Panics.Add(1)
	c.logger().Error("Recovered panic in "+where, "panic", r, "stack", string(debug.Stack()))
}

// errClientGone marks a read that ended because the peer went away.
var errClientGone = errors.New("connection closed by client")

// errProxyHeader marks a connection to a proxyProtocol listener that did
// not start with a valid PROXY protocol header.
var errProxyHeader = errors.New("no valid PROXY protocol header")

// errKeepAlive marks a read deadline hit: nothing arrived within 1.5 times
// the keep alive [MQTT-3.1.2-24].
var errKeepAlive = errors.New("keep alive timeout")

// endOnError closes the connection for err, telling a v5 client why with
// DISCONNECT, and counts it.
func (c *conn) endOnError(err error) {
	st := &c.srv.stats
	var pe *packet.Error
	var rc packet.ReasonCode
	switch {
	case errors.Is(err, errClientGone), c.closed.Load():
		c.debug("Connection closed", "reason", err)
		c.closeNow()
		return
	case errors.Is(err, errProxyHeader):
		// Most likely a load balancer without the PROXY protocol turned on,
		// or a client that bypasses it: say so, it is not the client's doing.
		st.ProxyHeaderErrors.Add(1)
		if ok, skipped := c.srv.proxyHeaderLog.allow(time.Now(), proxyHeaderLogInterval); ok {
			c.logger().Info("Closing connection without a valid PROXY protocol header",
				"error", err, "suppressed", skipped)
		}
		c.closeNow()
		return
	case errors.Is(err, errKeepAlive):
		st.KeepAliveTimeouts.Add(1)
		c.logger().Info("Client keep alive timed out", "keepAlive", c.keepAlive)
		c.closeWith(packet.KeepAliveTimeout)
		return
	case errors.As(err, &pe):
		rc = pe.Code
	case errors.As(err, &rc):
	default:
		c.logger().Info("Connection error", "error", err)
		c.closeWith(packet.UnspecifiedError)
		return
	}
	countInvalid(st, rc)
	c.logger().Info("Closing connection after invalid packet", "reason", rc.Error(), "code", fmt.Sprintf("0x%02X", byte(rc)), "detail", err)
	c.closeWith(rc)
}

// farewellTimeout bounds the last write to a connection being closed: the
// DISCONNECT, and the write under way when closeWith was called.
const farewellTimeout = time.Second

// closeWith closes the connection, first sending what it still owes the
// client, if it got as far as a CONNACK: the control packets already queued
// (the CONNACK itself, acks of the packets handled before the one that ended
// it) and, to a v5 client, a DISCONNECT with rc. A client that pipelined
// CONNECT and a bad packet thus still sees its CONNACK first [MQTT-3.2.0-1],
// and acks of what the broker accepted, so it does not send those again.
// Safe from any goroutine, once.
//
// These last packets must not land inside a packet that the connection's
// writer is sending, so they go out through the writer role: taken here when
// nobody holds it, or else left to the holder, who sends them after its
// current write (takeLocked) and closes. That write gets farewellTimeout to
// finish; a client that does not read by then is closed without them.
func (c *conn) closeWith(rc packet.ReasonCode) {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	if !c.connected.Load() {
		_ = c.nc.Close()
		return
	}
	s := c.sess
	s.mu.Lock()
	c.closing = true
	if c.writing {
		c.farewell, c.hasFarewell = rc, true
		s.mu.Unlock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(farewellTimeout))
		return
	}
	c.writing = true // for good: closing keeps anybody else from writing
	owed := c.takeOwedLocked(nil)
	s.mu.Unlock()
	c.sayFarewell(rc, owed)
}

// takeCtrlLocked moves the queued control packets to batch. Callers hold
// sess.mu.
func (c *conn) takeCtrlLocked(batch []outbound) []outbound {
	batch = append(batch, c.ctrl...)
	clear(c.ctrl)
	c.ctrl = c.ctrl[:0]
	return batch
}

// takeOwedLocked is takeCtrlLocked for a connection that is closing: it
// empties the control queue and keeps what the client is owed.
func (c *conn) takeOwedLocked(owed []outbound) []outbound {
	owed = appendOwed(owed, c.ctrl)
	clear(c.ctrl)
	c.ctrl = c.ctrl[:0]
	return owed
}

// appendOwed appends the packets of batch that a connection being closed
// still sends: all but deliveries. A delivery not sent stays in its session
// (QoS 1 and 2 are sent again on the next connection); acks, SUBACKs and
// the CONNACK answer what the client sent, and without them it would send
// the same again, or see its DISCONNECT before its CONNACK.
func appendOwed(owed, batch []outbound) []outbound {
	for _, o := range batch {
		if o.kind != outPublish {
			owed = append(owed, o)
		}
	}
	return owed
}

// sayFarewell writes owed, then a DISCONNECT with rc to a v5 client, in one
// write, and closes the connection. Callers hold the writer role, with the
// connection closing.
func (c *conn) sayFarewell(rc packet.ReasonCode, owed []outbound) {
	var buf []byte
	now := c.srv.now()
	for i := range owed {
		buf = c.encode(buf, &owed[i], now)
	}
	if c.version == packet.V5 {
		d := packet.Disconnect{ReasonCode: rc}
		if b, err := d.Encode(buf, packet.V5); err == nil {
			buf = b
		}
	}
	if len(buf) > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(farewellTimeout))
		n, _ := c.nc.Write(buf)
		c.srv.stats.BytesSent.Add(int64(n))
	}
	_ = c.nc.Close()
}

// closeNow closes the connection without telling the client.
func (c *conn) closeNow() {
	if c.closed.CompareAndSwap(false, true) {
		_ = c.nc.Close()
	}
}

// finish runs when the reader ends: it detaches the session and counts.
func (c *conn) finish() {
	c.closeNow()
	c.srv.connEnded(c)
}

// readPacket returns the next complete packet. body points into the read
// buffer and is valid until the next call: decoders work in place.
func (c *conn) readPacket() (packet.FixedHeader, []byte, error) {
	for {
		if c.rend > c.rpos {
			fh, n, err := packet.ReadFixedHeader(c.rbuf[c.rpos:c.rend])
			if err != nil {
				return fh, nil, err
			}
			if n > 0 {
				total := n + fh.Remaining
				if c.maxPacket > 0 && total > c.maxPacket {
					// [MQTT-3.2.2-15]: larger than the Maximum Packet Size we announced.
					return fh, nil, packet.Errorf(packet.PacketTooLarge, "%s of %d bytes exceeds the maximum packet size %d", fh.Type, total, c.maxPacket)
				}
				if c.rend-c.rpos >= total {
					body := c.rbuf[c.rpos+n : c.rpos+total : c.rpos+total]
					c.rpos += total
					return fh, body, nil
				}
				c.makeRoom(total)
			} else {
				c.makeRoom(5) // a fixed header is at most 5 bytes
			}
		} else {
			c.rpos, c.rend = 0, 0
			if len(c.rbuf) > 4*minReadBuffer*8 {
				// Drained after a burst: give the big buffer back.
				c.rbuf = make([]byte, minReadBuffer)
			}
		}
		c.flushDeferredKick()
		if c.keepAlive > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(c.keepAlive * 3 / 2))
		}
		n, err := c.read(c.rbuf[c.rend:])
		if n > 0 {
			c.rend += n
			c.srv.stats.BytesReceived.Add(int64(n))
			if c.rend == len(c.rbuf) && len(c.rbuf) < maxReadBuffer && c.rpos == 0 {
				// The read filled the buffer: more is waiting, read bigger.
				c.grow(2 * len(c.rbuf))
			}
		}
		if err != nil {
			if n > 0 && c.rend > c.rpos {
				// Handle what arrived before the error first.
				continue
			}
			if errors.Is(err, errProxyHeader) {
				return packet.FixedHeader{}, nil, err
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !c.closed.Load() {
				return packet.FixedHeader{}, nil, errKeepAlive
			}
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) || isConnReset(err) {
				return packet.FixedHeader{}, nil, errClientGone
			}
			return packet.FixedHeader{}, nil, fmt.Errorf("%w: %v", errClientGone, err)
		}
	}
}

// read reads from the network into b.
func (c *conn) read(b []byte) (int, error) {
	if c.raw != nil && !c.raw.headerBuffered {
		return c.raw.read(b)
	}
	n, err := c.nc.Read(b)
	if err != nil && strings.HasPrefix(err.Error(), "proxyproto: ") {
		// Every header error of go-proxyproto says where it comes from so.
		return n, fmt.Errorf("%w: %v", errProxyHeader, err)
	}
	if c.raw != nil && err == nil && len(b) >= proxyHeaderBuffer {
		// The first read of a PROXY protocol connection read the header
		// and handed over all its buffer held after it, which is at most
		// proxyHeaderBuffer bytes: the socket has the rest.
		c.raw.headerBuffered = false
	}
	return n, err
}

func isConnReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// makeRoom ensures the buffer can hold need bytes from rpos.
func (c *conn) makeRoom(need int) {
	if len(c.rbuf)-c.rpos >= need {
		return
	}
	if c.rpos > 0 && len(c.rbuf) >= need {
		copy(c.rbuf, c.rbuf[c.rpos:c.rend])
		c.rend -= c.rpos
		c.rpos = 0
		return
	}
	c.grow(max(need, 2*len(c.rbuf)))
}

func (c *conn) grow(size int) {
	buf := make([]byte, size)
	c.rend = copy(buf, c.rbuf[c.rpos:c.rend])
	c.rpos = 0
	c.rbuf = buf
}

// handshake reads and answers CONNECT [MQTT-3.1.0-1]: the first packet must
// be CONNECT, and anything else closes the connection.
func (c *conn) handshake() error {
	_ = c.nc.SetReadDeadline(time.Now().Add(connectTimeout))
	// The limit holds for CONNECT too: without it a client could make us
	// buffer a packet of up to 256 MiB before we know who it is.
	c.maxPacket = c.srv.limits().MaxPacketSize
	fh, body, err := c.readPacket()
	if err != nil {
		if errors.Is(err, errKeepAlive) {
			return errClientGone
		}
		return err
	}
	if fh.Type != packet.CONNECT {
		c.srv.stats.ProtocolErrors.Add(1)
		return fmt.Errorf("%w: first packet was %s, not CONNECT", errClientGone, fh.Type)
	}
	cp := &packet.Connect{}
	if err := cp.Decode(fh, body); err != nil {
		c.version = cp.Version
		var pe *packet.Error
		rc := packet.MalformedPacket
		if errors.As(err, &pe) {
			rc = pe.Code
		}
		countInvalid(&c.srv.stats, rc)
		if cp.Version != packet.V5 && rc != packet.UnsupportedProtocolVersion {
			// [MQTT-3.1.4-1] (3.1.1): a CONNECT that does not conform is
			// answered by closing the connection, without a CONNACK.
			rc = packet.MalformedPacket
		}
		c.refuse(rc, err.Error())
		return fmt.Errorf("%w: invalid CONNECT: %v", errClientGone, err)
	}
	c.version, c.bridge = cp.Version, cp.Bridge
	return c.srv.connect(c, cp)
}

// countInvalid counts a connection ended for an invalid packet: the codes
// that say its bytes were wrong as malformed, the others as protocol errors.
func countInvalid(st *Stats, rc packet.ReasonCode) {
	if rc == packet.MalformedPacket || rc == packet.TopicNameInvalid || rc == packet.PacketTooLarge ||
		rc == packet.TopicAliasInvalid || rc == packet.PayloadFormatInvalid {
		st.MalformedPackets.Add(1)
	} else {
		st.ProtocolErrors.Add(1)
	}
}

// refuse answers CONNECT with a failure and closes [MQTT-3.2.2-6]. A v3
// client gets the nearest 3.1.1 return code; a malformed CONNECT from a v3
// client just gets closed, as the 3.1.1 spec says.
func (c *conn) refuse(rc packet.ReasonCode, reason string) {
	c.srv.stats.ConnectsRefused.Add(1)
	c.logger().Info("Refused connection", "reason", rc.Error(), "detail", reason)
	if c.version == packet.V5 || rc == packet.UnsupportedProtocolVersion || (c.version != 0 && rc != packet.MalformedPacket && rc != packet.ProtocolError) {
		v := c.version
		if v == 0 || rc == packet.UnsupportedProtocolVersion && v != packet.V5 {
			v = packet.V311
		}
		ack := packet.Connack{ReasonCode: rc}
		if b, err := ack.Encode(nil, v); err == nil {
			_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.nc.Write(b)
		}
	}
	c.closeNow()
}

// handle dispatches one packet after CONNECT. done reports a clean end.
func (c *conn) handle(fh packet.FixedHeader, body []byte) (done bool, err error) {
	switch fh.Type {
	case packet.PUBLISH:
		return false, c.handlePublish(fh, body)
	case packet.PUBACK, packet.PUBREC, packet.PUBREL, packet.PUBCOMP:
		return false, c.handleAck(fh, body)
	case packet.SUBSCRIBE:
		return false, c.handleSubscribe(fh, body)
	case packet.UNSUBSCRIBE:
		return false, c.handleUnsubscribe(fh, body)
	case packet.PINGREQ:
		if fh.Remaining != 0 {
			return false, packet.Errorf(packet.MalformedPacket, "PINGREQ with a body")
		}
		c.queueCtrl(outbound{kind: outPingresp})
		return false, nil
	case packet.DISCONNECT:
		return true, c.handleDisconnect(fh, body)
	case packet.CONNECT:
		// [MQTT-3.1.0-2]: a second CONNECT is a protocol error.
		return false, packet.Errorf(packet.ProtocolError, "second CONNECT on one connection")
	case packet.AUTH:
		if c.version != packet.V5 {
			return false, packet.Errorf(packet.MalformedPacket, "AUTH is not an MQTT %s packet", c.version)
		}
		// [MQTT-4.12.0-1]: AUTH without an authentication method in
		// CONNECT is a protocol error; we offer no enhanced authentication.
		return false, packet.Errorf(packet.ProtocolError, "AUTH received but no authentication method was negotiated")
	default:
		return false, packet.Errorf(packet.ProtocolError, "%s is not sent by clients", fh.Type)
	}
}

var (
	publishPool     = sync.Pool{New: func() any { return new(packet.Publish) }}
	subscribePool   = sync.Pool{New: func() any { return new(packet.Subscribe) }}
	unsubscribePool = sync.Pool{New: func() any { return new(packet.Unsubscribe) }}
)

func (c *conn) handlePublish(fh packet.FixedHeader, body []byte) error {
	p := publishPool.Get().(*packet.Publish)
	defer publishPool.Put(p)
	if err := p.Decode(fh, body, c.version); err != nil {
		return err
	}
	srv := c.srv
	tp := p.Topic
	if c.version == packet.V5 {
		props := &p.Properties
		if props.HasTopicAlias {
			a := props.TopicAlias
			if a == 0 || a > c.aliasMax {
				// [MQTT-3.3.2-9, MQTT-3.3.2-10]
				return packet.Errorf(packet.TopicAliasInvalid, "topic alias %d outside 1..%d", a, c.aliasMax)
			}
			if len(tp) > 0 {
				if c.inAliases == nil {
					c.inAliases = make(map[uint16]string)
				}
				c.inAliases[a] = string(tp)
			} else {
				t, ok := c.inAliases[a]
				if !ok {
					return packet.Errorf(packet.ProtocolError, "topic alias %d used before it was set", a)
				}
				tp = stringToBytes(t)
			}
		} else if len(tp) == 0 {
			return packet.Errorf(packet.ProtocolError, "PUBLISH without topic name or topic alias")
		}
		if len(props.SubscriptionIDs) > 0 {
			// [MQTT-3.3.4-6]: a client must not send Subscription Identifiers.
			return packet.Errorf(packet.ProtocolError, "PUBLISH from a client carries a subscription identifier")
		}
	}
	lim := srv.limits()
	if err := topic.ValidateName(bytesToString(tp), lim.MaxTopicLength, lim.MaxTopicLevels); err != nil {
		return err
	}
	srv.stats.MessagesReceived[p.QoS].Add(1)
	id := p.PacketID
	if p.QoS == 2 {
		s := c.sess
		s.mu.Lock()
		if _, dup := s.inboundQoS2[id]; dup {
			// Already routed: answer again but never deliver twice [MQTT-4.3.3-9].
			s.mu.Unlock()
			c.queueCtrl(outbound{kind: outAck, typ: packet.PUBREC, id: id})
			return nil
		}
		if len(s.inboundQoS2) >= c.receiveMax {
			s.mu.Unlock()
			// [MQTT-3.3.4-7]: more unacknowledged QoS 2 than our Receive Maximum.
			return packet.Errorf(packet.ReceiveMaximumExceeded, "more than %d QoS 2 messages unacknowledged", c.receiveMax)
		}
		s.mu.Unlock()
	}
	rc := packet.Success
	name := bytesToString(tp)
	if !srv.mayPublish(c, name) {
		rc = packet.NotAuthorized
	} else {
		m := newMessage(p, tp, c.clientID, c.username, srv.now())
		// The last packet of the buffer: this reader is about to wait,
		// so it writes to the subscribers itself (see writer.go).
		var pw *pendingWrites
		if c.rpos == c.rend {
			pw = &c.pending
		}
		if n := srv.publish(m, pw); n == 0 {
			rc = packet.NoMatchingSubscribers
		}
	}
	switch p.QoS {
	case 1:
		if c.version != packet.V5 && rc == packet.NoMatchingSubscribers {
			rc = packet.Success
		}
		if c.version != packet.V5 && rc.IsError() {
			rc = packet.Success // v3 has no way to say no; the message is dropped
		}
		c.queueCtrl(outbound{kind: outAck, typ: packet.PUBACK, id: id, rc: rc})
	case 2:
		if c.version != packet.V5 {
			rc = packet.Success
		}
		if !rc.IsError() {
			s := c.sess
			s.mu.Lock()
			if s.inboundQoS2 == nil {
				s.inboundQoS2 = make(map[uint16]struct{})
			}
			s.inboundQoS2[id] = struct{}{}
			s.mu.Unlock()
		}
		c.queueCtrl(outbound{kind: outAck, typ: packet.PUBREC, id: id, rc: rc})
	}
	return nil
}

func (c *conn) handleAck(fh packet.FixedHeader, body []byte) error {
	var a packet.Ack
	if err := a.Decode(fh, body, c.version); err != nil {
		return err
	}
	s := c.sess
	switch a.Type {
	case packet.PUBACK, packet.PUBCOMP:
		// An unknown id is harmless (e.g. acked before a takeover); ignore.
		s.ack(c, a.Type, a.PacketID)
	case packet.PUBREC:
		if a.ReasonCode.IsError() {
			s.dropInflight(c, a.PacketID)
			return nil
		}
		rc := packet.Success
		if !s.ack(c, packet.PUBREC, a.PacketID) {
			rc = packet.PacketIdentifierNotFound
		}
		c.queueCtrl(outbound{kind: outAck, typ: packet.PUBREL, id: a.PacketID, rc: rc})
	case packet.PUBREL:
		s.mu.Lock()
		_, ok := s.inboundQoS2[a.PacketID]
		delete(s.inboundQoS2, a.PacketID)
		s.mu.Unlock()
		rc := packet.Success
		if !ok {
			rc = packet.PacketIdentifierNotFound
		}
		c.queueCtrl(outbound{kind: outAck, typ: packet.PUBCOMP, id: a.PacketID, rc: rc})
	}
	return nil
}

// retainedRequest is a subscription that must be sent the retained messages
// it matches once its SUBACK is queued.
type retainedRequest struct {
	filter string
	opts   topic.Options
}

func (c *conn) handleSubscribe(fh packet.FixedHeader, body []byte) error {
	p := subscribePool.Get().(*packet.Subscribe)
	defer subscribePool.Put(p)
	if err := p.Decode(fh, body, c.version); err != nil {
		return err
	}
	srv := c.srv
	lim := srv.limits()
	var subID uint32
	if ids := p.Properties.SubscriptionIDs; len(ids) > 0 {
		subID = ids[0]
	}
	codes := make([]packet.ReasonCode, len(p.Subscriptions))
	var retained []retainedRequest
	for i, sub := range p.Subscriptions {
		codes[i] = c.subscribeOne(sub, subID, lim.MaxTopicLength, lim.MaxTopicLevels, &retained)
		if codes[i] == packet.ProtocolError {
			return packet.Errorf(packet.ProtocolError, "No Local set on shared subscription %q", sub.Filter)
		}
	}
	c.queueCtrl(outbound{kind: outPacket, pkt: &packet.Suback{PacketID: p.PacketID, ReasonCodes: codes}})
	for _, r := range retained {
		srv.sendRetained(c.sess, r.filter, r.opts)
	}
	return nil
}

// subscribeOne adds one subscription and returns its SUBACK code.
func (c *conn) subscribeOne(sub packet.Subscription, subID uint32, maxLen, maxLevels int, retained *[]retainedRequest) packet.ReasonCode {
	fail := func(rc packet.ReasonCode) packet.ReasonCode {
		if c.version != packet.V5 {
			return 0x80 // v3 SUBACK knows only "failure"
		}
		return rc
	}
	if err := topic.ValidateFilter(sub.Filter, maxLen, maxLevels); err != nil {
		return fail(packet.TopicFilterInvalid)
	}
	_, inner, shared, err := topic.ParseShared(sub.Filter)
	if err != nil {
		return fail(packet.TopicFilterInvalid)
	}
	if !shared {
		// ParseShared leaves inner empty for a plain filter; the ACL check
		// and the retained lookup need the filter itself.
		inner = sub.Filter
	}
	if shared && sub.NoLocal {
		return packet.ProtocolError // [MQTT-3.8.3-4]
	}
	if !c.srv.maySubscribe(c, inner) {
		return fail(packet.NotAuthorized)
	}
	opts := topic.Options{
		QoS:               sub.QoS,
		NoLocal:           sub.NoLocal,
		RetainAsPublished: sub.RetainAsPublished,
		RetainHandling:    sub.RetainHandling,
		SubscriptionID:    subID,
	}
	if c.bridge && !shared {
		// A 3.1.1 bridge cannot ask for these options; its bridge bit means
		// them, as in Mosquitto and EMQX. What it published is not sent back
		// (it would loop between the two brokers), and retain flags arrive
		// as published, so that what it forwards stays retained over there.
		opts.NoLocal, opts.RetainAsPublished = true, true
	}
	existed := c.srv.subscribe(c.sess, sub.Filter, opts)
	// Retained messages are not sent to shared subscriptions [MQTT-4.8.2-?];
	// Retain Handling 1 sends them only for a new subscription [MQTT-3.3.1-10].
	if !shared && (sub.RetainHandling == 0 || sub.RetainHandling == 1 && !existed) {
		*retained = append(*retained, retainedRequest{filter: inner, opts: opts})
	}
	return packet.ReasonCode(sub.QoS)
}

func (c *conn) handleUnsubscribe(fh packet.FixedHeader, body []byte) error {
	p := unsubscribePool.Get().(*packet.Unsubscribe)
	defer unsubscribePool.Put(p)
	if err := p.Decode(fh, body, c.version); err != nil {
		return err
	}
	codes := make([]packet.ReasonCode, len(p.Filters))
	for i, f := range p.Filters {
		if c.srv.unsubscribe(c.sess, f) {
			codes[i] = packet.Success
		} else {
			codes[i] = packet.NoSubscriptionExisted
		}
	}
	c.queueCtrl(outbound{kind: outPacket, pkt: &packet.Unsuback{PacketID: p.PacketID, ReasonCodes: codes}})
	return nil
}

func (c *conn) handleDisconnect(fh packet.FixedHeader, body []byte) error {
	var d packet.Disconnect
	if err := d.Decode(fh, body, c.version); err != nil {
		return err
	}
	if c.version == packet.V5 && d.Properties.HasSessionExpiry {
		// [MQTT-3.14.2-2]: a session that was to end at disconnect cannot be
		// extended by DISCONNECT.
		if c.connectExpiry == 0 && d.Properties.SessionExpiry != 0 {
			return packet.Errorf(packet.ProtocolError, "DISCONNECT sets a session expiry but CONNECT had none")
		}
		s := c.sess
		s.mu.Lock()
		s.expiry = c.srv.capExpiry(d.Properties.SessionExpiry)
		s.mu.Unlock()
	}
	// [MQTT-3.1.2-10]: only a normal DISCONNECT (0x00) deletes the will;
	// 0x04 and the error codes leave it to be published.
	c.normalClose = d.ReasonCode == packet.Success
	c.debug("Client disconnected", "reason", d.ReasonCode.Error())
	c.closeNow()
	return nil
}

// encode appends one outbound packet to buf.
func (c *conn) encode(buf []byte, o *outbound, now time.Time) []byte {
	var err error
	switch o.kind {
	case outAck:
		a := packet.Ack{Type: o.typ, PacketID: o.id, ReasonCode: o.rc}
		buf, err = a.Encode(buf, c.version)
	case outPingresp:
		buf = append(buf, byte(packet.PINGRESP)<<4, 0)
	case outPacket:
		buf, err = o.pkt.Encode(buf, c.version)
	case outPublish:
		buf = c.encodePublish(buf, o, now)
	}
	if err != nil {
		// Encoding our own packets cannot fail unless there is a bug.
		c.logger().Error("Encoding an outbound packet failed", "error", err)
	}
	return buf
}

// encodePublish appends one PUBLISH for a delivery, applying what is
// particular to this client: expiry countdown, topic alias, subscription
// identifiers and its Maximum Packet Size.
func (c *conn) encodePublish(buf []byte, o *outbound, now time.Time) []byte {
	d := &o.d
	m := d.msg
	st := &c.srv.stats
	if m.expired(now) {
		// [MQTT-3.3.2-5]: an expired message is not delivered.
		st.DroppedExpired.Add(1)
		if o.id != 0 {
			c.sess.dropInflight(c, o.id)
		}
		return buf
	}
	p := packet.Publish{
		Dup:      o.dup,
		QoS:      d.qos,
		Retain:   d.retain,
		Topic:    stringToBytes(m.Topic),
		PacketID: o.id,
		Payload:  m.Payload,
	}
	newAlias := uint16(0)
	if c.version == packet.V5 {
		pp := &p.Properties
		if mp := m.Props; mp != nil {
			pp.PayloadFormat, pp.HasPayloadFormat = mp.PayloadFormat, mp.HasPayloadFormat
			pp.ContentType = mp.ContentType
			pp.ResponseTopic = mp.ResponseTopic
			pp.CorrelationData = mp.CorrelationData
			pp.User = mp.User
		}
		if !m.Expires.IsZero() {
			// [MQTT-3.3.2-6]: the interval sent is what is left of it.
			left := m.Expires.Sub(now)
			pp.MessageExpiry = uint32((left + time.Second - 1) / time.Second)
			pp.HasMessageExpiry = true
		}
		pp.SubscriptionIDs = d.subIDs
		if c.clientAliasMax > 0 {
			if a, ok := c.outAliases[m.Topic]; ok {
				pp.TopicAlias, pp.HasTopicAlias = a, true
				p.Topic = nil
			} else if c.nextAlias < c.clientAliasMax {
				c.nextAlias++
				newAlias = c.nextAlias
				if c.outAliases == nil {
					c.outAliases = make(map[string]uint16)
				}
				c.outAliases[m.Topic] = newAlias
				pp.TopicAlias, pp.HasTopicAlias = newAlias, true
			}
		}
	}
	start := len(buf)
	out, err := p.Encode(buf, c.version)
	if err != nil {
		c.logger().Error("Encoding PUBLISH failed", "topic", m.Topic, "error", err)
		return buf
	}
	if c.clientMaxPacket > 0 && len(out)-start > c.clientMaxPacket {
		// [MQTT-3.1.2-25]: never send more than the client accepts; the
		// message is dropped for this client as if it had been delivered.
		st.DroppedTooLarge.Add(1)
		if newAlias != 0 {
			delete(c.outAliases, m.Topic)
			c.nextAlias--
		}
		if o.id != 0 {
			c.sess.dropInflight(c, o.id)
		}
		return out[:start]
	}
	st.MessagesSent[d.qos].Add(1)
	return out
}
