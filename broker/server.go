// Package broker is the FleetMQ MQTT broker: MQTT 3.1, 3.1.1 and 5.0 over
// one listener, sessions, QoS 0/1/2, retained and will messages, shared
// subscriptions and flow control, as a library that cmd/fleetmq-broker wraps.
//
// The data path: a conn's reader decodes a PUBLISH in place, copies it once
// into an immutable Message, and Server.publish matches its topic in the
// subscription trie; each matching subscriber (a session today, a fleet peer
// later) gets the message queued without blocking. Whoever holds that conn's
// writer role then batches whatever is queued into one write: the publisher's
// reader itself when it has nothing more buffered (a non-blocking write, no
// hand-off), or a short-lived writer goroutine (see writer.go).
//
// Lock order (never take an earlier lock while holding a later one):
//
//  1. Server.mu     sessions and connections maps
//  2. session.mu    one session's state and its conn's write queue
//  3. topic.Tree and the retained store's own locks (leaf locks: they never
//     call back into the broker)
//
// No lock is held while writing to the network or while routing a message:
// routing takes each target session's lock on its own, one at a time.
package broker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/packet"
	"github.com/fleetmq/fleetmq/broker/topic"
)

// Version is the broker version reported to clients and in $SYS.
var Version = "0.1.0-dev"

// neverExpires is the Session Expiry Interval that means "never" [MQTT-3.1.2-?].
const neverExpires = math.MaxUint32

// matchCacheSize bounds the subscription trie's topic match cache.
const matchCacheSize = 4096

// ClientInfo identifies a connected client to authorizers.
type ClientInfo struct {
	ClientID string
	Username string
	Listener string
}

// ConnectInfo is what an Authenticator sees of a CONNECT.
type ConnectInfo struct {
	ClientInfo
	HasUsername bool
	HasPassword bool
	Password    []byte
	RemoteAddr  net.Addr
	// TLS is the TLS state of a connection from a TLS or secure WebSocket
	// listener (client certificates in VerifiedChains); nil otherwise.
	TLS *tls.ConnectionState
}

// Authenticator decides whether a client may connect. It returns
// packet.Success or the CONNACK reason code to refuse with (e.g.
// packet.BadUsernameOrPassword or packet.NotAuthorized).
type Authenticator interface {
	Authenticate(info *ConnectInfo) packet.ReasonCode
}

// Authorizer decides what a connected client may do. Implementations must be
// safe for concurrent use and fast: CanRead runs on every delivery.
type Authorizer interface {
	CanPublish(c ClientInfo, topic string) bool
	CanSubscribe(c ClientInfo, filter string) bool
	CanRead(c ClientInfo, topic string) bool
}

// Options configure a Server beyond its config file.
type Options struct {
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Authenticator checks CONNECT credentials. When nil, only anonymous
	// clients are admitted, and only if the config allows anonymous access.
	Authenticator Authenticator
	// Authorizer checks publish, subscribe and delivery; nil allows all.
	Authorizer Authorizer
	// Retained stores retained messages; nil uses an in-memory store.
	Retained RetainedStore
}

// Server is an MQTT broker.
type Server struct {
	log      *slog.Logger
	cfg      atomic.Pointer[config.Config]
	stats    Stats
	subs     *topic.Tree[subscriber]
	retained RetainedStore
	auth     Authenticator
	acl      atomic.Pointer[authorizerBox]
	files    fileState // password, ACL and TLS files, reload, metrics, $SYS
	idPrefix string
	idSeq    atomic.Uint64
	started  time.Time

	proxyHeaderLog logThrottle // "without a valid PROXY protocol header" lines

	mu        sync.Mutex
	sessions  map[string]*session
	conns     map[*conn]struct{}
	listeners []*listener
	closing   bool
	connWG    sync.WaitGroup
	acceptWG  sync.WaitGroup
}

// authorizerBox lets an Authorizer be swapped atomically on reload.
type authorizerBox struct{ Authorizer }

type listener struct {
	name string
	ln   net.Listener
}

