package broker_test

// Behaviour tests with github.com/eclipse/paho.golang (MQTT 5.0) as the
// peer: what a v5 application sees of the broker on the wire.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/packet"
)

// v5Client is a paho.golang client on its own TCP connection to a test
// broker. Every PUBLISH it receives lands in msgs, in order.
type v5Client struct {
	*paho.Client
	t       testing.TB
	nc      net.Conn
	connack *paho.Connack
	msgs    chan *paho.Publish
	// disconnects receives the DISCONNECT the broker sends, if any.
	disconnects chan *paho.Disconnect
}

// v5Setup adjusts the CONNECT packet and client config before connecting.
type v5Setup func(cp *paho.Connect, cc *paho.ClientConfig)

// connectV5 connects a paho.golang client with client id id (clean start,
// keep alive 30 s unless a setup says otherwise) and fails the test if the
// broker refuses it. The client disconnects when the test ends.
func connectV5(t testing.TB, addr, id string, setups ...v5Setup) *v5Client {
	t.Helper()
	c, ack, err := dialV5(t, addr, id, setups...)
	if err != nil {
		code := byte(0)
		if ack != nil {
			code = ack.ReasonCode
		}
		t.Fatalf("connect %q: %v (reason %#02x)", id, err, code)
	}
	return c
}

// dialV5 is connectV5 returning the refusal instead of failing.
func dialV5(t testing.TB, addr, id string, setups ...v5Setup) (*v5Client, *paho.Connack, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, rawWait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c := &v5Client{
		t:           t,
		nc:          nc,
		msgs:        make(chan *paho.Publish, 10000),
		disconnects: make(chan *paho.Disconnect, 1),
	}
	cp := &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}
	cc := paho.ClientConfig{
		Conn: nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				c.msgs <- pr.Packet
				return true, nil
			},
		},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case c.disconnects <- d:
			default:
			}
		},
		OnClientError: func(error) {},
	}
	for _, s := range setups {
		s(cp, &cc)
	}
	c.Client = paho.NewClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), rawWait)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		_ = nc.Close()
		return nil, ack, err
	}
	c.connack = ack
	t.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0})
		_ = nc.Close()
	})
	return c, ack, nil
}

// connectProps returns the CONNECT properties, creating them with paho's
// defaults.
func connectProps(cp *paho.Connect) *paho.ConnectProperties {
	if cp.Properties == nil {
		cp.Properties = &paho.ConnectProperties{RequestProblemInfo: true}
	}
	return cp.Properties
}

// sessionExpiry asks for a Session Expiry Interval of sec seconds.
func sessionExpiry(sec uint32) v5Setup {
	return func(cp *paho.Connect, _ *paho.ClientConfig) { connectProps(cp).SessionExpiryInterval = &sec }
}

// resume connects with Clean Start 0.
func resume(cp *paho.Connect, _ *paho.ClientConfig) { cp.CleanStart = false }

// keepAlive sets the Keep Alive of CONNECT in seconds.
func keepAlive(sec uint16) v5Setup {
	return func(cp *paho.Connect, _ *paho.ClientConfig) { cp.KeepAlive = sec }
}

// receiveMaximum sets the client's Receive Maximum and acknowledges
// messages only when the test calls Ack.
func receiveMaximum(n uint16) v5Setup {
	return func(cp *paho.Connect, cc *paho.ClientConfig) {
		connectProps(cp).ReceiveMaximum = &n
		cc.EnableManualAcknowledgment = true
	}
}

// will sets the will message and its properties.
func will(w *paho.WillMessage, wp *paho.WillProperties) v5Setup {
	return func(cp *paho.Connect, _ *paho.ClientConfig) { cp.WillMessage, cp.WillProperties = w, wp }
}

func ptr[T any](v T) *T { return &v }

// recv returns the next message, failing the test if none arrives.
func (c *v5Client) recv() *paho.Publish {
	c.t.Helper()
	select {
	case p := <-c.msgs:
		return p
	case <-time.After(rawWait):
		c.t.Fatalf("client %s: no message within %v", c.ClientID(), rawWait)
		return nil
	}
}

// recvN returns the next n messages.
func (c *v5Client) recvN(n int) []*paho.Publish {
	c.t.Helper()
	out := make([]*paho.Publish, n)
	for i := range out {
		out[i] = c.recv()
	}
	return out
}

// expectQuiet fails the test if a message arrives within quietWait.
func (c *v5Client) expectQuiet() {
	c.t.Helper()
	select {
	case p := <-c.msgs:
		c.t.Fatalf("client %s: unexpected message on %q: %q", c.ClientID(), p.Topic, p.Payload)
	case <-time.After(quietWait):
	}
}

// expectNext fails unless the next message has the given topic and payload.
func (c *v5Client) expectNext(topic, payload string) *paho.Publish {
	c.t.Helper()
	p := c.recv()
	if p.Topic != topic || string(p.Payload) != payload {
		c.t.Fatalf("client %s: got %q %q, want %q %q", c.ClientID(), p.Topic, p.Payload, topic, payload)
	}
	return p
}

// publish sends p and waits for its acknowledgement, failing the test on error.
func (c *v5Client) publish(p *paho.Publish) *paho.PublishResponse {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rawWait)
	defer cancel()
	r, err := c.Publish(ctx, p)
	if err != nil {
		c.t.Fatalf("client %s: publish to %q: %v", c.ClientID(), p.Topic, err)
	}
	return r
}

// pub publishes a payload without properties.
func (c *v5Client) pub(topic string, qos byte, retain bool, payload string) {
	c.t.Helper()
	c.publish(&paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)})
}

// subscribeWith sends one SUBSCRIBE and returns the SUBACK, failing the
// test only on a transport error or a missing SUBACK.
func (c *v5Client) subscribeWith(subID int, opts ...paho.SubscribeOptions) *paho.Suback {
	c.t.Helper()
	s := &paho.Subscribe{Subscriptions: opts}
	if subID != 0 {
		s.Properties = &paho.SubscribeProperties{SubscriptionIdentifier: &subID}
	}
	ctx, cancel := context.WithTimeout(context.Background(), rawWait)
	defer cancel()
	ack, err := c.Subscribe(ctx, s)
	if ack == nil {
		c.t.Fatalf("client %s: subscribe: %v", c.ClientID(), err)
	}
	return ack
}

// sub subscribes to filters at qos and fails unless every one is granted.
func (c *v5Client) sub(qos byte, filters ...string) {
	c.t.Helper()
	opts := make([]paho.SubscribeOptions, len(filters))
	for i, f := range filters {
		opts[i] = paho.SubscribeOptions{Topic: f, QoS: qos}
	}
	ack := c.subscribeWith(0, opts...)
	for i, rc := range ack.Reasons {
		if rc != qos {
			c.t.Fatalf("client %s: SUBACK for %q is %#02x, want %d", c.ClientID(), filters[i], rc, qos)
		}
	}
}

