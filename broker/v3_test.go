package broker_test

// Behaviour tests with github.com/eclipse/paho.mqtt.golang (MQTT 3.1.1) as
// the peer: what a 3.1.1 application sees of the broker.

import (
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	mqtt3packets "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/eclipse/paho.golang/paho"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
)

// v3Client is a paho.mqtt.golang client. Every message it receives lands
// in msgs, in order; subscriptions made with sub use the default handler so
// that one PUBLISH is one message even with overlapping subscriptions.
type v3Client struct {
	mqtt3.Client
	t    testing.TB
	id   string
	msgs chan mqtt3.Message
	lost chan error

	mu sync.Mutex
	nc net.Conn // the current network connection, for crash
}

// v3Setup adjusts the client options before connecting.
type v3Setup func(o *mqtt3.ClientOptions)

// cleanSession sets the Clean Session flag.
func cleanSession(clean bool) v3Setup {
	return func(o *mqtt3.ClientOptions) { o.SetCleanSession(clean) }
}

// dialV3 connects a 3.1.1 client (clean session, keep alive 30 s, no
// automatic reconnect) and returns its connect token, successful or not.
func dialV3(t testing.TB, addr, id string, setups ...v3Setup) (*v3Client, *mqtt3.ConnectToken) {
	t.Helper()
	c := &v3Client{t: t, id: id, msgs: make(chan mqtt3.Message, 10000), lost: make(chan error, 1)}
	o := mqtt3.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(id).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(rawWait).
		SetDefaultPublishHandler(func(_ mqtt3.Client, m mqtt3.Message) { c.msgs <- m }).
		SetConnectionLostHandler(func(_ mqtt3.Client, err error) {
			select {
			case c.lost <- err:
			default:
			}
		}).
		SetCustomOpenConnectionFn(func(uri *url.URL, _ mqtt3.ClientOptions) (net.Conn, error) {
			nc, err := net.DialTimeout("tcp", uri.Host, rawWait)
			if err == nil {
				c.mu.Lock()
				c.nc = nc
				c.mu.Unlock()
			}
			return nc, err
		})
	for _, s := range setups {
		s(o)
	}
	c.Client = mqtt3.NewClient(o)
	tok := c.Connect().(*mqtt3.ConnectToken)
	if !tok.WaitTimeout(2 * rawWait) {
		t.Fatalf("client %s: CONNECT timed out", id)
	}
	t.Cleanup(func() {
		if c.IsConnected() {
			c.Disconnect(50)
		}
	})
	return c, tok
}

// connectV3 is dialV3 failing the test unless the broker accepts.
func connectV3(t testing.TB, addr, id string, setups ...v3Setup) (*v3Client, *mqtt3.ConnectToken) {
	t.Helper()
	c, tok := dialV3(t, addr, id, setups...)
	if tok.Error() != nil {
		t.Fatalf("client %s: connect: %v (return code %d)", id, tok.Error(), tok.ReturnCode())
	}
	return c, tok
}

// wait waits for a token and fails the test on error.
func (c *v3Client) wait(what string, tok mqtt3.Token) {
	c.t.Helper()
	if !tok.WaitTimeout(rawWait) {
		c.t.Fatalf("client %s: %s timed out", c.id, what)
	}
	if err := tok.Error(); err != nil {
		c.t.Fatalf("client %s: %s: %v", c.id, what, err)
	}
}

// sub subscribes to filters at qos, failing unless each is granted.
func (c *v3Client) sub(qos byte, filters ...string) {
	c.t.Helper()
	m := map[string]byte{}
	for _, f := range filters {
		m[f] = qos
	}
	tok := c.SubscribeMultiple(m, nil)
	c.wait("subscribe", tok)
	for f, granted := range tok.(*mqtt3.SubscribeToken).Result() {
		if granted != qos {
			c.t.Fatalf("client %s: SUBACK for %q is %#02x, want %d", c.id, f, granted, qos)
		}
	}
}

