package broker

import (
	"time"
	"unsafe"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// Message is one application message as the broker routes it. It is
// immutable once routed: every subscriber's queue holds the same *Message,
// and what differs per delivery (granted QoS, retain flag, subscription
// identifiers, packet id) lives in a delivery.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// Props holds the v5 properties that travel with the message; nil when
	// there are none, which is the common case.
	Props *MessageProps
	// Expires is when the message stops being delivered (from Message
	// Expiry Interval); zero means never.
	Expires time.Time
	// ClientID is the publishing client, for No Local and the ACL check of
	// a will; empty for broker-generated messages. A will carries the id of
	// the client that left it.
	ClientID string
	// Username of the publisher, for logs and metrics only.
	Username string
}

// MessageProps are the PUBLISH properties that the broker forwards
// unchanged to subscribers [MQTT-3.3.2-4, MQTT-3.3.2-15, MQTT-3.3.2-17,
// MQTT-3.3.2-20].
type MessageProps struct {
	PayloadFormat    byte
	HasPayloadFormat bool
	ContentType      string
	ResponseTopic    string
	CorrelationData  []byte
	User             []packet.UserProperty
}

// newMessage copies a decoded PUBLISH out of the read buffer. Topic and
// payload share one allocation: they live and die together.
func newMessage(p *packet.Publish, topic []byte, clientID, username string, now time.Time) *Message {
	buf := make([]byte, len(topic)+len(p.Payload))
	copy(buf, topic)
	copy(buf[len(topic):], p.Payload)
	m := &Message{
		Topic:    bytesToString(buf[:len(topic)]),
		Payload:  buf[len(topic):len(buf):len(buf)],
		QoS:      p.QoS,
		Retain:   p.Retain,
		ClientID: clientID,
		Username: username,
	}
	setMessageProps(m, &p.Properties, now)
	return m
}

// setMessageProps copies the forwarded properties and the expiry from a
// decoded PUBLISH or will into m. Strings are immutable and owned by the
// decoder, but slices are copied: a connection reuses its decoded packet.
func setMessageProps(m *Message, pp *packet.Properties, now time.Time) {
	if pp.HasMessageExpiry {
		m.Expires = now.Add(time.Duration(pp.MessageExpiry) * time.Second)
	}
	if pp.HasPayloadFormat || pp.ContentType != "" || pp.ResponseTopic != "" ||
		pp.CorrelationData != nil || len(pp.User) > 0 {
		m.Props = &MessageProps{
			PayloadFormat:    pp.PayloadFormat,
			HasPayloadFormat: pp.HasPayloadFormat,
			ContentType:      pp.ContentType,
			ResponseTopic:    pp.ResponseTopic,
			CorrelationData:  cloneBytes(pp.CorrelationData),
			User:             append([]packet.UserProperty(nil), pp.User...),
		}
	}
}

// expired reports whether the message may no longer be delivered.
func (m *Message) expired(now time.Time) bool {
	return !m.Expires.IsZero() && !now.Before(m.Expires)
}

// size is what the message counts against a session's queued-bytes limit.
func (m *Message) size() int64 { return int64(len(m.Topic) + len(m.Payload)) }

// delivery is one message on its way to one session.
type delivery struct {
	msg    *Message
	qos    byte     // min(published QoS, granted QoS)
	retain bool     // retain flag as sent to this subscriber
	subIDs []uint32 // v5 subscription identifiers of every matching subscription
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// bytesToString views b as a string without copying. Only for byte slices
// that are never written again.
func bytesToString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