// crash drops the network connection without DISCONNECT.
func (c *v5Client) crash() {
	_ = c.nc.Close()
	<-c.Done()
}

// expectServerDisconnect fails unless the broker sent DISCONNECT with rc.
func (c *v5Client) expectServerDisconnect(rc packet.ReasonCode) {
	c.t.Helper()
	select {
	case d := <-c.disconnects:
		if d.ReasonCode != byte(rc) {
			c.t.Fatalf("client %s: DISCONNECT reason %#02x, want %#02x (%v)", c.ClientID(), d.ReasonCode, byte(rc), rc)
		}
	case <-time.After(rawWait):
		c.t.Fatalf("client %s: no DISCONNECT %v from the broker", c.ClientID(), rc)
	}
}

// props returns the properties of a received message, never nil.
func props(p *paho.Publish) *paho.PublishProperties {
	if p.Properties == nil {
		return &paho.PublishProperties{}
	}
	return p.Properties
}

// fence publishes a marker on topic from c with QoS 1 and waits until sub
// receives it; every message routed to sub before the fence has then been
// delivered, so a missing message is really missing, without a timed wait.
func fence(t testing.TB, pub *v5Client, sub *v5Client, topic string) {
	t.Helper()
	pub.pub(topic, 1, false, "fence")
	if p := sub.recv(); p.Topic != topic || string(p.Payload) != "fence" {
		t.Fatalf("client %s: got %q %q before the fence", sub.ClientID(), p.Topic, p.Payload)
	}
}

func TestV5CleanStartAndSessionPresent(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	pub := connectV5(t, b.Addr, uniqueID("v5-pub"))
	id := uniqueID("v5-clean")

	// Clean Start 0 with no session: a new session, Session Present 0.
	c := connectV5(t, b.Addr, id, resume, sessionExpiry(60))
	if c.connack.SessionPresent {
		t.Fatal("first CONNECT: Session Present 1, want 0")
	}
	c.sub(1, "clean/t")
	_ = c.Disconnect(&paho.Disconnect{})

	// Offline: the subscription lives on and QoS 1 is queued.
	pub.pub("clean/t", 1, false, "while-away")

	c = connectV5(t, b.Addr, id, resume, sessionExpiry(60))
	if !c.connack.SessionPresent {
		t.Fatal("resume: Session Present 0, want 1")
	}
	c.expectNext("clean/t", "while-away")
	_ = c.Disconnect(&paho.Disconnect{})

	// Clean Start 1 discards the session and its subscription.
	c = connectV5(t, b.Addr, id, sessionExpiry(60))
	if c.connack.SessionPresent {
		t.Fatal("Clean Start 1: Session Present 1, want 0")
	}
	c.sub(1, "fence/clean")
	pub.pub("clean/t", 1, false, "not-subscribed")
	fence(t, pub, c, "fence/clean")
	_ = c.Disconnect(&paho.Disconnect{})

	// The session made by Clean Start 1 is resumable too.
	c = connectV5(t, b.Addr, id, resume)
	if !c.connack.SessionPresent {
		t.Fatal("resume after Clean Start 1: Session Present 0, want 1")
	}
	_ = c.Disconnect(&paho.Disconnect{})

	// That connection asked for Session Expiry 0: the session ended with it.
	c = connectV5(t, b.Addr, id, resume)
	if c.connack.SessionPresent {
		t.Fatal("resume after a session with expiry 0: Session Present 1, want 0")
	}
}

func TestV5SessionExpiry(t *testing.T) {
	t.Parallel()

	t.Run("kept until the interval runs out", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t)
		id := uniqueID("v5-expiry")
		c := connectV5(t, b.Addr, id, sessionExpiry(2))
		c.sub(1, "exp/t")
		_ = c.Disconnect(&paho.Disconnect{})

		c = connectV5(t, b.Addr, id, resume, sessionExpiry(2))
		if !c.connack.SessionPresent {
			t.Fatal("reconnect within the expiry interval: Session Present 0, want 1")
		}
		_ = c.Disconnect(&paho.Disconnect{})
		// The session and its subscription go when the interval runs out.
		eventually(t, "the session to expire", func() bool {
			return b.SessionCount() == 0 && b.Stats().Subscriptions.Load() == 0
		})

		c = connectV5(t, b.Addr, id, resume, sessionExpiry(2))
		if c.connack.SessionPresent {
			t.Fatal("reconnect after the session expired: Session Present 1, want 0")
		}
	})

	t.Run("DISCONNECT sets the interval to 0", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t)
		id := uniqueID("v5-expiry")
		c := connectV5(t, b.Addr, id, sessionExpiry(60))
		_ = c.Disconnect(&paho.Disconnect{Properties: &paho.DisconnectProperties{SessionExpiryInterval: ptr(uint32(0))}})
		eventually(t, "the session to end", func() bool { return b.SessionCount() == 0 })
		c = connectV5(t, b.Addr, id, resume)
		if c.connack.SessionPresent {
			t.Fatal("Session Present 1 after DISCONNECT with Session Expiry 0")
		}
	})

	t.Run("DISCONNECT cannot extend a session that ends with the connection", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t)
		c, _ := connectRaw(t, b.Addr, &packet.Connect{ClientID: uniqueID("v5-expiry"), CleanStart: true, KeepAlive: 30})
		c.send(&packet.Disconnect{Properties: packet.Properties{SessionExpiry: 60, HasSessionExpiry: true}})
		// [MQTT-3.14.2-2]: a protocol error, answered with DISCONNECT 0x82.
		c.expectDisconnect(packet.ProtocolError)
		eventually(t, "the session to end", func() bool { return b.SessionCount() == 0 })
	})

	t.Run("capped by limits.maxSessionExpiry", func(t *testing.T) {
		t.Parallel()
		b := startBroker(t, func(c *config.Config, _ *broker.Options) { c.Limits.MaxSessionExpiry = 30 })
		c := connectV5(t, b.Addr, uniqueID("v5-expiry"), sessionExpiry(3600))
		got := c.connack.Properties.SessionExpiryInterval
		if got == nil || *got != 30 {
			t.Fatalf("CONNACK Session Expiry Interval %v, want 30", got)
		}
	})
}

