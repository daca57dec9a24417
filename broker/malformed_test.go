package broker_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/packet"
)

// These tests speak bytes, not packets: every malformed input is written by
// hand, because the codec (rightly) refuses to encode most of them. Each
// row says what a v3.1.1 and what a v5 client must see, which counter
// counts it, and then proves that the broker still serves other clients.

// wireWait bounds every wait for something the broker must do: a reply,
// closing a connection, delivering a message. It is a limit for a hung
// test, not a speed requirement.
const wireWait = 5 * time.Second

// wireString is an MQTT UTF-8 string or binary field: a two byte length,
// then s as it is, valid UTF-8 or not.
func wireString(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

// wireU16 is a two byte integer.
func wireU16(n uint16) []byte { return []byte{byte(n >> 8), byte(n)} }

// wireVBI is a Variable Byte Integer in its shortest form.
func wireVBI(n int) []byte {
	var out []byte
	for {
		b := byte(n & 0x7F)
		n >>= 7
		if n == 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

// wireJoin concatenates byte slices.
func wireJoin(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// wirePacket is a whole packet: the first byte, the correct Remaining
// Length, and the body.
func wirePacket(first byte, body ...[]byte) []byte {
	b := wireJoin(body...)
	return wireJoin([]byte{first}, wireVBI(len(b)), b)
}

// wireProps is a v5 property list: its Property Length, then the properties.
func wireProps(props ...[]byte) []byte {
	p := wireJoin(props...)
	return wireJoin(wireVBI(len(p)), p)
}

// wireConnect is a CONNECT at protocol level v with the given connect flags
// and client id; props are the v5 CONNECT properties (none when nil) and
// rest is appended after the client id (will, user name, ...).
func wireConnect(name string, v packet.Version, flags byte, clientID string, props []byte, rest ...[]byte) []byte {
	body := wireJoin(wireString(name), []byte{byte(v), flags}, wireU16(60))
	if v == packet.V5 {
		if props == nil {
			props = wireProps()
		}
		body = append(body, props...)
	}
	body = append(body, wireString(clientID)...)
	return wirePacket(byte(packet.CONNECT)<<4, body, wireJoin(rest...))
}

// wirePublish is a PUBLISH whose first byte is first (type, DUP, QoS,
// RETAIN); id is written when non-zero, props only for v5 (none when nil).
func wirePublish(v packet.Version, first byte, topic string, id uint16, props []byte, payload string) []byte {
	body := wireString(topic)
	if id != 0 {
		body = append(body, wireU16(id)...)
	}
	if v == packet.V5 {
		if props == nil {
			props = wireProps()
		}
		body = append(body, props...)
	}
	return wirePacket(first, body, []byte(payload))
}

// wireSubscribe is a SUBSCRIBE with a correct first byte, packet id 1, the
// v5 properties (none when nil) and entries as given (filter, options...).
func wireSubscribe(v packet.Version, props []byte, entries ...[]byte) []byte {
	body := wireU16(1)
	if v == packet.V5 {
		if props == nil {
			props = wireProps()
		}
		body = append(body, props...)
	}
	return wirePacket(byte(packet.SUBSCRIBE)<<4|0x02, body, wireJoin(entries...))
}

// Properties as they appear on the wire (MQTT 5.0 section 2.2.2.2).
var (
	propMessageExpiry10 = []byte{0x02, 0, 0, 0, 10}
	propSessionExpiry10 = []byte{0x11, 0, 0, 0, 10}
	propReceiveMax10    = []byte{0x21, 0, 10}
	propReceiveMax0     = []byte{0x21, 0, 0}
	propMaxPacketSize0  = []byte{0x27, 0, 0, 0, 0}
	propWillDelay10     = []byte{0x18, 0, 0, 0, 10}
	propSubID0          = []byte{0x0B, 0}
	propSubID1          = []byte{0x0B, 1}
	propSubID2          = []byte{0x0B, 2}
)

func propTopicAlias(a uint16) []byte { return append([]byte{0x23}, wireU16(a)...) }

// wireConn is a bare TCP connection to the broker.
type wireConn struct {
	t   testing.TB
	nc  net.Conn
	v   packet.Version
	buf []byte
}

func dialWire(t testing.TB, addr string) *wireConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wireWait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &wireConn{t: t, nc: nc}
}

func (w *wireConn) write(b []byte) {
	w.t.Helper()
	_ = w.nc.SetWriteDeadline(time.Now().Add(wireWait))
	if _, err := w.nc.Write(b); err != nil {
		w.t.Fatalf("write % x: %v", b, err)
	}
}

func (w *wireConn) send(p packet.Packet) {
	w.t.Helper()
	b, err := p.Encode(nil, w.v)
	if err != nil {
		w.t.Fatalf("encode %s: %v", p.PacketType(), err)
	}
	w.write(b)
}

// next returns the next packet from the broker, failing the test if none
// comes within wireWait.
func (w *wireConn) next() packet.Packet {
	w.t.Helper()
	_ = w.nc.SetReadDeadline(time.Now().Add(wireWait))
	chunk := make([]byte, 4096)
	for {
		fh, n, err := packet.ReadFixedHeader(w.buf)
		if err != nil {
			w.t.Fatalf("broker sent a bad fixed header % x: %v", w.buf, err)
		}
		if n > 0 && len(w.buf) >= n+fh.Remaining {
			body := w.buf[n : n+fh.Remaining]
			p, err := packet.Decode(fh, body, w.v)
			if err != nil {
				w.t.Fatalf("broker sent a %s that does not decode: %v", fh.Type, err)
			}
			if pub, ok := p.(*packet.Publish); ok {
				c := pub.Clone() // the body is about to be reused
				p = &c
			}
			w.buf = w.buf[n+fh.Remaining:]
			return p
		}
		m, err := w.nc.Read(chunk)
		w.buf = append(w.buf, chunk[:m]...)
		if err != nil {
			w.t.Fatalf("reading from the broker: %v (have % x)", err, w.buf)
		}
	}
}

// handshake connects as a well-behaved client of version v.
func (w *wireConn) handshake(v packet.Version, id string) {
	w.t.Helper()
	w.v = v
	w.send(&packet.Connect{Version: v, CleanStart: true, KeepAlive: 60, ClientID: id})
	ack, ok := w.next().(*packet.Connack)
	if !ok || ack.ReasonCode != packet.Success {
		w.t.Fatalf("CONNECT %q: want CONNACK success, got %+v", id, ack)
	}
}

func (w *wireConn) subscribe(filter string, qos byte) {
	w.t.Helper()
	w.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}})
	ack, ok := w.next().(*packet.Suback)
	if !ok || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != packet.ReasonCode(qos) {
		w.t.Fatalf("SUBSCRIBE %q: want SUBACK granting QoS %d, got %+v", filter, qos, ack)
	}
}

