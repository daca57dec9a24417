package broker_test

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// What the script clients published, to check every delivery against the
// message it came from: the payload byte for byte, the topic, QoS no higher
// than it was sent with, the RETAIN flag, No Local, and the MQTT 5
// properties that pass through. A broker that pools its buffers and decodes
// in place can hand a subscriber another message's bytes; only a check of
// the content notices.
//
// A payload of at least stampSize bytes starts with a stamp: a prefix drawn
// at random once per test process, which raw bytes from a script cannot
// forge, and a sequence number. Wills carry one too. Deliveries without a
// known stamp (shorter payloads, $SYS values) are not checked here.

// stampSize is the length of the stamp at the start of a payload.
const stampSize = 12

// sentMessage is what the checker knows of one PUBLISH a script sent.
type sentMessage struct {
	topic     string // "" when it went by a Topic Alias the checker cannot resolve
	qos       byte
	retain    bool
	publisher string // session key of the publishing client; "" when unknown
	from      string // the publishing connection, for the test log
	will      bool   // the will of a CONNECT
	size      int
	sum       uint64 // FNV-1a of the payload

	propsKnown    bool // published by an MQTT 5 client: the properties below were sent
	expiry        uint32
	hasExpiry     bool
	payloadFormat byte
	responseTopic string
	correlation   []byte
	user          []packet.UserProperty
}

// scriptMessages holds every stamped message of the test process.
var scriptMessages = struct {
	sync.Mutex
	prefix string
	next   uint64
	sent   map[string]*sentMessage // stamp -> message
	judged atomic.Int64            // deliveries checked against theirs
	wills  atomic.Int64            // of them, wills
}{sent: map[string]*sentMessage{}}

// maxSentMessages bounds scriptMessages in a long fuzzing run. Past it the
// registry starts over with a new prefix: older messages, still retained or
// queued somewhere, go unchecked rather than wrongly judged.
const maxSentMessages = 1 << 20

// stampPayload writes a fresh stamp at the start of payload, if it has
// room, and returns it ("" when it has none).
func stampPayload(payload []byte) string {
	if len(payload) < stampSize {
		return ""
	}
	scriptMessages.Lock()
	defer scriptMessages.Unlock()
	if scriptMessages.prefix == "" || len(scriptMessages.sent) >= maxSentMessages {
		scriptMessages.prefix = fmt.Sprintf("~%04x", rand.Uint32N(1<<16))
		clear(scriptMessages.sent)
	}
	scriptMessages.next++
	stamp := fmt.Sprintf("%s%07d", scriptMessages.prefix, scriptMessages.next%10_000_000)
	copy(payload, stamp)
	return stamp
}

// recordSent registers p under stamp. topic is the topic the broker will
// route p by, "" when unknown; publisher the session key of its client, ""
// when unknown; from names the connection for the test log; v5 says whether
// its properties went out with it.
func recordSent(stamp string, p *packet.Publish, topic, publisher, from string, v5 bool) {
	registerSent(stamp, newSentMessage(p, topic, publisher, from, v5))
}

// recordWill registers the will of a CONNECT under stamp. Its publisher,
// for No Local, is the client id it connected with, as for the client's own
// messages: a later connection with that id and a No Local subscription is
// not sent it. An id the broker assigns is unknown here, and unique.
func recordWill(stamp string, cp *packet.Connect, from string) {
	will := &packet.Publish{Topic: []byte(cp.WillTopic), QoS: cp.WillQoS, Retain: cp.WillRetain, Payload: cp.WillPayload, Properties: cp.WillProperties}
	m := newSentMessage(will, cp.WillTopic, cp.ClientID, from, cp.Version == packet.V5)
	m.will = true
	registerSent(stamp, m)
}