func TestV5AssignedClientID(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c1 := connectV5(t, b.Addr, "", resume, sessionExpiry(60))
	c2 := connectV5(t, b.Addr, "")
	id1, id2 := c1.connack.Properties.AssignedClientID, c2.connack.Properties.AssignedClientID
	if id1 == "" || id2 == "" {
		t.Fatalf("CONNACK Assigned Client Identifier %q, %q; want both set", id1, id2)
	}
	if id1 == id2 {
		t.Fatalf("two clients were assigned the same id %q", id1)
	}
	if c1.ClientID() != id1 {
		t.Fatalf("client uses id %q, CONNACK assigned %q", c1.ClientID(), id1)
	}
	// The assigned id names a real session that a later connection resumes.
	c1.sub(1, "assigned/t")
	_ = c1.Disconnect(&paho.Disconnect{})
	c3 := connectV5(t, b.Addr, id1, resume, sessionExpiry(60))
	if !c3.connack.SessionPresent {
		t.Fatal("resume with the assigned id: Session Present 0, want 1")
	}
	if c3.connack.Properties.AssignedClientID != "" {
		t.Fatalf("CONNACK assigned %q to a client that sent an id", c3.connack.Properties.AssignedClientID)
	}
	c2.pub("assigned/t", 1, false, "hello")
	c3.expectNext("assigned/t", "hello")
}

func TestV5ServerKeepAlive(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(c *config.Config, _ *broker.Options) { c.Limits.MaxKeepAlive = 2 })

	for _, tc := range []struct {
		asked uint16
		want  *uint16 // Server Keep Alive in CONNACK; nil means absent
	}{
		{asked: 60, want: ptr(uint16(2))},
		{asked: 0, want: ptr(uint16(2))},
		{asked: 2, want: nil},
		{asked: 1, want: nil},
	} {
		c := connectV5(t, b.Addr, uniqueID("v5-ska"), keepAlive(tc.asked))
		got := c.connack.Properties.ServerKeepAlive
		switch {
		case tc.want == nil && got != nil:
			t.Errorf("keep alive %d: Server Keep Alive %d, want none", tc.asked, *got)
		case tc.want != nil && (got == nil || *got != *tc.want):
			t.Errorf("keep alive %d: Server Keep Alive %v, want %d", tc.asked, got, *tc.want)
		}
	}

	t.Run("paho adopts it", func(t *testing.T) {
		t.Parallel()
		// paho pings within the server's keep alive, so it stays connected
		// well past 1.5x the server's keep alive.
		c := connectV5(t, b.Addr, uniqueID("v5-ska"), keepAlive(60))
		time.Sleep(3500 * time.Millisecond) // beyond 1.5x the server keep alive
		c.sub(0, "ska/t")
		c.pub("ska/t", 0, false, "still here")
		c.expectNext("ska/t", "still here")
	})

	t.Run("enforced on a silent client", func(t *testing.T) {
		t.Parallel()
		// A client that asked for 60 s is held to the server's 2 s.
		raw, ack := connectRaw(t, b.Addr, &packet.Connect{ClientID: uniqueID("v5-ska-raw"), CleanStart: true, KeepAlive: 60})
		if !ack.Properties.HasServerKeepAlive || ack.Properties.ServerKeepAlive != 2 {
			t.Fatalf("raw CONNACK Server Keep Alive %v/%d, want 2", ack.Properties.HasServerKeepAlive, ack.Properties.ServerKeepAlive)
		}
		raw.expectDisconnect(packet.KeepAliveTimeout)
	})
}

func TestV5ReceiveMaximumToClient(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	const total = 6
	sub := connectV5(t, b.Addr, uniqueID("v5-rm-sub"), receiveMaximum(2))
	sub.sub(1, "rm/t")
	pub := connectV5(t, b.Addr, uniqueID("v5-rm-pub"))
	for i := range total {
		pub.pub("rm/t", 1, false, fmt.Sprint(i))
	}

	var got []string
	for len(got) < total {
		// The broker sends at most two unacknowledged QoS 1 messages.
		batch := sub.recvN(2)
		if len(got)+2 < total {
			sub.expectQuiet()
		}
		for _, p := range batch {
			got = append(got, string(p.Payload))
			if err := sub.Ack(p); err != nil {
				t.Fatalf("ack: %v", err)
			}
		}
	}
	if want := []string{"0", "1", "2", "3", "4", "5"}; !slices.Equal(got, want) {
		t.Fatalf("received %v, want %v in order", got, want)
	}
}

func TestV5MaximumPacketSizeToClient(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	// Receive Maximum 1 also shows that a dropped QoS 1 message frees its
	// slot: otherwise nothing after it could be delivered.
	sub := connectV5(t, b.Addr, uniqueID("v5-mps-sub"), func(cp *paho.Connect, _ *paho.ClientConfig) {
		connectProps(cp).MaximumPacketSize = ptr(uint32(256))
		connectProps(cp).ReceiveMaximum = ptr(uint16(1))
	})
	sub.sub(1, "mps/#")
	pub := connectV5(t, b.Addr, uniqueID("v5-mps-pub"))
	big := string(bytes.Repeat([]byte("x"), 1000))
	pub.pub("mps/q1", 1, false, big)
	pub.pub("mps/q1", 1, false, "small-1")
	pub.pub("mps/q0", 0, false, big)
	pub.pub("mps/q0", 0, false, "small-0")
	// [MQTT-3.1.2-25]: oversize messages are dropped for this client only.
	sub.expectNext("mps/q1", "small-1")
	sub.expectNext("mps/q0", "small-0")
	if n := b.Stats().DroppedTooLarge.Load(); n != 2 {
		t.Fatalf("DroppedTooLarge = %d, want 2", n)
	}
	// Another subscriber without a limit gets the big message.
	other := connectV5(t, b.Addr, uniqueID("v5-mps-other"))
	other.sub(1, "mps/#")
	pub.pub("mps/q1", 1, false, big)
	if p := other.recv(); len(p.Payload) != len(big) {
		t.Fatalf("unlimited subscriber got %d bytes, want %d", len(p.Payload), len(big))
	}
}

func TestV5TopicAliasFromClient(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	pub := connectV5(t, b.Addr, uniqueID("v5-alias-pub"))
	if m := pub.connack.Properties.TopicAliasMaximum; m == nil || *m == 0 {
		t.Fatalf("CONNACK Topic Alias Maximum %v, want > 0", m)
	}
	sub := connectV5(t, b.Addr, uniqueID("v5-alias-sub"))
	sub.sub(1, "alias/#")

	alias := func(a uint16) *paho.PublishProperties { return &paho.PublishProperties{TopicAlias: &a} }
	pub.publish(&paho.Publish{Topic: "alias/one", QoS: 1, Payload: []byte("set"), Properties: alias(1)})
	pub.publish(&paho.Publish{Topic: "", QoS: 1, Payload: []byte("use"), Properties: alias(1)})
	pub.publish(&paho.Publish{Topic: "alias/two", QoS: 1, Payload: []byte("reset"), Properties: alias(1)})
	pub.publish(&paho.Publish{Topic: "", QoS: 0, Payload: []byte("use-again"), Properties: alias(1)})
	// Subscribers see the topic name, never the publisher's alias.
	for _, want := range [][2]string{{"alias/one", "set"}, {"alias/one", "use"}, {"alias/two", "reset"}, {"alias/two", "use-again"}} {
		p := sub.expectNext(want[0], want[1])
		if p.Properties != nil && p.Properties.TopicAlias != nil {
			t.Fatalf("subscriber without Topic Alias Maximum got alias %d", *p.Properties.TopicAlias)
		}
	}
}

