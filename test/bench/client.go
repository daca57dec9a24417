package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// The load tool's MQTT client is deliberately minimal: the machine it runs on
// has two cores shared with the broker under test, so every cycle the client
// spends is a cycle the broker does not get. A connection decodes packets in
// place from one read buffer, batches its writes in a bufio.Writer that is
// flushed once per burst, and runs exactly one reader goroutine; there is no
// per-message goroutine, channel or allocation.

const (
	readBufferSize  = 64 << 10
	writeBufferSize = 32 << 10
	// maxFixedHeader is one type byte plus a 4-byte variable byte integer.
	maxFixedHeader = 5
)

// epoch is the origin of the monotonic clock stamped into payloads: both ends
// of a measurement live in this process, so nanoseconds since epoch compare
// directly and wall-clock jumps cannot distort a latency.
var epoch = time.Now()

// monoNow returns monotonic nanoseconds since epoch.
func monoNow() int64 { return int64(time.Since(epoch)) }

// dialOptions describe one client connection.
type dialOptions struct {
	addr      string
	version   packet.Version
	clientID  string
	keepAlive uint16
	// localIP, when set, is the source address; spreading many connections
	// over 127.0.0.x keeps each address within its ephemeral port range.
	localIP net.IP
	timeout time.Duration
	// small selects small buffers, for idle connections that never carry load.
	small bool
	// proxyHeader sends a PROXY protocol v2 header before CONNECT.
	proxyHeader bool
}

// conn is one MQTT connection of the load tool.
type conn struct {
	nc      net.Conn
	version packet.Version

	// Read side, owned by the reader goroutine (or by the setup code before
	// the reader starts): rbuf[rstart:rend] holds bytes not yet decoded.
	rbuf         []byte
	rstart, rend int

	// Write side: wmu serialises the publisher goroutine and the reader
	// goroutine, which both write (PUBLISH and acknowledgements).
	wmu           sync.Mutex
	bw            *bufio.Writer
	ackPending    bool
	ackScratch    packet.Ack
	serverRecvMax int // Receive Maximum from a v5 CONNACK, 0 when not advertised
}

// dial connects, sends CONNECT and waits for a successful CONNACK.
func dial(ctx context.Context, o dialOptions) (*conn, error) {
	d := net.Dialer{Timeout: o.timeout}
	if o.localIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: o.localIP}
	}
	nc, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", o.addr, err)
	}
	if o.proxyHeader {
		header := proxyproto.HeaderProxyFromAddrs(2, nc.LocalAddr(), nc.RemoteAddr())
		if _, err := header.WriteTo(nc); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("sending the PROXY header to %s: %w", o.addr, err)
		}
	}
	rsize, wsize := readBufferSize, writeBufferSize
	if o.small {
		rsize, wsize = 256, 256
	}
	c := &conn{
		nc:      nc,
		version: o.version,
		rbuf:    make([]byte, rsize),
		bw:      bufio.NewWriterSize(nc, wsize),
	}
	if err := c.handshake(o); err != nil {
		_ = nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *conn) handshake(o dialOptions) error {
	connect := packet.Connect{
		ProtocolName: "MQTT",
		Version:      o.version,
		CleanStart:   true,
		KeepAlive:    o.keepAlive,
		ClientID:     o.clientID,
	}
	if o.version == packet.V5 {
		// Let the broker push as fast as it can: the subscriber acknowledges
		// every message as soon as it is read.
		connect.Properties.ReceiveMaximum = 65535
		connect.Properties.HasReceiveMaximum = true
	}
	deadline := time.Now().Add(o.timeout)
	if err := c.writeAndFlush(&connect, deadline); err != nil {
		return fmt.Errorf("sending CONNECT as %q: %w", o.clientID, err)
	}
	fh, body, err := c.readPacket(deadline)
	if err != nil {
		return fmt.Errorf("waiting for CONNACK for %q: %w", o.clientID, err)
	}
	if fh.Type != packet.CONNACK {
		return fmt.Errorf("waiting for CONNACK for %q: got %s", o.clientID, fh.Type)
	}
	var ack packet.Connack
	if err := ack.Decode(fh, body, c.version); err != nil {
		return fmt.Errorf("decoding CONNACK for %q: %w", o.clientID, err)
	}
	if ack.ReasonCode != packet.Success {
		// The codec maps a 3.1.1 return code to the v5 reason code of the
		// same meaning, so one error covers both versions.
		return fmt.Errorf("broker refused connection %q: %w", o.clientID, ack.ReasonCode)
	}
	if ack.Properties.HasReceiveMaximum {
		c.serverRecvMax = int(ack.Properties.ReceiveMaximum)
	}
	return nil
}

// subscribe sends one SUBSCRIBE and waits for its SUBACK. It must be called
// before the reader goroutine starts.
func (c *conn) subscribe(filter string, qos byte, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	sub := packet.Subscribe{
		PacketID:      1,
		Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}},
	}
	if err := c.writeAndFlush(&sub, deadline); err != nil {
		return fmt.Errorf("subscribing to %q: %w", filter, err)
	}
	for {
		fh, body, err := c.readPacket(deadline)
		if err != nil {
			return fmt.Errorf("waiting for SUBACK for %q: %w", filter, err)
		}
		if fh.Type != packet.SUBACK {
			// A retained message or similar may arrive first; the run
			// filters foreign payloads anyway, so drop it.
			continue
		}
		var ack packet.Suback
		if err := ack.Decode(fh, body, c.version); err != nil {
			return fmt.Errorf("decoding SUBACK for %q: %w", filter, err)
		}
		if len(ack.ReasonCodes) != 1 {
			return fmt.Errorf("SUBACK for %q carries %d reason codes, want 1", filter, len(ack.ReasonCodes))
		}
		if code := ack.ReasonCodes[0]; code.IsError() {
			return fmt.Errorf("broker refused subscription %q: %w", filter, code)
		} else if byte(code) != qos {
			return fmt.Errorf("broker granted QoS %d for %q, want %d", byte(code), filter, qos)
		}
		return nil
	}
}