// drain reads until the broker closes the connection and returns what it
// sent meanwhile. It fails the test if the connection stays open.
func (w *wireConn) drain() []byte {
	w.t.Helper()
	_ = w.nc.SetReadDeadline(time.Now().Add(wireWait))
	got := w.buf
	w.buf = nil
	chunk := make([]byte, 4096)
	for {
		n, err := w.nc.Read(chunk)
		got = append(got, chunk[:n]...)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			w.t.Fatalf("the broker kept the connection open for %v after the bad packet (sent % x)", wireWait, got)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return got
		}
		w.t.Fatalf("reading until close: %v", err)
	}
}

// statCounter names the Stats counter a bad packet must be counted in.
type statCounter int

const (
	countedMalformed statCounter = iota + 1 // Stats.MalformedPackets
	countedProtocol                         // Stats.ProtocolErrors
)

func (c statCounter) String() string {
	if c == countedMalformed {
		return "MalformedPackets"
	}
	return "ProtocolErrors"
}

// outcome is what a client sees after a bad packet: one CONNACK or
// DISCONNECT with a code, or (reply 0) the connection closed without a word.
type outcome struct {
	reply   packet.Type
	code    byte // v5 reason code, or v3 CONNACK return code
	counter statCounter
}

func closes(c statCounter) *outcome { return &outcome{counter: c} }