func TestV5TopicAliasToClient(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	sub := connectV5(t, b.Addr, uniqueID("v5-alias-sub"), func(cp *paho.Connect, _ *paho.ClientConfig) {
		connectProps(cp).TopicAliasMaximum = ptr(uint16(2))
	})
	sub.sub(0, "ta/#")
	pub := connectV5(t, b.Addr, uniqueID("v5-alias-pub"))
	topics := []string{"ta/a", "ta/a", "ta/b", "ta/c", "ta/c", "ta/a", "ta/b"}
	for i, tp := range topics {
		pub.pub(tp, 0, false, fmt.Sprint(i))
	}
	aliases := map[uint16]string{}
	usedAlias := map[string]bool{}
	for i, want := range topics {
		p := sub.recv()
		tp := p.Topic
		if a := props(p).TopicAlias; a != nil {
			if *a == 0 || *a > 2 {
				t.Fatalf("message %d: alias %d outside the client's maximum 2", i, *a)
			}
			if tp != "" {
				aliases[*a] = tp
			} else {
				tp = aliases[*a]
				usedAlias[tp] = true
			}
		}
		if tp != want || string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: topic %q (wire %q) payload %q, want %q", i, tp, p.Topic, p.Payload, want)
		}
	}
	if !usedAlias["ta/a"] {
		t.Fatal("the repeated topic ta/a was never sent as an alias alone")
	}
}

func TestV5RequestResponseInformation(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	asked := connectV5(t, b.Addr, uniqueID("v5-rri"), func(cp *paho.Connect, _ *paho.ClientConfig) {
		connectProps(cp).RequestResponseInfo = true
	})
	if asked.connack.Properties.ResponseInfo == "" {
		t.Fatal("Request Response Information 1: CONNACK has no Response Information")
	}
	notAsked := connectV5(t, b.Addr, uniqueID("v5-rri"), sessionExpiry(0))
	if ri := notAsked.connack.Properties.ResponseInfo; ri != "" {
		t.Fatalf("Request Response Information 0: CONNACK Response Information %q, want none [MQTT-3.1.2-28]", ri)
	}
	// The response topic works as one: a requester subscribes under it
	// and a responder answers on it.
	rt := asked.connack.Properties.ResponseInfo + "/reply"
	asked.sub(1, rt)
	notAsked.pub(rt, 1, false, "answer")
	asked.expectNext(rt, "answer")
}

func TestV5MessagePropertiesPassThrough(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	sub := connectV5(t, b.Addr, uniqueID("v5-props-sub"))
	sub.sub(2, "props/#")
	pub := connectV5(t, b.Addr, uniqueID("v5-props-pub"))
	want := paho.PublishProperties{
		PayloadFormat:   ptr(byte(1)),
		ContentType:     "application/json; charset=utf-8",
		ResponseTopic:   "props/reply/42",
		CorrelationData: []byte{0, 1, 2, 0xfe, 0xff},
		User: paho.UserProperties{
			{Key: "k", Value: "first"},
			{Key: "k", Value: "second"}, // repeated keys keep their order [MQTT-3.3.2-18]
			{Key: "empty", Value: ""},
			{Key: "ünïcode", Value: "✓"},
		},
	}
	check := func(what string, p *paho.Publish) {
		t.Helper()
		got := props(p)
		if got.PayloadFormat == nil || *got.PayloadFormat != 1 {
			t.Errorf("%s: Payload Format %v, want 1", what, got.PayloadFormat)
		}
		if got.ContentType != want.ContentType || got.ResponseTopic != want.ResponseTopic {
			t.Errorf("%s: Content Type %q Response Topic %q, want %q %q", what, got.ContentType, got.ResponseTopic, want.ContentType, want.ResponseTopic)
		}
		if !bytes.Equal(got.CorrelationData, want.CorrelationData) {
			t.Errorf("%s: Correlation Data %x, want %x", what, got.CorrelationData, want.CorrelationData)
		}
		if !slices.Equal(got.User, want.User) {
			t.Errorf("%s: User Properties %v, want %v", what, got.User, want.User)
		}
	}
	for qos := range byte(3) {
		pp := want
		pub.publish(&paho.Publish{Topic: "props/live", QoS: qos, Payload: []byte(`{"q":1}`), Properties: &pp})
		check(fmt.Sprintf("QoS %d", qos), sub.recv())
	}
	// A retained message keeps them for later subscribers too.
	pp := want
	pub.publish(&paho.Publish{Topic: "props/retained", QoS: 1, Retain: true, Payload: []byte(`{}`), Properties: &pp})
	sub.recv()
	late := connectV5(t, b.Addr, uniqueID("v5-props-late"))
	late.sub(1, "props/retained")
	check("retained", late.recv())
}

func TestV5QoS(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	pub := connectV5(t, b.Addr, uniqueID("v5-qos-pub"))
	for subQoS := range byte(3) {
		sub := connectV5(t, b.Addr, uniqueID("v5-qos-sub"))
		topic := fmt.Sprintf("qos/sub%d", subQoS)
		sub.sub(subQoS, topic)
		for pubQoS := range byte(3) {
			pub.pub(topic, pubQoS, false, fmt.Sprint(pubQoS))
			p := sub.expectNext(topic, fmt.Sprint(pubQoS))
			// The delivered QoS is the lower of the published and granted QoS.
			if want := min(pubQoS, subQoS); p.QoS != want {
				t.Errorf("published QoS %d, subscribed QoS %d: delivered QoS %d, want %d", pubQoS, subQoS, p.QoS, want)
			}
		}
	}
	// v5 tells a QoS 1 publisher that nobody was listening (QoS 2 says it
	// in PUBREC, which paho does not expose; see TestRawExactlyOnceQoS2).
	r := pub.publish(&paho.Publish{Topic: "qos/nobody", QoS: 1, Payload: []byte("x")})
	if r.ReasonCode != byte(packet.NoMatchingSubscribers) {
		t.Errorf("QoS 1 publish without subscribers: reason %#02x, want 0x10", r.ReasonCode)
	}
}