// New builds a server from a validated config. Call Start to listen.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if cfg == nil {
		cfg = config.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var prefix [6]byte
	_, _ = rand.Read(prefix[:])
	srv := &Server{
		log:      log,
		subs:     topic.NewTree[subscriber](matchCacheSize),
		retained: opts.Retained,
		auth:     opts.Authenticator,
		idPrefix: "fleetmq-" + hex.EncodeToString(prefix[:]) + "-",
		started:  time.Now(),
		sessions: make(map[string]*session),
		conns:    make(map[*conn]struct{}),
	}
	if srv.retained == nil {
		srv.retained = NewMemoryRetained()
	}
	srv.cfg.Store(cfg)
	srv.SetAuthorizer(opts.Authorizer)
	if err := srv.initFiles(opts); err != nil {
		return nil, err
	}
	return srv, nil
}

// Stats returns the live counters.
func (srv *Server) Stats() *Stats { return &srv.stats }

// Config returns the configuration in force.
func (srv *Server) Config() *config.Config { return srv.cfg.Load() }

// SetAuthorizer replaces the authorizer for every check from now on; nil
// allows everything.
func (srv *Server) SetAuthorizer(a Authorizer) {
	srv.acl.Store(&authorizerBox{a})
}

func (srv *Server) authorizer() Authorizer { return srv.acl.Load().Authorizer }

func (srv *Server) limits() *config.Limits { return &srv.cfg.Load().Limits }

func (srv *Server) now() time.Time { return time.Now() }

// Start opens every listener of the config and serves them in the
// background. It fails, having opened nothing, if any address cannot be bound.
func (srv *Server) Start() error {
	cfg := srv.cfg.Load()
	var opened []*listener
	for _, lc := range cfg.Listeners {
		l, err := srv.openListener(lc) // TCP, TLS, WebSocket or secure WebSocket
		if err != nil {
			closeAll(opened)
			return err
		}
		opened = append(opened, l)
	}
	if err := srv.startBackground(cfg.Metrics.Address); err != nil {
		closeAll(opened)
		return err
	}
	for _, l := range opened {
		srv.serveListener(l)
	}
	return nil
}

func closeAll(ls []*listener) {
	for _, l := range ls {
		_ = l.ln.Close()
	}
}

// Serve accepts MQTT connections from ln in the background until Shutdown.
func (srv *Server) Serve(name string, ln net.Listener) {
	srv.serveListener(&listener{name: name, ln: ln})
}

func (srv *Server) serveListener(l *listener) {
	srv.mu.Lock()
	srv.listeners = append(srv.listeners, l)
	srv.mu.Unlock()
	srv.log.Info("Listening", "listener", l.name, "address", l.ln.Addr().String())
	srv.acceptWG.Add(1)
	go srv.acceptLoop(l)
}

// Addrs returns the address of every open listener, by listener name.
func (srv *Server) Addrs() map[string]net.Addr {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	out := make(map[string]net.Addr, len(srv.listeners))
	for _, l := range srv.listeners {
		out[l.name] = l.ln.Addr()
	}
	return out
}

func (srv *Server) acceptLoop(l *listener) {
	defer srv.acceptWG.Done()
	var backoff time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does, instead of spinning or giving up.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			srv.log.Warn("Accept failed; retrying", "listener", l.name, "error", err, "retryIn", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		srv.accept(nc, l.name)
	}
}

// accept starts serving one network connection.
func (srv *Server) accept(nc net.Conn, listenerName string) {
	c := newConn(srv, nc, listenerName)
	srv.mu.Lock()
	if srv.closing {
		srv.mu.Unlock()
		_ = nc.Close()
		return
	}
	srv.conns[c] = struct{}{}
	srv.connWG.Add(1)
	srv.mu.Unlock()
	srv.stats.ConnectionsAccepted.Add(1)
	srv.stats.ConnectionsCurrent.Add(1)
	ls := srv.stats.Listener(listenerName)
	ls.Accepted.Add(1)
	ls.Current.Add(1)
	go c.serve()
}