func disconnects(rc packet.ReasonCode, c statCounter) *outcome {
	return &outcome{reply: packet.DISCONNECT, code: byte(rc), counter: c}
}

func refuses(code byte, c statCounter) *outcome {
	return &outcome{reply: packet.CONNACK, code: code, counter: c}
}

// malformedCase is one bad input. first marks input that replaces CONNECT
// as the first packet on the connection; otherwise the client connects
// properly first. v3 and v5 are the expected outcomes; nil means the row
// does not apply to that version.
type malformedCase struct {
	name   string
	first  bool
	limits func(*config.Limits)
	input  func(v packet.Version) []byte
	v3, v5 *outcome
}

// same returns an input builder that ignores the version.
func same(b []byte) func(packet.Version) []byte { return func(packet.Version) []byte { return b } }

func malformedCases() []malformedCase {
	const m, p = countedMalformed, countedProtocol
	pub := func(topic string, props []byte) func(packet.Version) []byte {
		return func(v packet.Version) []byte { return wirePublish(v, 0x30, topic, 0, props, "x") }
	}
	sub := func(props []byte, entries ...[]byte) func(packet.Version) []byte {
		return func(v packet.Version) []byte { return wireSubscribe(v, props, entries...) }
	}
	connect := func(flags byte, id string, props []byte, rest ...[]byte) func(packet.Version) []byte {
		return func(v packet.Version) []byte { return wireConnect("MQTT", v, flags, id, props, rest...) }
	}
	smallPackets := func(l *config.Limits) { l.MaxPacketSize = 1024 }
	return []malformedCase{
		// Fixed header.
		{name: "remaining length of five bytes", input: same([]byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}),
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "remaining length not in its shortest form", input: same([]byte{0xC0, 0x80, 0x00}),
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "remaining length of five bytes instead of CONNECT", first: true,
			input: same([]byte{0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}), v3: closes(m), v5: closes(m)},
		{name: "packet type 0", input: same([]byte{0x00, 0x00}),
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "AUTH from a 3.1.1 client", input: same([]byte{0xF0, 0x00}), v3: closes(m)},
		{name: "AUTH without an authentication method", input: same([]byte{0xF0, 0x00}),
			v5: disconnects(packet.ProtocolError, p)},
		{name: "CONNACK from a client", input: same([]byte{0x20, 0x02, 0x00, 0x00}),
			v3: closes(p), v5: disconnects(packet.ProtocolError, p)},
		{name: "PUBLISH with QoS 3", input: func(v packet.Version) []byte { return wirePublish(v, 0x36, "a", 1, nil, "x") },
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "PUBREL flags 0000", input: same([]byte{0x60, 0x02, 0x00, 0x01}),
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "SUBSCRIBE flags 0000", input: func(v packet.Version) []byte {
			b := wireSubscribe(v, nil, wireString("a"), []byte{0})
			b[0] = byte(packet.SUBSCRIBE) << 4
			return b
		}, v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "UNSUBSCRIBE flags 0011", input: func(v packet.Version) []byte {
			body := wireU16(1)
			if v == packet.V5 {
				body = append(body, 0)
			}
			return wirePacket(byte(packet.UNSUBSCRIBE)<<4|0x03, body, wireString("a"))
		}, v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "PINGREQ with flags", input: same([]byte{0xC1, 0x00}),
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "PINGREQ with a body", input: same([]byte{0xC0, 0x01, 0x00}),
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},

		// Truncated fields.
		{name: "PUBLISH topic longer than the packet", input: same([]byte{0x30, 0x03, 0x00, 0x05, 'a'}),
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "PUBLISH QoS 1 without packet identifier", input: same([]byte{0x32, 0x03, 0x00, 0x01, 'a'}),
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "SUBSCRIBE without its options byte", input: sub(nil, wireString("a")),
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "PUBACK of one byte", input: same([]byte{0x40, 0x01, 0x00}),
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "property length beyond the packet", input: pub("a", []byte{0x05}),
			v5: disconnects(packet.MalformedPacket, m)},
		{name: "CONNECT cut short after the protocol level", first: true,
			input: func(v packet.Version) []byte { return wirePacket(0x10, wireString("MQTT"), []byte{byte(v)}) },
			v3:    closes(m), v5: refuses(byte(packet.MalformedPacket), m)},

		// UTF-8 [MQTT-1.5.4-1, MQTT-1.5.4-2].
		{name: "invalid UTF-8 in topic name", input: pub("a/\xff", nil),
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "UTF-16 surrogate in topic name", input: pub("a/\xed\xa0\x80", nil),
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "U+0000 in topic name", input: pub("a/\x00b", nil),
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "invalid UTF-8 in topic filter", input: sub(nil, wireString("a/\xc3"), []byte{0}),
			v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "invalid UTF-8 in client identifier", first: true, input: connect(0x02, "id-\xfe", nil),
			v3: closes(m), v5: refuses(byte(packet.MalformedPacket), m)},
		{name: "U+0000 in client identifier", first: true, input: connect(0x02, "id\x00x", nil),
			v3: closes(m), v5: refuses(byte(packet.MalformedPacket), m)},

		// Reserved bits and flags.
		{name: "CONNECT reserved flag set", first: true, input: connect(0x03, "reserved", nil),
			v3: closes(m), v5: refuses(byte(packet.MalformedPacket), m)},
		{name: "will QoS 3", first: true, input: connect(0x02|0x04|0x18, "willqos", nil, wireString("w"), wireString("x")),
			v3: closes(m), v5: refuses(byte(packet.MalformedPacket), m)},
		{name: "will retain without will flag", first: true, input: connect(0x02|0x20, "willretain", nil),
			v3: closes(m), v5: refuses(byte(packet.MalformedPacket), m)},
		{name: "SUBSCRIBE options reserved bits", input: func(v packet.Version) []byte {
			opts := byte(0x04) // bit 2 is reserved in 3.1.1 (No Local in v5)
			if v == packet.V5 {
				opts = 0x40 // bits 6 and 7 are reserved in v5
			}
			return wireSubscribe(v, nil, wireString("a"), []byte{opts})
		}, v3: closes(m), v5: disconnects(packet.MalformedPacket, m)},
		{name: "SUBSCRIBE QoS 3", input: sub(nil, wireString("a"), []byte{3}),
			v3: closes(m), v5: disconnects(packet.ProtocolError, p)},
		{name: "QoS 0 PUBLISH with DUP", input: func(v packet.Version) []byte { return wirePublish(v, 0x38, "a", 0, nil, "x") },
			v3: closes(p), v5: disconnects(packet.ProtocolError, p)},
		{name: "QoS 1 PUBLISH with packet identifier 0", input: func(v packet.Version) []byte {
			var props []byte
			if v == packet.V5 {
				props = wireProps()
			}
			return wirePacket(0x32, wireString("a"), wireU16(0), props, []byte("x"))
		}, v3: closes(p), v5: disconnects(packet.ProtocolError, p)},

		// v5 properties (MQTT 5.0 section 2.2.2.2).
		{name: "undefined property identifier", input: pub("a", wireProps([]byte{0x7F, 0})),
			v5: disconnects(packet.MalformedPacket, m)},
		{name: "Session Expiry Interval in PUBLISH", input: pub("a", wireProps(propSessionExpiry10)),
			v5: disconnects(packet.MalformedPacket, m)},
		{name: "Topic Alias in SUBSCRIBE", input: sub(wireProps(propTopicAlias(1)), wireString("a"), []byte{0}),
			v5: disconnects(packet.MalformedPacket, m)},
		{name: "Will Delay Interval in CONNECT properties", first: true, input: connect(0x02, "willdelay", wireProps(propWillDelay10)),
			v5: refuses(byte(packet.MalformedPacket), m)},
		{name: "Message Expiry Interval twice", input: pub("a", wireProps(propMessageExpiry10, propMessageExpiry10)),
			v5: disconnects(packet.ProtocolError, p)},
		{name: "Receive Maximum twice in CONNECT", first: true, input: connect(0x02, "rm2", wireProps(propReceiveMax10, propReceiveMax10)),
			v5: refuses(byte(packet.ProtocolError), p)},
		{name: "Receive Maximum 0", first: true, input: connect(0x02, "rm0", wireProps(propReceiveMax0)),
			v5: refuses(byte(packet.ProtocolError), p)},
		{name: "Maximum Packet Size 0", first: true, input: connect(0x02, "mps0", wireProps(propMaxPacketSize0)),
			v5: refuses(byte(packet.ProtocolError), p)},
		{name: "Subscription Identifier in PUBLISH from a client", input: pub("a", wireProps(propSubID1)),
			v5: disconnects(packet.ProtocolError, p)},
		{name: "Subscription Identifier 0", input: sub(wireProps(propSubID0), wireString("a"), []byte{0}),
			v5: disconnects(packet.ProtocolError, p)},
		{name: "two Subscription Identifiers in SUBSCRIBE", input: sub(wireProps(propSubID1, propSubID2), wireString("a"), []byte{0}),
			v5: disconnects(packet.ProtocolError, p)},

		// Topic aliases [MQTT-3.3.2-8, MQTT-3.3.2-9].
		{name: "Topic Alias 0", input: pub("a", wireProps(propTopicAlias(0))),
			v5: disconnects(packet.TopicAliasInvalid, m)},
		{name: "Topic Alias above the maximum", limits: func(l *config.Limits) { ten := 10; l.TopicAliasMaximum = &ten },
			input: pub("a", wireProps(propTopicAlias(11))), v5: disconnects(packet.TopicAliasInvalid, m)},
		{name: "Topic Alias used before it was set", input: pub("", wireProps(propTopicAlias(3))),
			v5: disconnects(packet.ProtocolError, p)},
		{name: "empty topic name without Topic Alias", input: pub("", nil),
			v3: closes(m), v5: disconnects(packet.ProtocolError, p)},

		// Packet order [MQTT-3.1.0-1, MQTT-3.1.0-2].
		{name: "PUBLISH before CONNECT", first: true, input: pub("a", nil), v3: closes(p), v5: closes(p)},
		{name: "second CONNECT", input: connect(0x02, "again", nil),
			v3: closes(p), v5: disconnects(packet.ProtocolError, p)},

		// Topic names and limits [MQTT-3.3.2-2].
		{name: "single-level wildcard in PUBLISH topic", input: pub("a/+", nil),
			v3: closes(m), v5: disconnects(packet.TopicNameInvalid, m)},
		{name: "multi-level wildcard in PUBLISH topic", input: pub("a/#", nil),
			v3: closes(m), v5: disconnects(packet.TopicNameInvalid, m)},
		{name: "wildcard in will topic", first: true, input: connect(0x02|0x04, "willwild", nil, wireProps(), wireString("w/#"), wireString("x")),
			v3: closes(m), v5: refuses(byte(packet.TopicNameInvalid), m)},
		{name: "topic longer than maxTopicLength", limits: func(l *config.Limits) { l.MaxTopicLength = 32 },
			input: pub(strings.Repeat("t", 33), nil), v3: closes(m), v5: disconnects(packet.TopicNameInvalid, m)},
		{name: "topic with more levels than maxTopicLevels", limits: func(l *config.Limits) { l.MaxTopicLevels = 4 },
			input: pub("a/b/c/d/e", nil), v3: closes(m), v5: disconnects(packet.TopicNameInvalid, m)},
		{name: "PUBLISH larger than maxPacketSize", limits: smallPackets, input: func(v packet.Version) []byte {
			// Only the start of the packet is sent: the broker must refuse
			// it from the fixed header, before buffering the body.
			return wirePublish(v, 0x30, "a", 0, nil, strings.Repeat("x", 2000))[:100]
		}, v3: closes(m), v5: disconnects(packet.PacketTooLarge, m)},
		{name: "CONNECT larger than maxPacketSize", first: true, limits: smallPackets, input: func(v packet.Version) []byte {
			return connect(0x02, strings.Repeat("c", 2000), nil)(v)[:100]
		}, v3: closes(m), v5: closes(m)},

		// Protocol name and level [MQTT-3.1.2-1, MQTT-3.1.2-2].
		{name: "unknown protocol level", first: true,
			input: func(packet.Version) []byte { return wireConnect("MQTT", 6, 0x02, "level6", nil) },
			v3:    refuses(1, p)},
		{name: "protocol level 3 with name MQTT", first: true,
			input: func(packet.Version) []byte { return wireConnect("MQTT", packet.V31, 0x02, "level3", nil) },
			v3:    refuses(1, p)},
		{name: "unknown protocol name", first: true,
			input: func(v packet.Version) []byte { return wireConnect("MQTX", v, 0x02, "badname", nil) },
			v3:    refuses(1, p), v5: refuses(byte(packet.UnsupportedProtocolVersion), p)},

		// SUBSCRIBE and UNSUBSCRIBE payloads [MQTT-3.8.3-2, MQTT-3.10.3-2, MQTT-2.2.1-3].
		{name: "SUBSCRIBE with no topic filters", input: sub(nil),
			v3: closes(p), v5: disconnects(packet.ProtocolError, p)},
		{name: "SUBSCRIBE with packet identifier 0", input: func(v packet.Version) []byte {
			b := wireSubscribe(v, nil, wireString("a"), []byte{0})
			b[2], b[3] = 0, 0
			return b
		}, v3: closes(p), v5: disconnects(packet.ProtocolError, p)},
		{name: "UNSUBSCRIBE with no topic filters", input: func(v packet.Version) []byte {
			body := wireU16(1)
			if v == packet.V5 {
				body = append(body, 0)
			}
			return wirePacket(byte(packet.UNSUBSCRIBE)<<4|0x02, body)
		}, v3: closes(p), v5: disconnects(packet.ProtocolError, p)},
	}
}

