// Package packet is the MQTT 3.1, 3.1.1 and 5.0 wire codec.
//
// Decoding works in place: a decoder is handed the body of one packet, still
// inside the connection's read buffer, and only PUBLISH's Topic and Payload
// keep pointing into that buffer. Everything else a decoder returns is
// copied out of it. So that a connection can decode every packet into one
// value per packet type without allocating, a decoder reuses the space of
// the slices already in its receiver (Subscriptions, Filters, ReasonCodes,
// User properties, Subscription Identifiers, Correlation and Authentication
// Data): what must outlive the next Decode into the same value has to be
// copied first, for example with Publish.Clone or Properties.Clone. CONNECT
// is the exception: it comes once per connection and its will and
// credentials are kept, so Connect.Decode allocates everything afresh.
//
// Encoding appends to a caller-supplied slice so that a connection can
// batch many packets into one write; it does not allocate when the slice
// has room.
//
// Errors are *Error values carrying the MQTT 5 reason code the spec
// prescribes (Malformed Packet, Protocol Error, Topic Name invalid, ...),
// which the broker sends in CONNACK or DISCONNECT, or, for MQTT 3, uses to
// decide to close the connection.
package packet

// Type is the MQTT control packet type, the high nibble of the first byte.
type Type byte

// Control packet types (MQTT 5.0 section 2.1.2).
const (
	Reserved    Type = 0
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15
)

var typeNames = [...]string{
	"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
}

// String returns the packet type's name as the spec writes it, e.g. "PUBLISH".
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "UNKNOWN"
}

// Version is the protocol level carried in CONNECT.
type Version byte

// Protocol levels.
const (
	V31  Version = 3 // MQTT 3.1 ("MQIsdp")
	V311 Version = 4 // MQTT 3.1.1
	V5   Version = 5 // MQTT 5.0
)

// String returns the MQTT version a protocol level stands for, e.g. "3.1.1".
func (v Version) String() string {
	switch v {
	case V31:
		return "3.1"
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return "unknown"
}

// MaxRemainingLength is the largest Remaining Length a variable byte integer
// can encode (268,435,455 bytes).
const MaxRemainingLength = 268435455

// FixedHeader is the first part of every packet.
type FixedHeader struct {
	Type      Type
	Flags     byte // low nibble of the first byte
	Remaining int  // Remaining Length: bytes that follow the fixed header
}

// Packet is implemented by every packet type so that tests, fuzzers and
// tools can handle packets generically. The broker's hot path calls the
// concrete types' methods directly instead.
type Packet interface {
	// PacketType returns the control packet type.
	PacketType() Type
	// Encode appends the whole packet, fixed header included, to dst.
	Encode(dst []byte, v Version) ([]byte, error)
}

// UserProperty is one MQTT 5 User Property (a UTF-8 string pair).
type UserProperty struct {
	Key, Value string
}

// Properties are the MQTT 5 properties of any packet. A field that is absent
// from the wire keeps its zero value; where zero is also a valid value on the
// wire, a Has* flag records presence. Decoders copy every property out of the
// read buffer.
type Properties struct {
	PayloadFormat           byte           // 0x01
	HasPayloadFormat        bool           //
	MessageExpiry           uint32         // 0x02, seconds
	HasMessageExpiry        bool           //
	ContentType             string         // 0x03
	ResponseTopic           string         // 0x08
	CorrelationData         []byte         // 0x09
	SubscriptionIDs         []uint32       // 0x0B; several in PUBLISH, at most one in SUBSCRIBE
	SessionExpiry           uint32         // 0x11, seconds
	HasSessionExpiry        bool           //
	AssignedClientID        string         // 0x12
	ServerKeepAlive         uint16         // 0x13
	HasServerKeepAlive      bool           //
	AuthMethod              string         // 0x15
	AuthData                []byte         // 0x16
	RequestProblemInfo      byte           // 0x17
	HasRequestProblemInfo   bool           //
	WillDelay               uint32         // 0x18, seconds
	HasWillDelay            bool           //
	RequestResponseInfo     byte           // 0x19
	HasRequestResponseInfo  bool           //
	ResponseInfo            string         // 0x1A
	ServerReference         string         // 0x1C
	ReasonString            string         // 0x1F
	ReceiveMaximum          uint16         // 0x21
	HasReceiveMaximum       bool           //
	TopicAliasMaximum       uint16         // 0x22
	HasTopicAliasMaximum    bool           //
	TopicAlias              uint16         // 0x23
	HasTopicAlias           bool           //
	MaximumQoS              byte           // 0x24
	HasMaximumQoS           bool           //
	RetainAvailable         byte           // 0x25
	HasRetainAvailable      bool           //
	User                    []UserProperty // 0x26
	MaximumPacketSize       uint32         // 0x27
	HasMaximumPacketSize    bool           //
	WildcardSubAvailable    byte           // 0x28
	HasWildcardSubAvailable bool           //
	SubIDAvailable          byte           // 0x29
	HasSubIDAvailable       bool           //
	SharedSubAvailable      byte           // 0x2A
	HasSharedSubAvailable   bool           //
}

// Connect is the CONNECT packet.
type Connect struct {
	ProtocolName string  // "MQTT", or "MQIsdp" for 3.1
	Version      Version // protocol level, without the bridge bit
	// Bridge is the bridge bit (0x80) of a 3.1 or 3.1.1 protocol level: the client is
	// another broker's bridge (Mosquitto's try_private, EMQX's bridge mode), which
	// expects not to be sent back what it published and to see retain flags as
	// published. Not part of MQTT 5, whose subscription options say the same.
	Bridge     bool
	CleanStart bool   // Clean Start (v5) / Clean Session (v3)
	KeepAlive  uint16 // seconds
	Properties Properties
	ClientID   string

	WillFlag       bool
	WillQoS        byte
	WillRetain     bool
	WillProperties Properties
	WillTopic      string
	WillPayload    []byte

	HasUsername bool
	Username    string
	HasPassword bool
	Password    []byte
}

// Connack is the CONNACK packet. ReasonCode holds the v5 reason code; when
// encoding for v3 it is mapped to the nearest 3.1.1 return code.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     Properties
}

