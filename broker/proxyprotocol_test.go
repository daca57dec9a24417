package broker_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/pires/go-proxyproto"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/packet"
)

// addressBook is an authenticator that admits everybody and notes the
// address each client id connected from, as the broker tells it.
type addressBook struct{ m sync.Map }

func (a *addressBook) Authenticate(info *broker.ConnectInfo) packet.ReasonCode {
	a.m.Store(info.ClientID, info.RemoteAddr.String())
	return packet.Success
}

// of returns the address client id connected from, or "".
func (a *addressBook) of(id string) string {
	v, _ := a.m.Load(id)
	s, _ := v.(string)
	return s
}

// startProxyBroker starts a broker with a proxyProtocol listener lc (name
// and trust set by the caller) and returns it, that listener's address and
// the address book of its authenticator.
func startProxyBroker(t *testing.T, lc config.Listener) (*testBroker, string, *addressBook) {
	t.Helper()
	book := &addressBook{}
	b := startBroker(t, func(_ *config.Config, o *broker.Options) { o.Authenticator = book })
	lc.ProxyProtocol = true
	return b, serveListener(t, b, lc), book
}

// dialFrom dials addr from the loopback address local, so that a test can
// tell a client's address from its proxy's.
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: rawWait, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return nc
}

// TestProxyProtocolHeaders: behind a load balancer that speaks the PROXY
// protocol, the broker knows clients by the address the header carries,
// for plain and TLS listeners and both header versions; a connection with
// no header, or from a peer that is not a trusted proxy, is closed unserved.
func TestProxyProtocolHeaders(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "proxy-test-ca")
	vol := newKubeVolume(t, tlsSecret(t, ca, 2))
	client := &net.TCPAddr{IP: net.ParseIP("127.0.0.77"), Port: 40123}

	for _, tc := range []struct {
		name    string
		version byte
		tls     bool
	}{
		{"v1", 1, false},
		{"v2", 2, false},
		{"v2 then TLS", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lc := config.Listener{Name: "lb"}
			if tc.tls {
				lc = tlsListener("lb", vol, "none")
			}
			_, addr, book := startProxyBroker(t, lc)
			nc := dialFrom(t, "127.0.0.1", addr)
			header := proxyproto.HeaderProxyFromAddrs(tc.version, client, nc.RemoteAddr())
			if _, err := header.WriteTo(nc); err != nil {
				t.Fatalf("write PROXY header: %v", err)
			}
			if tc.tls {
				tc := tls.Client(nc, &tls.Config{RootCAs: ca.roots, ServerName: "localhost"})
				t.Cleanup(func() { _ = tc.Close() })
				nc = tc
			}
			c := &rawClient{t: t, nc: nc, v: packet.V5}
			id := uniqueID("proxied")
			if ack := c.connect(&packet.Connect{Version: packet.V5, ClientID: id, CleanStart: true, KeepAlive: 30}); ack.ReasonCode != packet.Success {
				t.Fatalf("CONNECT behind a PROXY header refused: %v", ack.ReasonCode)
			}
			if got := book.of(id); got != client.String() {
				t.Fatalf("the broker saw the client at %q; want %s, from the PROXY header", got, client)
			}
			// The MQTT stream after the header is intact both ways.
			if rc := c.subscribe(1, 0, rawSub("proxied/t", 1)); rc[0] != packet.GrantedQoS1 {
				t.Fatalf("SUBACK %v", rc)
			}
			c.send(&packet.Publish{Topic: []byte("proxied/t"), QoS: 1, PacketID: 2, Payload: []byte("through the balancer")})
			for acked, got := false, false; !acked || !got; {
				switch p := c.next().(type) {
				case *packet.Ack:
					acked = true
				case *packet.Publish:
					got = string(p.Payload) == "through the balancer"
					c.ack(packet.PUBACK, p.PacketID)
				}
			}
		})
	}

	t.Run("no header", func(t *testing.T) {
		t.Parallel()
		b, addr, _ := startProxyBroker(t, config.Listener{Name: "lb"})
		c := &rawClient{t: t, nc: dialFrom(t, "127.0.0.1", addr), v: packet.V5}
		c.send(&packet.Connect{Version: packet.V5, ClientID: uniqueID("headerless"), CleanStart: true, KeepAlive: 30})
		c.expectClosed()
		if n := b.Stats().ClientsConnected.Load(); n != 0 {
			t.Fatalf("%d clients connected without a PROXY header", n)
		}
		// Counted, so that a load balancer without the protocol turned on
		// shows in the metrics rather than as clients that cannot connect.
		eventually(t, "the connection counted as without a PROXY header", func() bool {
			return b.Stats().ProxyHeaderErrors.Load() == 1
		})
		// The broker's other listener is unaffected.
		connectRaw(t, b.Addr, &packet.Connect{Version: packet.V5, ClientID: uniqueID("direct"), CleanStart: true, KeepAlive: 30})
	})

	t.Run("untrusted proxy", func(t *testing.T) {
		t.Parallel()
		_, addr, book := startProxyBroker(t, config.Listener{Name: "lb", TrustedProxies: []string{"127.0.0.9", "10.0.0.0/8"}})
		// A client that reaches the listener directly cannot claim an address.
		nc := dialFrom(t, "127.0.0.1", addr)
		_, _ = proxyproto.HeaderProxyFromAddrs(2, client, nc.RemoteAddr()).WriteTo(nc)
		id := uniqueID("spoofer")
		connect, _ := (&packet.Connect{Version: packet.V5, ClientID: id, CleanStart: true, KeepAlive: 30}).Encode(nil, packet.V5)
		_, _ = nc.Write(connect) // may fail: the broker closes such a connection at once
		(&rawClient{t: t, nc: nc, v: packet.V5}).expectClosed()
		if got := book.of(id); got != "" {
			t.Fatalf("a client from an untrusted peer connected as %s", got)
		}
		// The trusted proxy gets through.
		trusted := dialFrom(t, "127.0.0.9", addr)
		_, _ = proxyproto.HeaderProxyFromAddrs(2, client, trusted.RemoteAddr()).WriteTo(trusted)
		tc := &rawClient{t: t, nc: trusted, v: packet.V5}
		id = uniqueID("via-trusted")
		if ack := tc.connect(&packet.Connect{Version: packet.V5, ClientID: id, CleanStart: true, KeepAlive: 30}); ack.ReasonCode != packet.Success {
			t.Fatalf("CONNECT through the trusted proxy refused: %v", ack.ReasonCode)
		}
		if got := book.of(id); got != client.String() {
			t.Fatalf("through the trusted proxy the client is at %q; want %s", got, client)
		}
	})
}