func TestMalformedInput(t *testing.T) {
	for _, tc := range malformedCases() {
		for _, v := range []packet.Version{packet.V311, packet.V5} {
			want := tc.v3
			if v == packet.V5 {
				want = tc.v5
			}
			if want == nil {
				continue
			}
			t.Run(v.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				runMalformedCase(t, tc, v, want)
			})
		}
	}
}

func runMalformedCase(t *testing.T, tc malformedCase, v packet.Version, want *outcome) {
	b := startBroker(t, func(cfg *config.Config, _ *broker.Options) {
		if tc.limits != nil {
			tc.limits(&cfg.Limits)
		}
	})
	watcher := dialWire(t, b.Addr)
	watcher.handshake(packet.V5, uniqueID("watcher"))
	watcher.subscribe("alive/#", 1)

	bad := dialWire(t, b.Addr)
	if !tc.first {
		bad.handshake(v, uniqueID("bad"))
	}
	bad.write(tc.input(v))
	checkOutcome(t, v, want, bad.drain())

	st := b.Stats()
	eventually(t, want.counter.String()+" counted", func() bool {
		switch want.counter {
		case countedMalformed:
			return st.MalformedPackets.Load() == 1
		default:
			return st.ProtocolErrors.Load() == 1
		}
	})
	if mp, pe := st.MalformedPackets.Load(), st.ProtocolErrors.Load(); mp+pe != 1 {
		t.Errorf("MalformedPackets=%d ProtocolErrors=%d, want only %s counted, once", mp, pe, want.counter)
	}
	expectServing(t, b, watcher)
}

