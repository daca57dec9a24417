package broker_test

// MQTT over WebSocket and secure WebSocket with paho.golang, which runs
// over any net.Conn: the test dials the WebSocket with gorilla/websocket
// and wraps it with the same adapter the broker uses.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/packet"
)

// dialWS opens a WebSocket to url offering the "mqtt" subprotocol.
func dialWS(t testing.TB, url string, roots *x509.CertPool) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{
		Subprotocols:     []string{"mqtt"},
		HandshakeTimeout: rawWait,
		TLSClientConfig:  &tls.Config{RootCAs: roots},
	}
	ws, resp, err := d.Dial(url, nil)
	if err == nil {
		t.Cleanup(func() { _ = ws.Close() })
	}
	return ws, resp, err
}

// wsPaho connects a paho.golang client over a WebSocket; received messages
// land in the returned channel.
func wsPaho(t testing.TB, url string, roots *x509.CertPool, id string) (*paho.Client, chan *paho.Publish) {
	t.Helper()
	ws, _, err := dialWS(t, url, roots)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	if ws.Subprotocol() != "mqtt" {
		t.Errorf("negotiated subprotocol %q, want mqtt", ws.Subprotocol())
	}
	msgs := make(chan *paho.Publish, 100)
	events := &clientEvents{}
	t.Cleanup(func() { // registered first, so it runs after the Disconnect below
		if t.Failed() {
			for _, e := range events.all() {
				t.Logf("%s client %s: %s", url, id, e)
			}
		}
	})
	c := paho.NewClient(paho.ClientConfig{
		// One WebSocket message per Write: without the lock, packets that
		// paho.golang writes from two goroutines could interleave (lockedConn).
		Conn: &lockedConn{Conn: broker.NewWebSocketConn(ws)},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { msgs <- pr.Packet; return true, nil },
		},
		// A client error (a read or decode failure) would otherwise only
		// show up as a later timeout; keep it so a failure says why. The
		// callbacks may run after the test ends, so they never touch t.
		OnClientError: func(err error) { events.add(fmt.Sprintf("client error: %v", err)) },
		OnServerDisconnect: func(d *paho.Disconnect) {
			events.add(fmt.Sprintf("server sent DISCONNECT %#x", byte(d.ReasonCode)))
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), rawWait)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatalf("connect over %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, msgs
}

// lockedConn makes paho.golang write each packet whole. Its packets.WriteTo
// (v0.23) writes a packet as several Writes unless the connection does
// vectored writes (a TCP connection) or is a sync.Locker, which it then holds
// for the packet; the WebSocket adapter is neither, so a packet the client's
// own goroutines write (an acknowledgement) could land inside another.
type lockedConn struct {
	net.Conn
	sync.Mutex
}

// clientEvents collects what a client's callbacks saw.
type clientEvents struct {
	mu   sync.Mutex
	list []string
}

func (e *clientEvents) add(s string) {
	e.mu.Lock()
	e.list = append(e.list, s)
	e.mu.Unlock()
}

func (e *clientEvents) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

// serveWS adds a WebSocket listener (secure when vol is set) to b and
// returns its URL.
func serveWS(t testing.TB, b *testBroker, path string, vol *kubeVolume) string {
	t.Helper()
	lc := config.Listener{Name: "ws", Protocol: "websocket", Path: path}
	scheme := "ws"
	if vol != nil {
		lc = tlsListener("wss", vol, "none")
		lc.Protocol, lc.Path = "websocket", path
		scheme = "wss"
	}
	addr := serveListener(t, b, lc)
	return fmt.Sprintf("%s://%s%s", scheme, addr, path)
}

func TestWebSocketWithPaho(t *testing.T) {
	ca := newTestCA(t, "test CA")
	vol := newKubeVolume(t, tlsSecret(t, ca, 100))
	b := startBroker(t)
	for _, l := range []struct{ name, url string }{
		{"ws", serveWS(t, b, "/mqtt", nil)},
		{"wss", serveWS(t, b, "/secure/mqtt", vol)},
	} {
		url := l.url
		t.Run(l.name, func(t *testing.T) {
			sub, msgs := wsPaho(t, url, ca.roots, uniqueID("wssub"))
			pub, _ := wsPaho(t, url, ca.roots, uniqueID("wspub"))
			// The deadline starts after both connects: under -race on a loaded
			// machine a TLS handshake alone can take seconds, and it must not
			// eat the time the round trips below are given.
			ctx, cancel := context.WithTimeout(context.Background(), 3*rawWait)
			defer cancel()
			if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "ws/#", QoS: 2}}}); err != nil {
				t.Fatalf("subscribe: %v", err)
			}
			// A payload larger than one read buffer and than a typical frame.
			big := make([]byte, 200<<10)
			for i := range big {
				big[i] = byte(i)
			}
			for qos := byte(0); qos <= 2; qos++ {
				payload := append([]byte{qos}, big...)
				if _, err := pub.Publish(ctx, &paho.Publish{Topic: "ws/t", QoS: qos, Payload: payload}); err != nil {
					t.Fatalf("publish QoS %d: %v", qos, err)
				}
				select {
				case m := <-msgs:
					if m.QoS != qos || len(m.Payload) != len(payload) || m.Payload[0] != qos || m.Payload[len(m.Payload)-1] != payload[len(payload)-1] {
						t.Fatalf("QoS %d: got QoS %d, %d bytes", qos, m.QoS, len(m.Payload))
					}
				case <-time.After(rawWait):
					t.Fatalf("QoS %d message not delivered over %s", qos, url)
				}
			}
			if n := b.Stats().Listener(l.name).Current.Load(); n != 2 {
				t.Errorf("listener %s counts %d connections, want 2", l.name, n)
			}
		})
	}
}