// pub publishes and waits until the publish flow completes.
func (c *v3Client) pub(topic string, qos byte, retain bool, payload string) {
	c.t.Helper()
	c.wait("publish to "+topic, c.Publish(topic, qos, retain, payload))
}

// recv returns the next message, failing the test if none arrives.
func (c *v3Client) recv() mqtt3.Message {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(rawWait):
		c.t.Fatalf("client %s: no message within %v", c.id, rawWait)
		return nil
	}
}

// expectNext fails unless the next message has the given topic and payload.
func (c *v3Client) expectNext(topic, payload string) mqtt3.Message {
	c.t.Helper()
	m := c.recv()
	if m.Topic() != topic || string(m.Payload()) != payload {
		c.t.Fatalf("client %s: got %q %q, want %q %q", c.id, m.Topic(), m.Payload(), topic, payload)
	}
	return m
}

// expectQuiet fails the test if a message arrives within quietWait.
func (c *v3Client) expectQuiet() {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		c.t.Fatalf("client %s: unexpected message on %q: %q", c.id, m.Topic(), m.Payload())
	case <-time.After(quietWait):
	}
}

// crash drops the network connection without DISCONNECT.
func (c *v3Client) crash() {
	c.mu.Lock()
	_ = c.nc.Close()
	c.mu.Unlock()
}

// expectLost waits until the client notices that its connection is gone.
func (c *v3Client) expectLost() {
	c.t.Helper()
	select {
	case <-c.lost:
	case <-time.After(rawWait):
		c.t.Fatalf("client %s: connection not lost", c.id)
	}
}

// fenceV3 publishes a marker with QoS 1 and waits until sub gets it next.
func fenceV3(t testing.TB, pub, sub *v3Client, topic string) {
	t.Helper()
	pub.pub(topic, 1, false, "fence")
	sub.expectNext(topic, "fence")
}

func TestV3CleanSessionAndSessionPresent(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	pub, _ := connectV3(t, b.Addr, uniqueID("v3-pub"))
	id := uniqueID("v3-clean")

	c, tok := connectV3(t, b.Addr, id, cleanSession(false))
	if tok.SessionPresent() {
		t.Fatal("first CONNECT with Clean Session 0: Session Present 1, want 0")
	}
	c.sub(1, "v3clean/t")
	c.Disconnect(50)
	eventually(t, "the broker to see the client go", func() bool { return b.Stats().ClientsConnected.Load() == 1 })

	// Offline: QoS 1 is queued for the session, QoS 0 is not.
	pub.pub("v3clean/t", 0, false, "qos0-while-away")
	pub.pub("v3clean/t", 1, false, "qos1-while-away")

	c, tok = connectV3(t, b.Addr, id, cleanSession(false))
	if !tok.SessionPresent() {
		t.Fatal("resume with Clean Session 0: Session Present 0, want 1")
	}
	c.expectNext("v3clean/t", "qos1-while-away")
	fenceV3(t, pub, c, "v3clean/t")
	c.Disconnect(50)

	// Clean Session 1 discards the session [MQTT-3.1.2-6]...
	c, tok = connectV3(t, b.Addr, id, cleanSession(true))
	if tok.SessionPresent() {
		t.Fatal("Clean Session 1: Session Present 1, want 0 [MQTT-3.2.2-1]")
	}
	c.sub(1, "v3clean/fence")
	pub.pub("v3clean/t", 1, false, "not-subscribed")
	fenceV3(t, pub, c, "v3clean/fence")
	c.Disconnect(50)

	// ...and its own session ends with the connection.
	_, tok = connectV3(t, b.Addr, id, cleanSession(false))
	if tok.SessionPresent() {
		t.Fatal("after a Clean Session 1 connection: Session Present 1, want 0")
	}
}