func TestV5Will(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	for _, tc := range []struct {
		qos    byte
		retain bool
	}{{0, false}, {1, false}, {2, false}, {0, true}, {1, true}, {2, true}} {
		t.Run(fmt.Sprintf("QoS %d retain %v", tc.qos, tc.retain), func(t *testing.T) {
			t.Parallel()
			topic := uniqueID("will/t")
			watcher := connectV5(t, b.Addr, uniqueID("v5-will-watch"))
			watcher.sub(2, topic)
			c := connectV5(t, b.Addr, uniqueID("v5-will"), will(&paho.WillMessage{
				Topic: topic, QoS: tc.qos, Retain: tc.retain, Payload: []byte("gone"),
			}, nil))
			c.crash()
			p := watcher.expectNext(topic, "gone")
			if p.QoS != tc.qos {
				t.Errorf("will delivered at QoS %d, want %d", p.QoS, tc.qos)
			}
			if p.Retain {
				t.Error("will delivered to an existing subscription with RETAIN 1")
			}
			late := connectV5(t, b.Addr, uniqueID("v5-will-late"))
			late.sub(2, topic, "fence/"+topic)
			if tc.retain {
				if p := late.expectNext(topic, "gone"); !p.Retain {
					t.Error("retained will sent to a new subscription with RETAIN 0")
				}
			}
			fence(t, watcher, late, "fence/"+topic)
		})
	}
}

func TestV5WillDelay(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	willFor := func(topic string, delay uint32) v5Setup {
		return will(&paho.WillMessage{Topic: topic, QoS: 1, Payload: []byte("delayed")},
			&paho.WillProperties{WillDelayInterval: &delay})
	}

	t.Run("published after the delay", func(t *testing.T) {
		t.Parallel()
		topic := uniqueID("wd/published")
		watcher := connectV5(t, b.Addr, uniqueID("v5-wd-watch"))
		watcher.sub(1, topic)
		c := connectV5(t, b.Addr, uniqueID("v5-wd"), sessionExpiry(60), willFor(topic, 1))
		c.crash()
		watcher.expectQuiet() // not at once: the delay is 1 s
		watcher.expectNext(topic, "delayed")
	})

	t.Run("cancelled by reconnecting", func(t *testing.T) {
		t.Parallel()
		topic := uniqueID("wd/cancelled")
		watcher := connectV5(t, b.Addr, uniqueID("v5-wd-watch"))
		watcher.sub(1, topic, "fence/"+topic)
		id := uniqueID("v5-wd")
		c := connectV5(t, b.Addr, id, sessionExpiry(60), willFor(topic, 2))
		c.crash()
		c = connectV5(t, b.Addr, id, resume, sessionExpiry(60))
		if !c.connack.SessionPresent {
			t.Fatal("reconnect: Session Present 0, want 1")
		}
		time.Sleep(2500 * time.Millisecond) // past the will delay
		fence(t, c, watcher, "fence/"+topic)
	})

	t.Run("published when the session ends first", func(t *testing.T) {
		t.Parallel()
		topic := uniqueID("wd/session-end")
		watcher := connectV5(t, b.Addr, uniqueID("v5-wd-watch"))
		watcher.sub(1, topic)
		// [MQTT-3.1.3-9]: the will goes out at the earlier of the delay
		// and the end of the session.
		c := connectV5(t, b.Addr, uniqueID("v5-wd"), sessionExpiry(1), willFor(topic, 3600))
		c.crash()
		watcher.expectNext(topic, "delayed")
	})

	t.Run("published at once when the session ends with the connection", func(t *testing.T) {
		t.Parallel()
		topic := uniqueID("wd/no-session")
		watcher := connectV5(t, b.Addr, uniqueID("v5-wd-watch"))
		watcher.sub(1, topic)
		c := connectV5(t, b.Addr, uniqueID("v5-wd"), willFor(topic, 3600))
		c.crash()
		watcher.expectNext(topic, "delayed")
	})
}

// TestV5WillProperties sends the will from a raw client: paho.golang
// v0.23.0 encodes will properties with the CONNECT property set and so
// drops all but Will Delay Interval and User Properties.
func TestV5WillProperties(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topic := uniqueID("willprops/t")
	watcher := connectV5(t, b.Addr, uniqueID("v5-wp-watch"))
	watcher.sub(1, topic)
	wp := packet.Properties{
		WillDelay: 1, HasWillDelay: true,
		MessageExpiry: 30, HasMessageExpiry: true,
		PayloadFormat: 1, HasPayloadFormat: true,
		ContentType:     "text/plain",
		ResponseTopic:   "willprops/reply",
		CorrelationData: []byte("corr"),
		User:            []packet.UserProperty{{Key: "why", Value: "crash"}, {Key: "why", Value: "again"}},
	}
	c, _ := connectRaw(t, b.Addr, &packet.Connect{
		ClientID: uniqueID("v5-wp"), CleanStart: true, KeepAlive: 30,
		Properties: packet.Properties{SessionExpiry: 60, HasSessionExpiry: true},
		WillFlag:   true, WillQoS: 1, WillTopic: topic, WillPayload: []byte("bye"), WillProperties: wp,
	})
	c.close()
	p := watcher.expectNext(topic, "bye")
	got := props(p)
	// The Message Expiry Interval is sent as given when the will is
	// published, not counted from the CONNECT or the disconnection.
	if got.MessageExpiry == nil || *got.MessageExpiry < 29 || *got.MessageExpiry > 30 {
		t.Errorf("will Message Expiry Interval %v, want 29..30", got.MessageExpiry)
	}
	wantUser := paho.UserProperties{{Key: "why", Value: "crash"}, {Key: "why", Value: "again"}}
	if got.PayloadFormat == nil || *got.PayloadFormat != 1 || got.ContentType != wp.ContentType ||
		got.ResponseTopic != wp.ResponseTopic || !bytes.Equal(got.CorrelationData, wp.CorrelationData) ||
		!slices.Equal(got.User, wantUser) {
		t.Errorf("will properties %+v, want those of %+v", got, wp)
	}
}

