package broker

// The four kinds of listener: MQTT over TCP, over TLS, over WebSocket and
// over secure WebSocket. Each ends up as a net.Listener whose Accept
// returns a net.Conn carrying the MQTT byte stream, so the rest of the
// broker (accept loop, conn, shutdown) does not know which kind it serves.

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pires/go-proxyproto"

	"github.com/fleetmq/fleetmq/broker/config"
)

// ServeListener serves ln, an already bound TCP listener, as the listener lc
// describes: MQTT over TCP, TLS, WebSocket or secure WebSocket. lc.Address
// may be empty; unset fields get their config defaults. It is how tests
// and embedders serve a listener they opened themselves; Start uses the
// same path. It fails, serving nothing, if lc is invalid or its TLS files
// cannot be loaded.
func (srv *Server) ServeListener(lc config.Listener, ln net.Listener) error {
	c := config.Config{Listeners: []config.Listener{lc}}
	if c.Listeners[0].Address == "" {
		c.Listeners[0].Address = ln.Addr().String()
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return fmt.Errorf("listener %s: %w", c.Listeners[0].Name, err)
	}
	l, err := srv.wrapListener(c.Listeners[0], ln)
	if err != nil {
		return err
	}
	srv.serveListener(l)
	return nil
}

// openListener binds lc's address and wraps it for lc's protocol and TLS.
func (srv *Server) openListener(lc config.Listener) (*listener, error) {
	ln, err := net.Listen("tcp", lc.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
	}
	l, err := srv.wrapListener(lc, ln)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return l, nil
}

// proxyHeaderBuffer is the read buffer a PROXY protocol header is parsed
// from: room for a whole v1 header line (at most 107 bytes), which has to
// fit at once; a v2 header refills it as it goes. Bytes after the header
// that it took in are handed over by the first read of at least its size,
// which every connection's first read is (minReadBuffer), so that from then
// on the connection reads its socket directly (rawSocket).
const proxyHeaderBuffer = 256

// A compile-time check of the above: negative, the constant would not
// convert.
const _ = uint(minReadBuffer - proxyHeaderBuffer)

// logThrottle lets one log line of a kind through per interval, and counts
// those it held back in between, for events that a misconfiguration makes
// happen on every connection.
type logThrottle struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

// proxyHeaderLogInterval spaces the lines about connections without a valid
// PROXY protocol header: a load balancer without the protocol turned on
// sends every client that way, and its health checks every few seconds.
const proxyHeaderLogInterval = 30 * time.Second

// allow reports whether a line may be logged now and how many were held
// back since the last one.
func (lt *logThrottle) allow(now time.Time, interval time.Duration) (ok bool, skipped int) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if !lt.last.IsZero() && now.Sub(lt.last) < interval {
		lt.skipped++
		return false, 0
	}
	skipped, lt.last, lt.skipped = lt.skipped, now, 0
	return true, skipped
}

// wrapListener turns a bound TCP listener into one of lc's kind. lc has
// its defaults applied.
func (srv *Server) wrapListener(lc config.Listener, ln net.Listener) (*listener, error) {
	var tlsConf *tls.Config
	if lc.TLS != nil {
		ep := &tlsEndpoint{name: lc.Name, cfg: *lc.TLS, log: srv.log}
		if _, err := ep.load(); err != nil {
			return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
		}
		srv.files.tls.Store(lc.Name, ep)
		srv.recordLoaded(tlsFileKey(lc.Name), lc.TLS.CertFile, ep.state.Load().revision)
		tlsConf = ep.serverConfig()
	}
	if lc.ProxyProtocol {
		// The header comes first on the wire, before TLS and HTTP.
		pl := &proxyproto.Listener{Listener: ln, ReadHeaderTimeout: connectTimeout, ReadBufferSize: proxyHeaderBuffer}
		if len(lc.TrustedProxies) > 0 {
			policy, err := proxyproto.TrustProxyHeaderFromRanges(trustedRanges(lc.TrustedProxies))
			if err != nil {
				return nil, fmt.Errorf("listener %s: trustedProxies: %w", lc.Name, err)
			}
			pl.ConnPolicy = policy
		}
		ln = pl
	}
	switch lc.Protocol {
	case "websocket":
		ln = newWSListener(ln, lc.Path, tlsConf, srv.log)
	default:
		if tlsConf != nil {
			ln = tls.NewListener(ln, tlsConf)
		}
	}
	return &listener{name: lc.Name, ln: ln}, nil
}