func TestV3PersistentSessionCappedByMaxSessionExpiry(t *testing.T) {
	t.Parallel()
	// 3.1.1 cannot ask for an expiry: limits.maxSessionExpiry bounds how
	// long a Clean Session 0 session outlives its connection.
	b := startBroker(t, func(c *config.Config, _ *broker.Options) { c.Limits.MaxSessionExpiry = 1 })
	id := uniqueID("v3-capped")
	c, _ := connectV3(t, b.Addr, id, cleanSession(false))
	c.sub(1, "v3capped/t")
	c.Disconnect(50)
	eventually(t, "the session to expire", func() bool { return b.SessionCount() == 0 })
	if _, tok := connectV3(t, b.Addr, id, cleanSession(false)); tok.SessionPresent() {
		t.Fatal("Session Present 1 after the capped expiry ran out")
	}
}

func TestV3EmptyClientID(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	// [MQTT-3.1.3-6]: an empty id with Clean Session 1 gets one assigned.
	c1, _ := connectV3(t, b.Addr, "")
	c2, _ := connectV3(t, b.Addr, "")
	c1.sub(1, "v3empty/t")
	c2.pub("v3empty/t", 1, false, "hi")
	c1.expectNext("v3empty/t", "hi")
	// [MQTT-3.1.3-8]: with Clean Session 0 it is refused with return code 2.
	_, tok := dialV3(t, b.Addr, "", cleanSession(false))
	if tok.Error() == nil || tok.ReturnCode() != mqtt3packets.ErrRefusedIDRejected {
		t.Fatalf("empty id with Clean Session 0: error %v, return code %d; want identifier rejected (2)", tok.Error(), tok.ReturnCode())
	}
}

func TestV3KeepAliveAboveServerMaximum(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(c *config.Config, _ *broker.Options) { c.Limits.MaxKeepAlive = 10 })
	// 3.1.1 has no Server Keep Alive: a longer keep alive is refused, as
	// Mosquitto does with max_keepalive.
	_, tok := dialV3(t, b.Addr, uniqueID("v3-ka"), func(o *mqtt3.ClientOptions) { o.SetKeepAlive(60 * time.Second) })
	if tok.Error() == nil || tok.ReturnCode() != mqtt3packets.ErrRefusedIDRejected {
		t.Fatalf("keep alive 60 s above the maximum 10 s: error %v, return code %d; want refused", tok.Error(), tok.ReturnCode())
	}
	connectV3(t, b.Addr, uniqueID("v3-ka"), func(o *mqtt3.ClientOptions) { o.SetKeepAlive(5 * time.Second) })
}

func TestV3Will(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	for _, tc := range []struct {
		qos    byte
		retain bool
	}{{0, false}, {1, false}, {2, false}, {1, true}} {
		t.Run(fmt.Sprintf("QoS %d retain %v", tc.qos, tc.retain), func(t *testing.T) {
			t.Parallel()
			topic := uniqueID("v3will/t")
			watcher, _ := connectV3(t, b.Addr, uniqueID("v3-will-watch"))
			watcher.sub(2, topic)
			c, _ := connectV3(t, b.Addr, uniqueID("v3-will"), func(o *mqtt3.ClientOptions) {
				o.SetWill(topic, "gone", tc.qos, tc.retain)
			})
			c.crash()
			m := watcher.expectNext(topic, "gone")
			if m.Qos() != tc.qos || m.Retained() {
				t.Errorf("will delivered at QoS %d retained %v, want QoS %d not retained", m.Qos(), m.Retained(), tc.qos)
			}
			late, _ := connectV3(t, b.Addr, uniqueID("v3-will-late"))
			late.sub(2, topic)
			if tc.retain {
				if m := late.expectNext(topic, "gone"); !m.Retained() {
					t.Error("retained will sent to a new subscription with RETAIN 0")
				}
			}
			fenceV3(t, watcher, late, topic)
		})
	}

	t.Run("DISCONNECT discards the will", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t)
		topic := uniqueID("v3will/t")
		watcher, _ := connectV3(t, b.Addr, uniqueID("v3-will-watch"))
		watcher.sub(1, topic)
		c, _ := connectV3(t, b.Addr, uniqueID("v3-will"), func(o *mqtt3.ClientOptions) {
			o.SetWill(topic, "gone", 1, false)
		})
		c.Disconnect(50) // [MQTT-3.1.2-10]
		eventually(t, "the client to leave", func() bool { return b.SessionCount() == 1 })
		watcher.expectQuiet()
		fenceV3(t, watcher, watcher, topic)
	})
}