func TestV5DisconnectReasonAndWill(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	for _, tc := range []struct {
		name     string
		rc       byte
		wantWill bool
	}{
		{"normal disconnection 0x00 discards the will", 0x00, false},
		{"disconnect with will message 0x04 publishes it", 0x04, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic := uniqueID("dc/will")
			watcher := connectV5(t, b.Addr, uniqueID("v5-dc-watch"))
			watcher.sub(1, topic, "fence/"+topic)
			c := connectV5(t, b.Addr, uniqueID("v5-dc"), will(&paho.WillMessage{Topic: topic, QoS: 1, Payload: []byte("will")}, nil))
			_ = c.Disconnect(&paho.Disconnect{ReasonCode: tc.rc})
			if tc.wantWill {
				watcher.expectNext(topic, "will")
				return
			}
			watcher.expectQuiet()
			other := connectV5(t, b.Addr, uniqueID("v5-dc-fence"))
			fence(t, other, watcher, "fence/"+topic)
		})
	}
}

func TestV5SessionTakeover(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	id := uniqueID("v5-takeover")
	pub := connectV5(t, b.Addr, uniqueID("v5-takeover-pub"))

	first := connectV5(t, b.Addr, id, resume, sessionExpiry(60))
	first.sub(1, "takeover/t")

	// A second connection with the same id closes the first with 0x8E
	// [MQTT-3.1.4-3] and, with Clean Start 0, inherits its session.
	second := connectV5(t, b.Addr, id, resume, sessionExpiry(60))
	first.expectServerDisconnect(packet.SessionTakenOver)
	if !second.connack.SessionPresent {
		t.Fatal("takeover with Clean Start 0: Session Present 0, want 1")
	}
	pub.pub("takeover/t", 1, false, "to-second")
	second.expectNext("takeover/t", "to-second")

	// With Clean Start 1 the session starts over.
	third := connectV5(t, b.Addr, id, sessionExpiry(60))
	second.expectServerDisconnect(packet.SessionTakenOver)
	if third.connack.SessionPresent {
		t.Fatal("takeover with Clean Start 1: Session Present 1, want 0")
	}
	third.sub(1, "fence/takeover")
	pub.pub("takeover/t", 1, false, "to-nobody")
	fence(t, pub, third, "fence/takeover")
	if n := b.SessionCount(); n != 2 {
		t.Fatalf("%d sessions, want 2 (publisher and the taken-over id)", n)
	}
}

// TestV5TakeoverOfSessionWithoutExpiry checks that a session with Session
// Expiry 0 ends with its connection even when another connection takes it
// over with Clean Start 0.
func TestV5TakeoverOfSessionWithoutExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	id := uniqueID("v5-takeover-noexp")
	first := connectV5(t, b.Addr, id)
	first.sub(1, "takeover/noexp")
	second := connectV5(t, b.Addr, id, resume, sessionExpiry(60))
	first.expectServerDisconnect(packet.SessionTakenOver)
	if second.connack.SessionPresent {
		t.Fatal("took over a session with expiry 0: Session Present 1, want 0")
	}
	second.sub(1, "fence/noexp")
	second.pub("takeover/noexp", 1, false, "not-subscribed")
	fence(t, second, second, "fence/noexp")
}

func TestV5AuthWithoutEnhancedAuthentication(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	_, ack, err := dialV5(t, b.Addr, uniqueID("v5-auth"), func(cp *paho.Connect, _ *paho.ClientConfig) {
		connectProps(cp).AuthMethod = "SCRAM-SHA-256"
		connectProps(cp).AuthData = []byte("client-first")
	})
	if err == nil {
		t.Fatal("CONNECT with an authentication method was accepted")
	}
	if ack == nil || ack.ReasonCode != byte(packet.BadAuthenticationMethod) {
		t.Fatalf("CONNACK %+v, want reason 0x8C", ack)
	}
	// Re-authentication on a connection that negotiated none is a
	// protocol error [MQTT-4.12.0-1].
	raw, _ := connectRaw(t, b.Addr, &packet.Connect{ClientID: uniqueID("v5-auth-raw"), CleanStart: true})
	raw.send(&packet.Auth{ReasonCode: packet.ReAuthenticate, Properties: packet.Properties{AuthMethod: "SCRAM-SHA-256"}})
	raw.expectDisconnect(packet.ProtocolError)
}

func TestV5RetainedMessages(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	pub := connectV5(t, b.Addr, uniqueID("v5-ret-pub"))
	newSub := func(filter string) *v5Client {
		s := connectV5(t, b.Addr, uniqueID("v5-ret-sub"))
		s.sub(1, filter, "fence/retained")
		return s
	}

	pub.pub("ret/a", 1, true, "one")
	s := newSub("ret/#")
	if p := s.expectNext("ret/a", "one"); !p.Retain {
		t.Error("retained message sent on subscribe with RETAIN 0 [MQTT-3.3.1-8]")
	}

	pub.pub("ret/a", 1, true, "two") // replaces "one"
	s = newSub("ret/#")
	s.expectNext("ret/a", "two")
	fence(t, pub, s, "fence/retained")

	pub.pub("ret/a", 1, true, "") // deletes it [MQTT-3.3.1-6]
	s = newSub("ret/#")
	fence(t, pub, s, "fence/retained")
	if n := b.Stats().RetainedMessages.Load(); n != 0 {
		t.Fatalf("RetainedMessages = %d after the delete, want 0", n)
	}

	// A retained message with an expiry goes when it expires.
	pub.publish(&paho.Publish{Topic: "ret/exp", QoS: 1, Retain: true, Payload: []byte("brief"),
		Properties: &paho.PublishProperties{MessageExpiry: ptr(uint32(1))}})
	s = newSub("ret/exp")
	if p := s.expectNext("ret/exp", "brief"); props(p).MessageExpiry == nil || *props(p).MessageExpiry > 1 {
		t.Errorf("retained message Message Expiry Interval %v, want <= 1", props(p).MessageExpiry)
	}
	time.Sleep(1100 * time.Millisecond) // past the expiry
	s = newSub("ret/exp")
	fence(t, pub, s, "fence/retained")
}

func TestV5SubscribeNoLocal(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := connectV5(t, b.Addr, uniqueID("v5-nolocal"))
	ack := c.subscribeWith(0,
		paho.SubscribeOptions{Topic: "nl/local", QoS: 1, NoLocal: true},
		paho.SubscribeOptions{Topic: "nl/all", QoS: 1},
		paho.SubscribeOptions{Topic: "nl/both/+", QoS: 1, NoLocal: true},
		paho.SubscribeOptions{Topic: "nl/both/#", QoS: 1})
	if !bytes.Equal(ack.Reasons, []byte{1, 1, 1, 1}) {
		t.Fatalf("SUBACK %v", ack.Reasons)
	}
	other := connectV5(t, b.Addr, uniqueID("v5-nolocal-other"))
	c.pub("nl/local", 1, false, "mine")     // not echoed [MQTT-3.8.3-3]
	c.pub("nl/all", 1, false, "mine-too")   // echoed
	c.pub("nl/both/x", 1, false, "overlap") // once, for the subscription without No Local
	other.pub("nl/local", 1, false, "theirs")
	c.expectNext("nl/all", "mine-too")
	c.expectNext("nl/both/x", "overlap")
	c.expectNext("nl/local", "theirs")
}