// trustedRanges writes single addresses of trustedProxies as ranges of one.
func trustedRanges(trusted []string) []string {
	out := make([]string, len(trusted))
	for i, t := range trusted {
		out[i] = t
		if ip := net.ParseIP(t); ip != nil {
			bits := 128
			if ip.To4() != nil {
				bits = 32
			}
			out[i] = fmt.Sprintf("%s/%d", t, bits)
		}
	}
	return out
}

// tlsEndpoint returns the TLS state of a listener, nil for a plain one.
func (srv *Server) tlsEndpoint(listener string) *tlsEndpoint {
	if v, ok := srv.files.tls.Load(listener); ok {
		return v.(*tlsEndpoint)
	}
	return nil
}

func tlsFileKey(listener string) string { return "tls/" + listener }

// tlsEndpoint is the certificate, key and client CA bundle of one TLS
// listener. Every handshake reads the state in force through
// GetConfigForClient and GetCertificate, so a reload that swaps the state
// serves rotated files to new connections while established ones carry on
// with the session they negotiated.
type tlsEndpoint struct {
	name  string
	cfg   config.TLS
	log   *slog.Logger
	state atomic.Pointer[tlsState]
}

// tlsState is one loaded generation of an endpoint's files.
type tlsState struct {
	cert     *tls.Certificate
	conf     *tls.Config // the configuration handshakes use
	revision string      // of the certificate, key and CA contents together
	serial   string      // of the serving certificate, for logs
	notAfter time.Time
}

// load reads the endpoint's files and swaps them in when their content
// changed. On any error the state in force stays. Errors name the file;
// they never contain key material.
func (ep *tlsEndpoint) load() (changed bool, err error) {
	certPEM, err := os.ReadFile(ep.cfg.CertFile)
	if err != nil {
		return false, fmt.Errorf("read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(ep.cfg.KeyFile)
	if err != nil {
		return false, fmt.Errorf("read private key: %w", err)
	}
	var caPEM []byte
	if ep.cfg.CAFile != "" {
		if caPEM, err = os.ReadFile(ep.cfg.CAFile); err != nil {
			return false, fmt.Errorf("read client CA bundle: %w", err)
		}
	}
	rev := revisionOfParts(certPEM, keyPEM, caPEM)
	if cur := ep.state.Load(); cur != nil && cur.revision == rev {
		return false, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("%s and %s: %w", ep.cfg.CertFile, ep.cfg.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return false, fmt.Errorf("%s: %w", ep.cfg.CertFile, err)
		}
	}
	conf := &tls.Config{
		// TLS 1.0 and 1.1 are broken and deprecated (RFC 8996).
		MinVersion:     tls.VersionTLS12,
		GetCertificate: ep.certificate,
		ClientAuth:     clientAuthType(ep.cfg.ClientAuth),
	}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return false, fmt.Errorf("%s: no PEM certificate found", ep.cfg.CAFile)
		}
		conf.ClientCAs = pool
	}
	ep.state.Store(&tlsState{
		cert:     &cert,
		conf:     conf,
		revision: rev,
		serial:   leaf.SerialNumber.String(),
		notAfter: leaf.NotAfter,
	})
	return true, nil
}

// certificate is GetCertificate: the serving certificate in force.
func (ep *tlsEndpoint) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return ep.state.Load().cert, nil
}

// serverConfig is the configuration the listener is built with. It holds
// no certificate itself: each handshake asks for the one in force.
func (ep *tlsEndpoint) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: ep.certificate,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return ep.state.Load().conf, nil
		},
	}
}

func clientAuthType(mode string) tls.ClientAuthType {
	switch mode {
	case "request":
		// A certificate is asked for; one that is sent must verify.
		return tls.VerifyClientCertIfGiven
	case "require":
		return tls.RequireAndVerifyClientCert
	}
	return tls.NoClientCert
}