func TestV3QoS(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	pub, _ := connectV3(t, b.Addr, uniqueID("v3-qos-pub"))
	for subQoS := range byte(3) {
		sub, _ := connectV3(t, b.Addr, uniqueID("v3-qos-sub"))
		topic := fmt.Sprintf("v3qos/sub%d", subQoS)
		sub.sub(subQoS, topic)
		for pubQoS := range byte(3) {
			pub.pub(topic, pubQoS, false, fmt.Sprint(pubQoS))
			m := sub.expectNext(topic, fmt.Sprint(pubQoS))
			if want := min(pubQoS, subQoS); m.Qos() != want {
				t.Errorf("published QoS %d, subscribed QoS %d: delivered QoS %d, want %d", pubQoS, subQoS, m.Qos(), want)
			}
		}
	}
}

func TestV3SessionTakeover(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	id := uniqueID("v3-takeover")
	pub, _ := connectV3(t, b.Addr, uniqueID("v3-takeover-pub"))
	first, _ := connectV3(t, b.Addr, id, cleanSession(false))
	first.sub(1, "v3takeover/t")
	// [MQTT-3.1.4-2]: the broker closes the existing connection.
	second, tok := connectV3(t, b.Addr, id, cleanSession(false))
	first.expectLost()
	if !tok.SessionPresent() {
		t.Fatal("takeover with Clean Session 0: Session Present 0, want 1")
	}
	pub.pub("v3takeover/t", 1, false, "to-second")
	second.expectNext("v3takeover/t", "to-second")
}

// TestV3TakeoverOfCleanSession checks that a Clean Session 1 session,
// which lasts only as long as its connection, is not handed to a
// connection that takes it over with Clean Session 0.
func TestV3TakeoverOfCleanSession(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	id := uniqueID("v3-takeover-clean")
	first, _ := connectV3(t, b.Addr, id, cleanSession(true))
	first.sub(1, "v3takeover/clean")
	second, tok := connectV3(t, b.Addr, id, cleanSession(false))
	first.expectLost()
	if tok.SessionPresent() {
		t.Fatal("took over a Clean Session 1 connection: Session Present 1, want 0")
	}
	second.sub(1, "v3takeover/fence")
	second.pub("v3takeover/clean", 1, false, "not-subscribed")
	fenceV3(t, second, second, "v3takeover/fence")
}

func TestV3RetainedMessages(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	pub, _ := connectV3(t, b.Addr, uniqueID("v3-ret-pub"))
	newSub := func() *v3Client {
		s, _ := connectV3(t, b.Addr, uniqueID("v3-ret-sub"))
		s.sub(1, "v3ret/#")
		return s
	}
	pub.pub("v3ret/a", 1, true, "one")
	s := newSub()
	if m := s.expectNext("v3ret/a", "one"); !m.Retained() {
		t.Error("retained message sent on subscribe with RETAIN 0")
	}
	// Delivered live to an existing subscription, the flag is cleared
	// [MQTT-3.3.1-9].
	pub.pub("v3ret/a", 1, true, "two")
	if m := s.expectNext("v3ret/a", "two"); m.Retained() {
		t.Error("live delivery of a retained publish with RETAIN 1")
	}
	s = newSub()
	s.expectNext("v3ret/a", "two")
	fenceV3(t, pub, s, "v3ret/fence")

	pub.pub("v3ret/a", 1, true, "")
	s = newSub()
	fenceV3(t, pub, s, "v3ret/fence")
}

func TestV3OverlappingSubscriptions(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c, _ := connectV3(t, b.Addr, uniqueID("v3-overlap"))
	c.wait("subscribe", c.SubscribeMultiple(map[string]byte{"v3ov/+": 0, "v3ov/#": 2, "v3ov/x": 1}, nil))
	c.pub("v3ov/x", 2, false, "once")
	// One delivery at the highest granted QoS (allowed by 3.1.1 and what
	// 5.0 requires).
	if m := c.expectNext("v3ov/x", "once"); m.Qos() != 2 {
		t.Errorf("delivered at QoS %d, want 2", m.Qos())
	}
	fenceV3(t, c, c, "v3ov/fence")
}