func TestV5SubscribeRetainAsPublished(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := connectV5(t, b.Addr, uniqueID("v5-rap"))
	c.subscribeWith(0,
		paho.SubscribeOptions{Topic: "rap/keep", QoS: 1, RetainAsPublished: true},
		paho.SubscribeOptions{Topic: "rap/clear", QoS: 1})
	for _, tc := range []struct {
		topic      string
		retain     bool
		wantRetain bool
	}{
		{"rap/keep", true, true},
		{"rap/keep", false, false},
		{"rap/clear", true, false}, // [MQTT-3.3.1-13]
		{"rap/clear", false, false},
	} {
		c.pub(tc.topic, 1, tc.retain, "m")
		if p := c.expectNext(tc.topic, "m"); p.Retain != tc.wantRetain {
			t.Errorf("%s published with RETAIN %v: delivered RETAIN %v, want %v", tc.topic, tc.retain, p.Retain, tc.wantRetain)
		}
	}
}

func TestV5SubscribeRetainHandling(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	pub := connectV5(t, b.Addr, uniqueID("v5-rh-pub"))
	pub.pub("rh/t", 1, true, "kept")
	for _, tc := range []struct {
		handling byte
		want     [2]bool // retained message sent on the first / a repeated SUBSCRIBE
	}{
		{0, [2]bool{true, true}},
		{1, [2]bool{true, false}}, // [MQTT-3.3.1-10]
		{2, [2]bool{false, false}},
	} {
		t.Run(fmt.Sprintf("retain handling %d", tc.handling), func(t *testing.T) {
			t.Parallel()
			c := connectV5(t, b.Addr, uniqueID("v5-rh"))
			fenceTopic := uniqueID("fence/rh")
			c.sub(1, fenceTopic)
			for i, want := range tc.want {
				c.subscribeWith(0, paho.SubscribeOptions{Topic: "rh/t", QoS: 1, RetainHandling: tc.handling})
				if want {
					if p := c.expectNext("rh/t", "kept"); !p.Retain {
						t.Errorf("SUBSCRIBE %d: retained message with RETAIN 0", i+1)
					}
				}
				fence(t, pub, c, fenceTopic)
			}
		})
	}
}

func TestV5SubackReasonCodes(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := connectV5(t, b.Addr, uniqueID("v5-suback"))
	filters := []struct {
		filter string
		qos    byte
		want   byte
	}{
		{"ok/q0", 0, 0x00},
		{"ok/q1", 1, 0x01},
		{"ok/q2", 2, 0x02},
		{"ok/+/x/#", 2, 0x02},
		{"bad/#/x", 1, 0x8F},
		{"bad+", 1, 0x8F},
		{"bad/x#", 1, 0x8F},
		{"$share/g", 1, 0x8F},
		{"$share/g+/x", 1, 0x8F},
		{"$share/g/ok/x", 1, 0x01},
	}
	opts := make([]paho.SubscribeOptions, len(filters))
	for i, f := range filters {
		opts[i] = paho.SubscribeOptions{Topic: f.filter, QoS: f.qos}
	}
	ack := c.subscribeWith(0, opts...)
	if len(ack.Reasons) != len(filters) {
		t.Fatalf("SUBACK has %d reason codes for %d filters", len(ack.Reasons), len(filters))
	}
	for i, f := range filters {
		if ack.Reasons[i] != f.want {
			t.Errorf("filter %q QoS %d: SUBACK %#02x, want %#02x", f.filter, f.qos, ack.Reasons[i], f.want)
		}
	}
	// The connection is still fine and the granted subscriptions work.
	c.pub("ok/q2", 2, false, "works")
	c.expectNext("ok/q2", "works")
}

func TestV5Unsubscribe(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := connectV5(t, b.Addr, uniqueID("v5-unsub"))
	c.sub(1, "un/a", "un/b")
	ctx, cancel := context.WithTimeout(context.Background(), rawWait)
	defer cancel()
	ack, err := c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"un/a", "un/never"}})
	if ack == nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	if !bytes.Equal(ack.Reasons, []byte{0x00, 0x11}) {
		t.Fatalf("UNSUBACK %#v, want [0x00 0x11 (no subscription existed)]", ack.Reasons)
	}
	c.pub("un/a", 1, false, "unsubscribed")
	c.pub("un/b", 1, false, "still subscribed")
	c.expectNext("un/b", "still subscribed")
}

func TestV5WildcardsAndDollarTopics(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	topics := []string{
		"sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis", "sport", "sport/",
		"/finance", "$app/status", "$app/x/y",
	}
	cases := []struct {
		filter string
		want   []string
	}{
		{"sport/tennis/player1/#", []string{"sport/tennis/player1", "sport/tennis/player1/ranking"}},
		{"sport/#", []string{"sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis", "sport", "sport/"}},
		{"sport/+", []string{"sport/tennis", "sport/"}},
		{"+/tennis/#", []string{"sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis"}},
		{"+", []string{"sport"}},
		{"+/+", []string{"sport/tennis", "sport/", "/finance"}},
		{"/+", []string{"/finance"}},
		// [MQTT-4.7.2-1]: leading wildcards do not match $-topics.
		{"#", []string{"sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis", "sport", "sport/", "/finance"}},
		{"+/status", nil},
		{"+/x/+", nil},
		{"$app/#", []string{"$app/status", "$app/x/y"}},
		{"$app/+", []string{"$app/status"}},
	}
	subs := make([]*v5Client, len(cases))
	for i, tc := range cases {
		subs[i] = connectV5(t, b.Addr, uniqueID("v5-wild"))
		subs[i].sub(1, tc.filter, "$fence")
	}
	pub := connectV5(t, b.Addr, uniqueID("v5-wild-pub"))
	for _, tp := range topics {
		pub.pub(tp, 1, false, tp)
	}
	pub.pub("$fence", 1, false, "fence")
	for i, tc := range cases {
		var got []string
		for {
			p := subs[i].recv()
			if p.Topic == "$fence" {
				break
			}
			got = append(got, p.Topic)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("filter %q received %q, want %q", tc.filter, got, tc.want)
		}
	}
}