// Shutdown stops accepting, tells every client the server is shutting down
// (v5 DISCONNECT 0x8B) and waits for connections to end or ctx to expire.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.stopBackground() // file watcher, $SYS publisher, metrics endpoint
	srv.mu.Lock()
	srv.closing = true
	ls := srv.listeners
	srv.listeners = nil
	conns := make([]*conn, 0, len(srv.conns))
	for c := range srv.conns {
		conns = append(conns, c)
	}
	srv.mu.Unlock()
	closeAll(ls)
	srv.acceptWG.Wait()
	for _, c := range conns {
		c.closeWith(packet.ServerShuttingDown)
	}
	done := make(chan struct{})
	go func() { srv.connWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shutdown: %d connections still open: %w", srv.stats.ConnectionsCurrent.Load(), ctx.Err())
	}
}

// connect finishes the CONNECT of c: authentication, negotiation, session
// attach and CONNACK.
func (srv *Server) connect(c *conn, cp *packet.Connect) error {
	lim := srv.limits()
	props := &cp.Properties
	v5 := c.version == packet.V5
	if props.AuthMethod != "" {
		// No enhanced authentication methods are configured [MQTT-4.12.0-1].
		c.refuse(packet.BadAuthenticationMethod, "authentication method "+props.AuthMethod+" is not supported")
		return errClientGone
	}
	id := cp.ClientID
	assigned := false
	if id == "" {
		// [MQTT-3.1.3-6..8]: an empty id gets one assigned, except for a 3.1.1
		// client that wants a persistent session, and 3.1 which requires one.
		if c.version == packet.V31 || c.version == packet.V311 && !cp.CleanStart {
			c.refuse(packet.ClientIdentifierNotValid, "empty client identifier")
			return errClientGone
		}
		id = srv.idPrefix + fmt.Sprint(srv.idSeq.Add(1))
		assigned = true
	}
	c.clientID = id
	if max := lim.MaxConnections; max > 0 && srv.stats.ClientsConnected.Load() >= int64(max) {
		c.refuse(packet.QuotaExceeded, fmt.Sprintf("connection limit %d reached", max))
		return errClientGone
	}
	info := ConnectInfo{
		ClientInfo:  ClientInfo{ClientID: id, Username: cp.Username, Listener: c.listener},
		HasUsername: cp.HasUsername,
		HasPassword: cp.HasPassword,
		Password:    cp.Password,
		RemoteAddr:  c.nc.RemoteAddr(),
		TLS:         tlsConnectionState(c.nc),
	}
	if rc := srv.authenticate(&info); rc != packet.Success {
		c.refuse(rc, "authentication failed for user "+fmt.Sprintf("%q", cp.Username))
		return errClientGone
	}
	c.username = info.Username
	if srv.ownedByOtherUser(id, c.username) {
		c.refuse(packet.NotAuthorized, "client identifier is in use by a session of another user")
		return errClientGone
	}

	ack := &packet.Connack{}
	ka := cp.KeepAlive
	if max := lim.MaxKeepAlive; max > 0 && (ka == 0 || ka > max) {
		if !v5 {
			// A 3.x client cannot be told another keep alive; refuse as
			// Mosquitto does.
			c.refuse(packet.ClientIdentifierNotValid, fmt.Sprintf("keep alive %d exceeds the maximum %d", ka, max))
			return errClientGone
		}
		ka = max
		ack.Properties.ServerKeepAlive, ack.Properties.HasServerKeepAlive = max, true
	}
	c.keepAlive = time.Duration(ka) * time.Second

	c.receiveMax = lim.ReceiveMaximum
	c.maxPacket = lim.MaxPacketSize
	c.window = lim.MaxInflight
	expiry := uint32(0)
	if v5 {
		if props.HasReceiveMaximum {
			c.window = min(c.window, int(props.ReceiveMaximum))
		}
		if props.HasMaximumPacketSize {
			c.clientMaxPacket = int(props.MaximumPacketSize)
		}
		c.clientAliasMax = props.TopicAliasMaximum
		c.aliasMax = uint16(*lim.TopicAliasMaximum)
		expiry = srv.capExpiry(props.SessionExpiry)
		if expiry != props.SessionExpiry {
			ack.Properties.SessionExpiry, ack.Properties.HasSessionExpiry = expiry, true
		}
		if assigned {
			ack.Properties.AssignedClientID = id
		}
		if c.receiveMax != 65535 {
			ack.Properties.ReceiveMaximum, ack.Properties.HasReceiveMaximum = uint16(c.receiveMax), true
		}
		ack.Properties.MaximumPacketSize, ack.Properties.HasMaximumPacketSize = uint32(c.maxPacket), true
		if c.aliasMax > 0 {
			ack.Properties.TopicAliasMaximum, ack.Properties.HasTopicAliasMaximum = c.aliasMax, true
		}
		if props.HasRequestResponseInfo && props.RequestResponseInfo == 1 {
			// A topic prefix this client may use for responses [MQTT-3.2.2-?].
			ack.Properties.ResponseInfo = "response/" + id
		}
	} else {
		c.receiveMax = 65535 // 3.x has no Receive Maximum; QoS 2 ids are bounded by 16 bits
		if !cp.CleanStart {
			expiry = srv.capExpiry(neverExpires)
		}
	}
	c.connectExpiry = expiry

	if cp.WillFlag {
		if err := topic.ValidateName(cp.WillTopic, lim.MaxTopicLength, lim.MaxTopicLevels); err != nil {
			c.refuse(packet.TopicNameInvalid, "invalid will topic: "+err.Error())
			return errClientGone
		}
		w := &Message{
			Topic:    cp.WillTopic,
			Payload:  cp.WillPayload,
			QoS:      cp.WillQoS,
			Retain:   cp.WillRetain,
			ClientID: id,
			Username: c.username,
		}
		// A will's expiry runs from when it is published, so until then
		// Expires holds the interval as an offset from the zero time;
		// publishWill turns it into a deadline.
		setMessageProps(w, &cp.WillProperties, time.Time{})
		c.will = w
		c.willDelay = time.Duration(cp.WillProperties.WillDelay) * time.Second
	}
	srv.attach(c, cp.CleanStart, expiry, ack)
	return nil
}