// TestProxyProtocolHeaderAndPacketsInOneWrite: a proxy may forward the
// header together with whatever the client sent first. The header is parsed
// from a buffer of its own, which then holds the first packets too; none of
// them may be lost when the connection goes on to read its socket directly.
func TestProxyProtocolHeaderAndPacketsInOneWrite(t *testing.T) {
	t.Parallel()
	client := &net.TCPAddr{IP: net.ParseIP("127.0.0.78"), Port: 40124}
	for _, version := range []byte{1, 2} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			t.Parallel()
			_, addr, book := startProxyBroker(t, config.Listener{Name: "lb"})
			nc := dialFrom(t, "127.0.0.1", addr)
			id, topic := uniqueID("burst"), uniqueID("burst/t")
			var burst bytes.Buffer
			if _, err := proxyproto.HeaderProxyFromAddrs(version, client, nc.RemoteAddr()).WriteTo(&burst); err != nil {
				t.Fatalf("encode PROXY header: %v", err)
			}
			packets := []packet.Packet{
				&packet.Connect{Version: packet.V5, ClientID: id, CleanStart: true, KeepAlive: 30},
				&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{rawSub(topic, 1)}},
			}
			// Well past the header's buffer and the connection's first
			// read: the broker has to take the packets from both.
			const messages = 12
			for i := range messages {
				payload := fmt.Sprintf("%03d %s", i, strings.Repeat("x", 90))
				packets = append(packets, &packet.Publish{Topic: []byte(topic), QoS: 1, PacketID: uint16(10 + i), Payload: []byte(payload)})
			}
			for _, p := range packets {
				b, err := p.Encode(nil, packet.V5)
				if err != nil {
					t.Fatalf("encode %s: %v", p.PacketType(), err)
				}
				burst.Write(b)
			}
			if burst.Len() < 2*broker.MinReadBuffer {
				t.Fatalf("the burst is %d bytes; it should outgrow the first read", burst.Len())
			}
			if _, err := nc.Write(burst.Bytes()); err != nil {
				t.Fatalf("write the burst: %v", err)
			}

			c := &rawClient{t: t, nc: nc, v: packet.V5}
			if ack := c.expect(packet.CONNACK).(*packet.Connack); ack.ReasonCode != packet.Success {
				t.Fatalf("CONNACK %v", ack.ReasonCode)
			}
			if got := book.of(id); got != client.String() {
				t.Fatalf("the broker saw the client at %q; want %s", got, client)
			}
			// Every message arrives in order and is acknowledged, then the
			// connection carries on.
			acks, next := 0, 0
			for acks < messages || next < messages {
				switch p := c.next().(type) {
				case *packet.Suback:
				case *packet.Ack:
					acks++
				case *packet.Publish:
					if want := fmt.Sprintf("%03d ", next); !strings.HasPrefix(string(p.Payload), want) {
						t.Fatalf("delivery %d carries %.4q; want it to start %q", next, p.Payload, want)
					}
					next++
					c.ack(packet.PUBACK, p.PacketID)
				default:
					t.Fatalf("unexpected %s", p.PacketType())
				}
			}
			c.send(&packet.Publish{Topic: []byte(topic), Payload: []byte("after the burst")})
			if p := c.expectPublish(); string(p.Payload) != "after the burst" {
				t.Fatalf("got %q after the burst", p.Payload)
			}
		})
	}
}