func TestWebSocketFraming(t *testing.T) {
	b := startBroker(t)
	url := serveWS(t, b, "/mqtt", nil)
	connect, err := (&packet.Connect{Version: packet.V5, ClientID: uniqueID("frames"), CleanStart: true}).Encode(nil, packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	pingreq := []byte{0xC0, 0}

	t.Run("a packet split over messages", func(t *testing.T) {
		ws, _, err := dialWS(t, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &rawClient{t: t, nc: broker.NewWebSocketConn(ws), v: packet.V5}
		c.sendBytes(connect[:3])
		c.sendBytes(connect[3:])
		c.expect(packet.CONNACK)
		// Two packets in one message.
		c.sendBytes(append(append([]byte{}, pingreq...), pingreq...))
		c.expect(packet.PINGRESP)
		c.expect(packet.PINGRESP)
	})

	t.Run("a text message closes the connection", func(t *testing.T) {
		ws, _, err := dialWS(t, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &rawClient{t: t, nc: broker.NewWebSocketConn(ws), v: packet.V5}
		c.sendBytes(connect)
		c.expect(packet.CONNACK)
		if err := ws.WriteMessage(websocket.TextMessage, pingreq); err != nil {
			t.Fatal(err)
		}
		c.expectClosed()
	})

	t.Run("another path is not found", func(t *testing.T) {
		_, resp, err := dialWS(t, url+"x", nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("dial %sx: %v, response %v; want 404", url, err, resp)
		}
	})
}

func TestStartOpensEveryListenerKind(t *testing.T) {
	ca := newTestCA(t, "test CA")
	vol := newKubeVolume(t, tlsSecret(t, ca, 100))
	tlsConf := func() *config.TLS {
		return &config.TLS{CertFile: vol.path("tls.crt"), KeyFile: vol.path("tls.key")}
	}
	cfg := config.Default()
	cfg.Listeners = []config.Listener{
		{Name: "mqtt", Address: "127.0.0.1:0"},
		{Name: "mqtts", Address: "127.0.0.1:0", TLS: tlsConf()},
		{Name: "ws", Address: "127.0.0.1:0", Protocol: "websocket"},
		{Name: "wss", Address: "127.0.0.1:0", Protocol: "websocket", TLS: tlsConf()},
	}
	cfg.ApplyDefaults()
	srv, err := broker.New(cfg, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	addrs := srv.Addrs()
	cp := func() *packet.Connect { return loginPacket(packet.V5, uniqueID("start"), "", "") }
	connectRaw(t, addrs["mqtt"].String(), cp())

	tc, err := tls.Dial("tcp", addrs["mqtts"].String(), &tls.Config{RootCAs: ca.roots})
	if err != nil {
		t.Fatalf("mqtts: %v", err)
	}
	defer tc.Close()
	(&rawClient{t: t, nc: tc, v: packet.V5}).connect(cp())

	for name, url := range map[string]string{
		"ws":  "ws://" + addrs["ws"].String() + "/mqtt",
		"wss": "wss://" + addrs["wss"].String() + "/mqtt",
	} {
		ws, _, err := dialWS(t, url, ca.roots)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ack := (&rawClient{t: t, nc: broker.NewWebSocketConn(ws), v: packet.V5}).connect(cp()); ack.ReasonCode != packet.Success {
			t.Fatalf("%s: CONNACK %v", name, ack.ReasonCode)
		}
	}
}