func (srv *Server) authenticate(info *ConnectInfo) packet.ReasonCode {
	if srv.auth != nil {
		return srv.auth.Authenticate(info)
	}
	if !info.HasUsername && srv.cfg.Load().AllowAnonymous {
		return packet.Success
	}
	if info.HasUsername {
		return packet.BadUsernameOrPassword
	}
	return packet.NotAuthorized
}

// capExpiry applies limits.maxSessionExpiry to a requested interval.
func (srv *Server) capExpiry(requested uint32) uint32 {
	if max := srv.limits().MaxSessionExpiry; max > 0 && requested > max {
		return max
	}
	return requested
}

// attach binds c to its session, taking the session over from any other
// connection [MQTT-3.1.4-3], and queues CONNACK followed by any messages
// to resend.
func (srv *Server) attach(c *conn, cleanStart bool, expiry uint32, ack *packet.Connack) {
	var (
		old        *conn
		ended      *session // a previous session discarded by clean start
		endedSubs  []string
		endedWills []*Message
	)
	srv.mu.Lock()
	s := srv.sessions[c.clientID]
	if s != nil {
		s.mu.Lock()
		old = s.conn
		if old != nil {
			old.closing = true
			s.conn = nil
		}
		// A session with expiry 0 lasts only as long as its connection
		// (3.1.1 Clean Session 1 [MQTT-3.1.2-6]): taking the connection
		// over ends it, so it cannot be resumed, as in Mosquitto.
		if cleanStart || s.expiry == 0 {
			endedSubs, endedWills = srv.endSessionLocked(s)
			ended = s
			s.mu.Unlock()
			s = nil
		} else {
			// A new connection before the will delay ran out cancels the
			// will [MQTT-3.1.3-9]; resuming stops the expiry clock.
			stopTimer(&s.willTimer)
			stopTimer(&s.expiryTimer)
			s.will = nil
			ack.SessionPresent = true
		}
	}
	if s == nil {
		s = newSession(srv, c.clientID)
		srv.sessions[c.clientID] = s
		srv.stats.Sessions.Add(1)
		s.mu.Lock()
	}
	s.conn = c
	s.isOnline.Store(true)
	s.username = c.username
	s.expiry = expiry
	c.sess = s
	c.ctrl = append(c.ctrl, outbound{kind: outPacket, pkt: ack})
	c.connected.Store(true)
	if ack.SessionPresent {
		s.resendInflight(c)
	}
	c.kickLocked()
	s.mu.Unlock()
	srv.mu.Unlock()

	srv.stats.ClientsConnected.Add(1)
	c.debug("Client connected", "version", c.version.String(), "bridge", c.bridge, "username", c.username,
		"cleanStart", cleanStart, "sessionPresent", ack.SessionPresent, "keepAlive", c.keepAlive)
	if old != nil {
		c.logger().Info("Session taken over by a new connection")
		old.closeWith(packet.SessionTakenOver)
	}
	if ended != nil {
		srv.removeSubscriptions(ended, endedSubs)
	}
	for _, w := range endedWills {
		srv.publishWill(w)
	}
}