// checkOutcome compares what the broker sent before closing with want.
func checkOutcome(t *testing.T, v packet.Version, want *outcome, got []byte) {
	t.Helper()
	if want.reply == 0 {
		if len(got) != 0 {
			t.Fatalf("broker sent % x; want the connection closed without a reply", got)
		}
		return
	}
	if v != packet.V5 {
		// A 3.1.1 CONNACK: type, length 2, no session present, return code.
		if wantB := []byte{0x20, 0x02, 0x00, want.code}; !bytes.Equal(got, wantB) {
			t.Fatalf("broker sent % x; want CONNACK % x and close", got, wantB)
		}
		return
	}
	fh, n, err := packet.ReadFixedHeader(got)
	if err != nil || n == 0 || len(got) < n+fh.Remaining {
		t.Fatalf("broker sent % x; want %s with reason 0x%02X and close", got, want.reply, want.code)
	}
	if extra := got[n+fh.Remaining:]; len(extra) > 0 {
		t.Errorf("broker sent % x after its %s", extra, fh.Type)
	}
	p, err := packet.Decode(fh, got[n:n+fh.Remaining], packet.V5)
	if err != nil {
		t.Fatalf("broker sent a %s that does not decode: %v (% x)", fh.Type, err, got)
	}
	var rc packet.ReasonCode
	switch p := p.(type) {
	case *packet.Disconnect:
		rc = p.ReasonCode
	case *packet.Connack:
		rc = p.ReasonCode
	}
	if fh.Type != want.reply || rc != packet.ReasonCode(want.code) {
		t.Fatalf("broker sent %s with reason 0x%02X (%v); want %s with reason 0x%02X (%v)",
			fh.Type, byte(rc), rc, want.reply, want.code, packet.ReasonCode(want.code))
	}
}