// writeAndFlush encodes p and flushes it, for the setup phase.
func (c *conn) writeAndFlush(p packet.Packet, deadline time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.nc.SetWriteDeadline(deadline); err != nil {
		return err
	}
	defer c.nc.SetWriteDeadline(time.Time{})
	buf, err := p.Encode(c.bw.AvailableBuffer(), c.version)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", p.PacketType(), err)
	}
	if _, err := c.bw.Write(buf); err != nil {
		return err
	}
	return c.bw.Flush()
}

// nextPacket returns the next complete packet already in the read buffer,
// advancing past it. ok is false when more bytes are needed; the body
// aliases the read buffer and is valid until the next read.
func (c *conn) nextPacket() (fh packet.FixedHeader, body []byte, ok bool, err error) {
	b := c.rbuf[c.rstart:c.rend]
	fh, n, err := packet.ReadFixedHeader(b)
	if err != nil {
		return fh, nil, false, fmt.Errorf("decoding fixed header from broker: %w", err)
	}
	if n == 0 {
		return fh, nil, false, nil // the header itself is incomplete
	}
	total := n + fh.Remaining
	if total > len(b) {
		if total > len(c.rbuf) {
			// A packet larger than the buffer: grow once to fit it.
			grown := make([]byte, total+readBufferSize)
			c.rend = copy(grown, b)
			c.rstart = 0
			c.rbuf = grown
		}
		return fh, nil, false, nil
	}
	c.rstart += total
	return fh, b[n:total], true, nil
}

// fill reads more bytes from the connection, compacting the buffer first.
func (c *conn) fill() error {
	if c.rstart == c.rend {
		c.rstart, c.rend = 0, 0
	} else if c.rstart > 0 && len(c.rbuf)-c.rend < len(c.rbuf)/4 {
		c.rend = copy(c.rbuf, c.rbuf[c.rstart:c.rend])
		c.rstart = 0
	}
	if c.rend == len(c.rbuf) {
		grown := make([]byte, 2*len(c.rbuf))
		c.rend = copy(grown, c.rbuf[c.rstart:c.rend])
		c.rstart = 0
		c.rbuf = grown
	}
	n, err := c.nc.Read(c.rbuf[c.rend:])
	c.rend += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// readPacket blocks until one packet is available, for the setup phase.
func (c *conn) readPacket(deadline time.Time) (packet.FixedHeader, []byte, error) {
	if err := c.nc.SetReadDeadline(deadline); err != nil {
		return packet.FixedHeader{}, nil, err
	}
	defer c.nc.SetReadDeadline(time.Time{})
	for {
		fh, body, ok, err := c.nextPacket()
		if err != nil {
			return fh, nil, err
		}
		if ok {
			return fh, body, nil
		}
		if err := c.fill(); err != nil {
			return fh, nil, err
		}
	}
}

// packetHandler consumes the packets of one connection on its reader
// goroutine.
type packetHandler interface {
	// handlePacket processes one packet whose body is still in the read
	// buffer; now is the monotonic time at which the read that completed
	// it returned.
	handlePacket(fh packet.FixedHeader, body []byte, now int64) error
	// endBatch runs after the packets of one read have been handled,
	// before the reader blocks again.
	endBatch()
}

// readLoop runs h over every packet until the connection fails or closes.
// Acknowledgements queued by h are flushed once per read, so a burst of
// messages costs one write.
func (c *conn) readLoop(h packetHandler) error {
	now := monoNow()
	for {
		for {
			fh, body, ok, err := c.nextPacket()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if err := h.handlePacket(fh, body, now); err != nil {
				return err
			}
		}
		h.endBatch()
		if err := c.flushAcks(); err != nil {
			return err
		}
		if err := c.fill(); err != nil {
			return err
		}
		now = monoNow()
	}
}

// queueAck appends an acknowledgement to the write buffer; the reader
// flushes it at the end of the batch.
func (c *conn) queueAck(t packet.Type, id uint16) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ackScratch = packet.Ack{Type: t, PacketID: id}
	if c.bw.Available() < 16 {
		if err := c.bw.Flush(); err != nil {
			return err
		}
	}
	buf, err := c.ackScratch.Encode(c.bw.AvailableBuffer(), c.version)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", t, err)
	}
	if _, err := c.bw.Write(buf); err != nil {
		return err
	}
	c.ackPending = true
	return nil
}

func (c *conn) flushAcks() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.ackPending {
		return nil
	}
	c.ackPending = false
	return c.bw.Flush()
}

// disconnect sends DISCONNECT (best effort, so that the broker drops the
// session without publishing a will) and closes the connection.
func (c *conn) disconnect() {
	c.wmu.Lock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	var d packet.Disconnect
	if buf, err := d.Encode(c.bw.AvailableBuffer(), c.version); err == nil {
		if _, err := c.bw.Write(buf); err == nil {
			_ = c.bw.Flush()
		}
	}
	c.wmu.Unlock()
	_ = c.nc.Close()
}