// endSessionLocked marks s ended and removes it from the server. It returns
// the filters to remove from the trie and any will that must now be
// published, for the caller to act on once the locks are released. Callers
// hold srv.mu and s.mu.
func (srv *Server) endSessionLocked(s *session) (filters []string, wills []*Message) {
	if s.ended {
		return nil, nil
	}
	s.ended = true
	if srv.sessions[s.clientID] == s {
		delete(srv.sessions, s.clientID)
		srv.stats.Sessions.Add(-1)
	}
	stopTimer(&s.expiryTimer)
	stopTimer(&s.willTimer)
	if s.will != nil {
		// The session ends before the will delay ran out: publish it now.
		wills = append(wills, s.will)
		s.will = nil
	}
	for f := range s.subs {
		filters = append(filters, f)
	}
	s.subs = nil
	s.queue.drain(func(delivery) {})
	s.queuedBytes = 0
	s.inflight = nil
	s.unsent = 0
	s.inboundQoS2 = nil
	return filters, wills
}

func stopTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

// connEnded runs when c's reader ends: it detaches the session and starts
// its expiry, or ends it, and publishes the will when it is due.
func (srv *Server) connEnded(c *conn) {
	defer srv.connWG.Done()
	srv.stats.ConnectionsCurrent.Add(-1)
	srv.stats.Listener(c.listener).Current.Add(-1)
	srv.mu.Lock()
	delete(srv.conns, c)
	s := c.sess
	if s == nil {
		srv.mu.Unlock()
		return
	}
	srv.stats.ClientsConnected.Add(-1)
	will := c.will
	if c.normalClose {
		will = nil
	}
	var (
		filters []string
		wills   []*Message
	)
	s.mu.Lock()
	// c.ctrl is left alone: a closeWith under way (from a takeover, say)
	// may have closed the connection, so that this reader ended, and still
	// be about to send what the client is owed, CONNACK first. The queue
	// goes with the conn.
	c.closing = true
	switch {
	case s.conn != c:
		// Taken over, or discarded by a clean start: the will is due unless
		// it was delayed and the session lives on [MQTT-3.1.3-9].
		if will != nil && (c.willDelay == 0 || s.ended) {
			wills = append(wills, will)
		}
	default:
		s.conn = nil
		s.isOnline.Store(false)
		if s.expiry == 0 || srv.closing {
			filters, wills = srv.endSessionLocked(s)
			if will != nil {
				wills = append(wills, will)
			}
			break
		}
		if will != nil {
			if c.willDelay == 0 {
				wills = append(wills, will)
			} else {
				s.will = will
				delay := min(c.willDelay, time.Duration(s.expiry)*time.Second)
				s.willTimer = time.AfterFunc(delay, func() { srv.fireDelayedWill(s, will) })
			}
		}
		if s.expiry != neverExpires {
			s.expiryTimer = time.AfterFunc(time.Duration(s.expiry)*time.Second, func() { srv.expireSession(s) })
		}
	}
	s.mu.Unlock()
	srv.mu.Unlock()
	srv.removeSubscriptions(s, filters)
	for _, w := range wills {
		srv.publishWill(w)
	}
}