func TestV5SharedSubscriptions(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	const members, total = 3, 30
	group := make([]*v5Client, members)
	for i := range group {
		group[i] = connectV5(t, b.Addr, uniqueID("v5-share"))
		group[i].sub(1, "$share/g/shared/#")
	}
	plain := connectV5(t, b.Addr, uniqueID("v5-share-plain"))
	plain.sub(1, "shared/#")
	pub := connectV5(t, b.Addr, uniqueID("v5-share-pub"))
	for i := range total {
		pub.pub("shared/t", 1, false, fmt.Sprint(i))
	}
	// The non-shared subscription gets every message.
	plain.recvN(total)

	seen := map[string]int{}
	counts := make([]int, members)
	eventually(t, "the group to receive every message", func() bool {
		return drainGroup(group, seen, counts) >= total
	})
	for payload, n := range seen {
		if n != 1 {
			t.Errorf("message %s delivered %d times to the group, want once", payload, n)
		}
	}
	for i, n := range counts {
		if n == 0 {
			t.Errorf("member %d got no messages (counts %v): not balanced", i, counts)
		}
	}
	if sum := counts[0] + counts[1] + counts[2]; sum != total {
		t.Errorf("group received %d messages, want %d", sum, total)
	}
	for _, m := range group {
		m.expectQuiet()
	}
}

// drainGroup takes the messages the members of a $share group have
// received so far: it counts each payload in seen and each member's messages
// in counts, and returns the group's total.
func drainGroup(group []*v5Client, seen map[string]int, counts []int) int {
	total := 0
	for i, m := range group {
		for drained := false; !drained; {
			select {
			case p := <-m.msgs:
				seen[string(p.Payload)]++
				counts[i]++
			default:
				drained = true
			}
		}
		total += counts[i]
	}
	return total
}

// TestV5SharedSubscriptionPrefersOnlineMembers checks that a group member
// whose persistent session is offline is skipped while another is online.
func TestV5SharedSubscriptionPrefersOnlineMembers(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	awayID := uniqueID("v5-share-away")
	away := connectV5(t, b.Addr, awayID, sessionExpiry(60))
	away.sub(1, "$share/g/online/#")
	here := connectV5(t, b.Addr, uniqueID("v5-share-here"))
	here.sub(1, "$share/g/online/#")
	_ = away.Disconnect(&paho.Disconnect{})
	eventually(t, "the member to go offline", func() bool { return b.Stats().ClientsConnected.Load() == 1 })

	pub := connectV5(t, b.Addr, uniqueID("v5-share-pub"))
	for i := range 10 {
		pub.pub("online/t", 1, false, fmt.Sprint(i))
	}
	for i := range 10 {
		here.expectNext("online/t", fmt.Sprint(i))
	}
	away = connectV5(t, b.Addr, awayID, resume, sessionExpiry(60))
	away.sub(1, "fence/online")
	fence(t, pub, away, "fence/online")
}

func TestV5ServerShutdownDisconnect(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := connectV5(t, b.Addr, uniqueID("v5-shutdown"))
	ctx, cancel := context.WithTimeout(context.Background(), rawWait)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	c.expectServerDisconnect(packet.ServerShuttingDown)
}

func TestV5MessageExpiryOnDelivery(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	id := uniqueID("v5-msgexp")
	sub := connectV5(t, b.Addr, id, sessionExpiry(60))
	sub.sub(1, "msgexp/t")
	_ = sub.Disconnect(&paho.Disconnect{})

	pub := connectV5(t, b.Addr, uniqueID("v5-msgexp-pub"))
	expiring := func(payload string, sec uint32) *paho.Publish {
		return &paho.Publish{Topic: "msgexp/t", QoS: 1, Payload: []byte(payload),
			Properties: &paho.PublishProperties{MessageExpiry: &sec}}
	}
	pub.publish(expiring("ten", 10))
	pub.publish(expiring("one", 1))
	pub.pub("msgexp/t", 1, false, "forever")
	time.Sleep(2 * time.Second) // the message is queued offline for at least 2 s

	sub = connectV5(t, b.Addr, id, resume, sessionExpiry(60))
	p := sub.expectNext("msgexp/t", "ten")
	// [MQTT-3.3.2-6]: the interval sent is what is left of it.
	if e := props(p).MessageExpiry; e == nil || *e > 8 || *e == 0 {
		t.Errorf("Message Expiry Interval %v after 2 s offline, want 1..8", e)
	}
	// The message with 1 s to live expired while queued [MQTT-3.3.2-5].
	if p := sub.expectNext("msgexp/t", "forever"); props(p).MessageExpiry != nil {
		t.Errorf("message without expiry delivered with Message Expiry Interval %d", *props(p).MessageExpiry)
	}
	if n := b.Stats().DroppedExpired.Load(); n != 1 {
		t.Errorf("DroppedExpired = %d, want 1", n)
	}
}

// TestV5OverlappingSubscriptionsOneDelivery checks that a paho.golang client
// with overlapping subscriptions gets each message once, at the highest
// granted QoS [MQTT-3.3.4-2].
func TestV5OverlappingSubscriptionsOneDelivery(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := connectV5(t, b.Addr, uniqueID("v5-overlap"))
	c.subscribeWith(0,
		paho.SubscribeOptions{Topic: "ov/+", QoS: 0},
		paho.SubscribeOptions{Topic: "ov/#", QoS: 2},
		paho.SubscribeOptions{Topic: "ov/x", QoS: 1})
	c.pub("ov/x", 2, false, "once")
	c.pub("ov/fence", 1, false, "fence")
	if p := c.expectNext("ov/x", "once"); p.QoS != 2 {
		t.Errorf("delivered at QoS %d, want the highest granted, 2", p.QoS)
	}
	c.expectNext("ov/fence", "fence")
}

// TestV5ConcurrentPublishersKeepPerPublisherOrder has several publishers
// publish at once: their messages interleave, but each publisher's arrive
// in the order sent.
func TestV5ConcurrentPublishersKeepPerPublisherOrder(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	const k, n = 4, 50
	sub := connectV5(t, b.Addr, uniqueID("v5-order-sub"))
	sub.sub(1, "order/#")
	var wg sync.WaitGroup
	for i := range k {
		pub := connectV5(t, b.Addr, uniqueID("v5-order-pub"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), rawWait)
			defer cancel()
			for j := range n {
				if _, err := pub.Publish(ctx, &paho.Publish{Topic: fmt.Sprintf("order/%d", i), QoS: 1, Payload: []byte(fmt.Sprint(j))}); err != nil {
					t.Errorf("publisher %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	next := make([]int, k)
	for range k * n {
		p := sub.recv()
		var i, j int
		fmt.Sscanf(p.Topic, "order/%d", &i)
		fmt.Sscanf(string(p.Payload), "%d", &j)
		if j != next[i] {
			t.Fatalf("publisher %d: got message %d, want %d (per-publisher order [MQTT-4.6.0-5])", i, j, next[i])
		}
		next[i]++
	}
}