// TestInteropHAProxy puts Debian's HAProxy in front of a proxyProtocol
// listener, as a load balancer in front of a fleet, once with each header
// version: a paho client connecting from 127.0.0.3 through it is known to
// the broker by 127.0.0.3, not by HAProxy's address, and its messages flow.
func TestInteropHAProxy(t *testing.T) {
	t.Parallel()
	haproxy := interopTool(t, "haproxy")
	_, backend, book := startProxyBroker(t, config.Listener{Name: "lb", TrustedProxies: []string{"127.0.0.1"}})
	v1Front, v2Front := freeLoopbackAddr(t), freeLoopbackAddr(t)
	cfg := fmt.Sprintf(`defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen mqtt-v1
  bind %s
  server broker %s send-proxy
listen mqtt-v2
  bind %s
  server broker %s send-proxy-v2
`, v1Front, backend, v2Front, backend)
	cfgPath := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(haproxy, "-db", "-f", cfgPath)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for _, front := range []string{v1Front, v2Front} {
		eventually(t, "haproxy listening on "+front, func() bool {
			nc, err := net.DialTimeout("tcp", front, time.Second)
			if err == nil {
				_ = nc.Close()
			}
			return err == nil
		})
	}

	var fromClientAddr v3Setup = func(o *mqtt3.ClientOptions) {
		o.SetCustomOpenConnectionFn(func(uri *url.URL, _ mqtt3.ClientOptions) (net.Conn, error) {
			d := net.Dialer{Timeout: rawWait, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
			return d.Dial("tcp", uri.Host)
		})
	}
	for name, front := range map[string]string{"send-proxy": v1Front, "send-proxy-v2": v2Front} {
		id := uniqueID("behind-haproxy")
		c, _ := connectV3(t, front, id, fromClientAddr)
		host, _, err := net.SplitHostPort(book.of(id))
		if err != nil || host != "127.0.0.3" {
			t.Fatalf("%s: the broker saw the client at %q; want 127.0.0.3, the client's own address (haproxy log:\n%s)", name, book.of(id), out.String())
		}
		c.sub(1, "haproxy/"+name)
		c.pub("haproxy/"+name, 1, false, "via "+name)
		if m := c.recv(); string(m.Payload()) != "via "+name {
			t.Fatalf("%s: received %q", name, m.Payload())
		}
	}
}