// expectServing shows that the broker still works: a fresh 3.1.1 client
// publishes at QoS 1, gets its PUBACK, and watcher (subscribed to alive/#
// before the trouble) receives the message.
func expectServing(t *testing.T, b *testBroker, watcher *wireConn) {
	t.Helper()
	pub := dialWire(t, b.Addr)
	pub.handshake(packet.V311, uniqueID("alive"))
	topic := "alive/" + uniqueID("check")
	pub.send(&packet.Publish{QoS: 1, PacketID: 7, Topic: []byte(topic), Payload: []byte("still here")})
	if ack, ok := pub.next().(*packet.Ack); !ok || ack.Type != packet.PUBACK || ack.PacketID != 7 {
		t.Fatalf("fresh publisher: want PUBACK 7, got %+v", ack)
	}
	m, ok := watcher.next().(*packet.Publish)
	if !ok || string(m.Topic) != topic || string(m.Payload) != "still here" {
		t.Fatalf("subscriber connected before the bad client: want PUBLISH %s, got %+v", topic, m)
	}
}

// lockedBuffer collects log output from the broker's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// panickyAuth is an authenticator and authorizer with a bug: it panics for
// one user name and one topic. Plug-ins like these are where a panic in
// connection handling is most likely to come from, so the test needs no
// hook in the broker.
type panickyAuth struct{}