func TestV3Unsubscribe(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c, _ := connectV3(t, b.Addr, uniqueID("v3-unsub"))
	c.sub(1, "v3un/a", "v3un/b")
	c.wait("unsubscribe", c.Unsubscribe("v3un/a", "v3un/never"))
	c.pub("v3un/a", 1, false, "unsubscribed")
	c.pub("v3un/b", 1, false, "still subscribed")
	c.expectNext("v3un/b", "still subscribed")
}

func TestV3SharedSubscriptionAcrossVersions(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	const total = 30
	m3a, _ := connectV3(t, b.Addr, uniqueID("v3-share"))
	m3b, _ := connectV3(t, b.Addr, uniqueID("v3-share"))
	m3a.sub(1, "$share/mixed/v3share/#")
	m3b.sub(1, "$share/mixed/v3share/#")
	m5 := connectV5(t, b.Addr, uniqueID("v5-share"))
	m5.sub(1, "$share/mixed/v3share/#")
	pub, _ := connectV3(t, b.Addr, uniqueID("v3-share-pub"))
	for i := range total {
		pub.pub("v3share/t", 1, false, fmt.Sprint(i))
	}
	seen := map[string]int{}
	counts := [3]int{}
	eventually(t, "the group to receive every message", func() bool {
		for drained := false; !drained; {
			select {
			case m := <-m3a.msgs:
				seen[string(m.Payload())]++
				counts[0]++
			case m := <-m3b.msgs:
				seen[string(m.Payload())]++
				counts[1]++
			case p := <-m5.msgs:
				seen[string(p.Payload)]++
				counts[2]++
			default:
				drained = true
			}
		}
		return counts[0]+counts[1]+counts[2] >= total
	})
	if len(seen) != total || counts[0]+counts[1]+counts[2] != total {
		t.Errorf("group got %d messages, %d distinct, want %d once each", counts[0]+counts[1]+counts[2], len(seen), total)
	}
	for i, n := range counts {
		if n == 0 {
			t.Errorf("member %d got no messages (counts %v)", i, counts)
		}
	}
}

func TestV3AndV5Interoperate(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	s3, _ := connectV3(t, b.Addr, uniqueID("v3-interop"))
	s3.sub(2, "interop/#")
	s5 := connectV5(t, b.Addr, uniqueID("v5-interop"))
	s5.sub(2, "interop/#")
	p5 := connectV5(t, b.Addr, uniqueID("v5-interop-pub"))
	p3, _ := connectV3(t, b.Addr, uniqueID("v3-interop-pub"))

	// A v5 message with properties reaches a v3 subscriber as topic and
	// payload; the properties cannot be expressed and are left out.
	p5.publish(&paho.Publish{Topic: "interop/from5", QoS: 2, Payload: []byte("five"),
		Properties: &paho.PublishProperties{ContentType: "text/plain", User: paho.UserProperties{{Key: "k", Value: "v"}}}})
	if m := s3.expectNext("interop/from5", "five"); m.Qos() != 2 {
		t.Errorf("v3 subscriber got QoS %d, want 2", m.Qos())
	}
	if p := s5.expectNext("interop/from5", "five"); props(p).ContentType != "text/plain" {
		t.Errorf("v5 subscriber got Content Type %q", props(p).ContentType)
	}
	// A v3 message reaches a v5 subscriber without properties.
	p3.pub("interop/from3", 1, false, "three")
	s3.expectNext("interop/from3", "three")
	p := s5.expectNext("interop/from3", "three")
	if pp := props(p); pp.ContentType != "" || len(pp.User) != 0 || pp.MessageExpiry != nil {
		t.Errorf("v5 subscriber got properties %+v on a v3 message", pp)
	}
}