func newSentMessage(p *packet.Publish, topic, publisher, from string, v5 bool) *sentMessage {
	m := &sentMessage{
		topic:     topic,
		from:      from,
		qos:       p.QoS,
		retain:    p.Retain,
		publisher: publisher,
		size:      len(p.Payload),
		sum:       payloadSum(p.Payload),
	}
	if v5 {
		pr := &p.Properties
		m.propsKnown = true
		m.expiry, m.hasExpiry = pr.MessageExpiry, pr.HasMessageExpiry
		if pr.HasPayloadFormat {
			m.payloadFormat = pr.PayloadFormat
		}
		m.responseTopic = pr.ResponseTopic
		m.correlation = slices.Clone(pr.CorrelationData)
		m.user = slices.Clone(pr.User)
	}
	return m
}

func registerSent(stamp string, m *sentMessage) {
	scriptMessages.Lock()
	scriptMessages.sent[stamp] = m
	scriptMessages.Unlock()
}

// sentMessageOf returns the message a delivered payload came from, or nil
// when its stamp is unknown.
func sentMessageOf(payload []byte) *sentMessage {
	if len(payload) < stampSize {
		return nil
	}
	scriptMessages.Lock()
	defer scriptMessages.Unlock()
	return scriptMessages.sent[string(payload[:stampSize])]
}

func payloadSum(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// judgeContent checks delivery p, on topic (its alias resolved), against
// the message it came from. match are the filters of the receiving session
// that topic matches, known whether they are all the filters it may hold.
// The properties are judged only for an MQTT 5 receiver (c.v). c.mu is held.
func (c *scriptClient) judgeContent(p *packet.Publish, topic string, match []scriptFilter, known bool) {
	m := sentMessageOf(p.Payload)
	if m == nil {
		return
	}
	scriptMessages.judged.Add(1)
	if m.will {
		scriptMessages.wills.Add(1)
	}
	stamp := p.Payload[:stampSize]
	if len(p.Payload) != m.size || payloadSum(p.Payload) != m.sum {
		c.violateLocked("delivered message %s with a %d-byte payload that differs from the %d bytes published", stamp, len(p.Payload), m.size)
	}
	if m.topic != "" && topic != m.topic {
		c.violateLocked("delivered message %s on %q; it was published on %q by %s", stamp, topic, m.topic, m.from)
	}
	if p.QoS > m.qos {
		c.violateLocked("delivered message %s at QoS %d; it was published at QoS %d", stamp, p.QoS, m.qos)
	}
	if p.Retain && !m.retain {
		c.violateLocked("delivered message %s with RETAIN set; it was published without", stamp)
	}
	if known {
		granted := byte(0)
		noLocal := true
		for _, f := range match {
			granted = max(granted, f.qos)
			noLocal = noLocal && f.noLocal
		}
		if p.QoS > granted {
			c.violateLocked("delivered message %s at QoS %d; the session's matching filters %v ask for at most %d", stamp, p.QoS, match, granted)
		}
		// No Local is about forwarding; whether it covers the retained
		// message sent on SUBSCRIBE is left open, so those are not judged.
		if noLocal && !p.Retain && m.publisher != "" && m.publisher == c.session {
			c.violateLocked("delivered message %s back to its publisher, whose matching filters %v all have No Local", stamp, match)
		}
	}
	if c.v != packet.V5 || !m.propsKnown {
		return
	}
	pr := &p.Properties
	switch {
	case pr.HasMessageExpiry != m.hasExpiry:
		c.violateLocked("delivered message %s with Message Expiry present %v; it was published with it present %v", stamp, pr.HasMessageExpiry, m.hasExpiry)
	case pr.MessageExpiry > m.expiry:
		c.violateLocked("delivered message %s with Message Expiry %d s; it was published with %d s", stamp, pr.MessageExpiry, m.expiry)
	}
	format := byte(0)
	if pr.HasPayloadFormat {
		format = pr.PayloadFormat
	}
	if format != m.payloadFormat || pr.ResponseTopic != m.responseTopic || !bytes.Equal(pr.CorrelationData, m.correlation) || !slices.Equal(pr.User, m.user) {
		c.violateLocked("delivered message %s with properties format %d, response topic %q, correlation %x, user %v; it was published with %d, %q, %x, %v",
			stamp, format, pr.ResponseTopic, pr.CorrelationData, pr.User, m.payloadFormat, m.responseTopic, m.correlation, m.user)
	}
}