const (
	panicUser  = "panic-user"
	panicTopic = "panic/topic"
)

func (panickyAuth) Authenticate(info *broker.ConnectInfo) packet.ReasonCode {
	if info.Username == panicUser {
		panic("test authenticator bug")
	}
	return packet.Success
}

func (panickyAuth) CanPublish(_ broker.ClientInfo, topic string) bool {
	if topic == panicTopic {
		panic("test authorizer bug")
	}
	return true
}

func (panickyAuth) CanSubscribe(broker.ClientInfo, string) bool { return true }
func (panickyAuth) CanRead(broker.ClientInfo, string) bool      { return true }

func TestPanicInConnectionIsRecovered(t *testing.T) {
	cases := []struct {
		name  string
		v     packet.Version
		panic func(w *wireConn)
		want  *outcome
		where string
	}{
		{
			name: "authenticator during CONNECT", v: packet.V5,
			panic: func(w *wireConn) {
				w.send(&packet.Connect{Version: packet.V5, CleanStart: true, ClientID: "p", HasUsername: true, Username: panicUser})
			},
			want: &outcome{}, where: "test authenticator bug",
		},
		{
			name: "authorizer on PUBLISH v5", v: packet.V5,
			panic: func(w *wireConn) {
				w.handshake(packet.V5, uniqueID("panic"))
				w.send(&packet.Publish{Topic: []byte(panicTopic), Payload: []byte("x")})
			},
			want: &outcome{reply: packet.DISCONNECT, code: byte(packet.ImplementationSpecificError)}, where: "test authorizer bug",
		},
		{
			name: "authorizer on PUBLISH 3.1.1", v: packet.V311,
			panic: func(w *wireConn) {
				w.handshake(packet.V311, uniqueID("panic"))
				w.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: []byte(panicTopic), Payload: []byte("x")})
			},
			want: &outcome{}, where: "test authorizer bug",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs := &lockedBuffer{}
			b := startBroker(t, func(_ *config.Config, o *broker.Options) {
				o.Authenticator, o.Authorizer = panickyAuth{}, panickyAuth{}
				o.Logger = slog.New(slog.NewTextHandler(logs, nil))
				if os.Getenv("FLEETMQ_TEST_LOG") != "" {
					o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, os.Stderr), nil))
				}
			})
			watcher := dialWire(t, b.Addr)
			watcher.handshake(packet.V5, uniqueID("watcher"))
			watcher.subscribe("alive/#", 1)

			w := dialWire(t, b.Addr)
			w.v = tc.v
			tc.panic(w)
			checkOutcome(t, tc.v, tc.want, w.drain())
			eventually(t, "the panic counted", func() bool { return b.Stats().Panics.Load() == 1 })
			if l := logs.String(); !strings.Contains(l, "Recovered panic") || !strings.Contains(l, tc.where) {
				t.Errorf("log does not report the recovered panic %q:\n%s", tc.where, l)
			}
			expectServing(t, b, watcher)
		})
	}
}