// Publish is the PUBLISH packet. After Decode, Topic and Payload alias the
// buffer the packet was decoded from: copy them if they must outlive it.
type Publish struct {
	Dup        bool
	QoS        byte
	Retain     bool
	Topic      []byte
	PacketID   uint16 // only when QoS > 0
	Properties Properties
	Payload    []byte
}

// Ack is PUBACK, PUBREC, PUBREL or PUBCOMP: they share one layout.
type Ack struct {
	Type       Type // PUBACK, PUBREC, PUBREL or PUBCOMP
	PacketID   uint16
	ReasonCode ReasonCode // v5 only; omitted on the wire when Success with no properties
	Properties Properties
}

// Subscription is one topic filter of a SUBSCRIBE and its options.
type Subscription struct {
	Filter            string // as sent, including any $share/<group>/ prefix
	QoS               byte
	NoLocal           bool // v5
	RetainAsPublished bool // v5
	RetainHandling    byte // v5: 0 send retained, 1 only on new subscription, 2 never
}

// Subscribe is the SUBSCRIBE packet.
type Subscribe struct {
	PacketID      uint16
	Properties    Properties
	Subscriptions []Subscription
}

// Suback is the SUBACK packet: one reason code per requested filter. For v3
// the codes are the granted QoS (0, 1, 2) or 0x80 for failure.
type Suback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Unsubscribe is the UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties
	Filters    []string
}

// Unsuback is the UNSUBACK packet. ReasonCodes are sent for v5 only.
type Unsuback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Pingreq is the PINGREQ packet.
type Pingreq struct{}

// Pingresp is the PINGRESP packet.
type Pingresp struct{}

// Disconnect is the DISCONNECT packet. v3 DISCONNECT has no body.
type Disconnect struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Auth is the MQTT 5 AUTH packet.
type Auth struct {
	ReasonCode ReasonCode
	Properties Properties
}