// fireDelayedWill publishes a will whose delay ran out, unless a new
// connection cancelled it meanwhile.
func (srv *Server) fireDelayedWill(s *session, will *Message) {
	s.mu.Lock()
	due := s.will == will
	if due {
		s.will = nil
		s.willTimer = nil
	}
	s.mu.Unlock()
	if due {
		srv.publishWill(will)
	}
}

// expireSession ends an offline session whose expiry interval ran out.
func (srv *Server) expireSession(s *session) {
	srv.mu.Lock()
	s.mu.Lock()
	var filters []string
	var wills []*Message
	if s.conn == nil && !s.ended {
		filters, wills = srv.endSessionLocked(s)
		srv.log.Debug("Session expired", "client", s.clientID)
	}
	s.mu.Unlock()
	srv.mu.Unlock()
	srv.removeSubscriptions(s, filters)
	for _, w := range wills {
		srv.publishWill(w)
	}
}

// publishWill publishes a will message if its client may publish to its topic.
func (srv *Server) publishWill(w *Message) {
	ci := ClientInfo{ClientID: w.ClientID, Username: w.Username}
	if !srv.mayPublishAs(ci, w.Topic) {
		srv.log.Info("Will message not published: not authorized", "client", w.ClientID, "topic", w.Topic)
		return
	}
	m := *w
	if !w.Expires.IsZero() {
		m.Expires = srv.now().Add(w.Expires.Sub(time.Time{}))
	}
	srv.stats.MessagesReceived[m.QoS].Add(1)
	srv.publish(&m, nil)
}

// mayPublish checks a client's PUBLISH (see mayPublishAs).
func (srv *Server) mayPublish(c *conn, name string) bool {
	return srv.mayPublishAs(ClientInfo{ClientID: c.clientID, Username: c.username, Listener: c.listener}, name)
}

// mayPublishAs checks a PUBLISH or a will of client ci against the
// authorizer. Topics under $SYS belong to the broker, with one exception
// (bridgeStateTopic).
func (srv *Server) mayPublishAs(ci ClientInfo, name string) bool {
	if strings.HasPrefix(name, "$SYS") && name != bridgeStateTopic(ci.ClientID) {
		return false
	}
	if acl := srv.authorizer(); acl != nil {
		return acl.CanPublish(ci, name)
	}
	return true
}

// bridgeStateTopic is the one $SYS topic a client may publish to: where a
// Mosquitto bridge with notifications on (its default) reports its own
// connection state to the remote broker, 1 once connected and, through its
// will, 0 when the connection is lost. Under its own client id only, so that
// a central broker shows which edge bridges are up and nobody can report
// for another client or forge the broker's statistics.
func bridgeStateTopic(clientID string) string {
	return "$SYS/broker/connection/" + clientID + "/state"
}

func (srv *Server) maySubscribe(c *conn, filter string) bool {
	if acl := srv.authorizer(); acl != nil {
		return acl.CanSubscribe(ClientInfo{ClientID: c.clientID, Username: c.username, Listener: c.listener}, filter)
	}
	return true
}

// subscribe records a subscription in the session and the trie. It returns
// whether a subscription to the same filter existed (and was replaced).
func (srv *Server) subscribe(s *session, filter string, opts topic.Options) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	existed := srv.subs.Add(s, filter, opts)
	if s.subs == nil {
		s.subs = make(map[string]subscriptionRecord)
	}
	s.subs[filter] = subscriptionRecord{opts: opts}
	if !existed {
		srv.stats.Subscriptions.Add(1)
	}
	return existed
}

// unsubscribe removes one subscription; it reports whether it existed.
func (srv *Server) unsubscribe(s *session, filter string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.subs[filter]; !ok {
		return false
	}
	delete(s.subs, filter)
	if srv.subs.Remove(s, filter) {
		srv.stats.Subscriptions.Add(-1)
	}
	return true
}

func (srv *Server) removeSubscriptions(s *session, filters []string) {
	for _, f := range filters {
		if srv.subs.Remove(s, f) {
			srv.stats.Subscriptions.Add(-1)
		}
	}
}

// SessionCount returns the number of sessions held, online and offline.
func (srv *Server) SessionCount() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return len(srv.sessions)
}

// stringToBytes views s as bytes without copying; the result must not be
// written to.
func stringToBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