// A client may send its first packets right behind CONNECT, without waiting
// for the CONNACK. When one of them is bad, the broker still owes the client
// what it produced before: the CONNACK first [MQTT-3.2.0-1], and the acks
// of the packets it accepted, so that the client does not send those again.
// Then a v5 client gets its DISCONNECT and a v3 client a plain close.
func TestBadPacketRightAfterConnectStillGetsTheConnackAndAcks(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			c := dialRaw(t, b.Addr, v)
			var burst []byte
			for _, p := range []packet.Packet{
				&packet.Connect{Version: v, ClientID: uniqueID("pipelined"), CleanStart: true, KeepAlive: 30},
				&packet.Publish{Topic: []byte("pipelined/t"), QoS: 1, PacketID: 1, Payload: []byte("accepted")},
				&packet.Subscribe{PacketID: 2, Subscriptions: []packet.Subscription{rawSub("pipelined/#", 1)}},
			} {
				var err error
				if burst, err = p.Encode(burst, v); err != nil {
					t.Fatalf("encode %s: %v", p.PacketType(), err)
				}
			}
			// A second CONNECT on the connection is a protocol error.
			burst, _ = (&packet.Connect{Version: v, ClientID: "again", CleanStart: true}).Encode(burst, v)
			c.sendBytes(burst) // one write: the broker reads it all at once

			if ack := c.expect(packet.CONNACK).(*packet.Connack); ack.ReasonCode != packet.Success {
				t.Fatalf("CONNACK %v", ack.ReasonCode)
			}
			c.expectAck(packet.PUBACK, 1)
			if sa := c.expect(packet.SUBACK).(*packet.Suback); sa.PacketID != 2 {
				t.Fatalf("SUBACK for packet id %d, want 2", sa.PacketID)
			}
			c.expectDisconnect(packet.ProtocolError)
		})
	}
}