// revisionOfParts hashes several files as one, length-prefixed so that
// moving bytes from one file to the next changes the revision.
func revisionOfParts(parts ...[]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// wsSubprotocols are the WebSocket subprotocols answered: "mqtt" is the
// standard one [MQTT-6.0.0-3], "mqttv3.1" what some 3.1 clients still send.
var wsSubprotocols = []string{"mqtt", "mqttv3.1"}

// wsWriteBuffers lends write buffers to WebSocket connections only while
// they write, so an idle WebSocket client holds none.
var wsWriteBuffers sync.Pool

// wsListener accepts MQTT over WebSocket: an HTTP server upgrades requests
// for its path and hands each connection to Accept.
type wsListener struct {
	ln       net.Listener
	path     string
	http     *http.Server
	upgrader websocket.Upgrader
	conns    chan net.Conn
	done     chan struct{}
	once     sync.Once
}

func newWSListener(ln net.Listener, path string, tlsConf *tls.Config, log *slog.Logger) *wsListener {
	wl := &wsListener{
		ln:    ln,
		path:  path,
		conns: make(chan net.Conn),
		done:  make(chan struct{}),
		upgrader: websocket.Upgrader{
			HandshakeTimeout: 10 * time.Second,
			Subprotocols:     wsSubprotocols,
			WriteBufferPool:  &wsWriteBuffers,
			// Browsers connect from any page; MQTT authenticates the
			// client itself, so the origin proves nothing here.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	wl.http = &http.Server{
		Handler:           wl,
		ReadHeaderTimeout: 10 * time.Second,
		// Handshake and upgrade failures are the client's problem; keep
		// them out of the info log.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	inner := ln
	if tlsConf != nil {
		inner = tls.NewListener(ln, tlsConf)
	}
	go func() {
		if err := wl.http.Serve(inner); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("WebSocket listener stopped", "address", ln.Addr().String(), "error", err)
		}
		_ = wl.Close()
	}()
	return wl
}

// ServeHTTP upgrades a request for the listener's path and queues the
// connection for Accept.
func (wl *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != wl.path {
		http.NotFound(w, r)
		return
	}
	ws, err := wl.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with the HTTP error
	}
	c := &wsConn{ws: ws}
	select {
	case wl.conns <- c:
	case <-wl.done:
		_ = c.Close()
	}
}

// Accept implements net.Listener.
func (wl *wsListener) Accept() (net.Conn, error) {
	select {
	case c := <-wl.conns:
		return c, nil
	case <-wl.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener. Upgraded connections are the broker's and
// stay open; Shutdown closes them.
func (wl *wsListener) Close() error {
	var err error
	wl.once.Do(func() {
		close(wl.done)
		err = wl.http.Close()
	})
	return err
}

// Addr implements net.Listener.
func (wl *wsListener) Addr() net.Addr { return wl.ln.Addr() }

// errTextFrame ends a connection that sent a non-binary WebSocket message.
var errTextFrame = errors.New("WebSocket text message: MQTT is carried in binary messages only")

// wsConn carries an MQTT byte stream over a WebSocket connection as a
// net.Conn. A packet may span messages and a message may hold several
// packets [MQTT-6.0.0-2], so Read is a plain stream over message bodies.
//
// gorilla/websocket allows one reader and one writer at a time: the conn's
// reader goroutine is the only reader, and writes (the conn's writer and a
// DISCONNECT from closeWith) take wmu.
type wsConn struct {
	ws *websocket.Conn
	r  io.Reader // body of the message being read; reader only

	wmu           sync.Mutex
	writeDeadline atomic.Int64 // Unix nanoseconds, 0 for none
	closeOnce     sync.Once
}

// Read implements net.Conn.
func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF) {
					return 0, io.EOF
				}
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				// [MQTT-6.0.0-1]: any other frame type closes the connection.
				_ = c.ws.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseUnsupportedData, "MQTT needs binary messages"),
					time.Now().Add(time.Second))
				return 0, errTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write implements net.Conn: p goes out as one binary message.
func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var deadline time.Time
	if ns := c.writeDeadline.Load(); ns != 0 {
		deadline = time.Unix(0, ns)
	}
	_ = c.ws.SetWriteDeadline(deadline)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// SetWriteDeadline implements net.Conn. It applies to the next Write, and
// to the socket at once so that a write blocked right now gives up too
// (closeWith relies on that to get past a stuck writer).
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.writeDeadline.Store(ns)
	return c.ws.NetConn().SetWriteDeadline(t)
}

// SetReadDeadline implements net.Conn.
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetDeadline implements net.Conn.
func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// Close implements net.Conn. A close frame goes first, best effort and
// briefly, so that browsers see a normal closure.
func (c *wsConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
			time.Now().Add(100*time.Millisecond))
		err = c.ws.Close()
	})
	return err
}

// LocalAddr implements net.Conn.
func (c *wsConn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr implements net.Conn.
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// ConnectionState returns the TLS state of a secure WebSocket connection;
// HandshakeComplete is false on a plain one.
func (c *wsConn) ConnectionState() tls.ConnectionState {
	if tc, ok := c.ws.NetConn().(*tls.Conn); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}
