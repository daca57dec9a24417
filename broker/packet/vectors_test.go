package packet

// The packet vectors shared by the decoder test, the encoder test and the
// fuzz targets' seeds. Each raw packet is written out byte by byte with
// what the bytes mean.

// vector is one well-formed packet.
type vector struct {
	name string
	v    Version // the connection's protocol version
	raw  []byte  // the whole packet, fixed header included
	want Packet  // what it decodes to
	// exact means Encode(want) reproduces raw byte for byte. Packets that
	// use an encoding the encoder does not choose (an explicit Success
	// reason code, an empty property list) round-trip to an equal value
	// instead.
	exact bool
}

// malformedVector is a packet that must not decode.
type malformedVector struct {
	name string
	v    Version
	raw  []byte
	code ReasonCode // the reason code the error must carry
}

var vectors = []vector{
	// ---- MQTT 3.1.1 ------------------------------------------------------
	{
		name: "v311 CONNECT minimal", v: V311, exact: true,
		raw: []byte{
			0x10, 0x0E, // CONNECT, remaining length 14
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
			0x04,       // protocol level 4 (3.1.1)
			0x02,       // connect flags: clean session
			0x00, 0x3C, // keep alive 60 s
			0x00, 0x02, 'c', '1', // client identifier "c1"
		},
		want: &Connect{ProtocolName: "MQTT", Version: V311, CleanStart: true, KeepAlive: 60, ClientID: "c1"},
	},
	{
		name: "v311 CONNECT will user password", v: V311, exact: true,
		raw: []byte{
			0x10, 0x23, // CONNECT, remaining length 35
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
			0x04,       // level 4
			0xEE,       // flags: user name 0x80, password 0x40, will retain 0x20, will QoS 1 0x08, will 0x04, clean 0x02
			0x00, 0x0A, // keep alive 10 s
			0x00, 0x03, 'd', 'e', 'v', // client identifier "dev"
			0x00, 0x03, 'w', '/', 't', // will topic "w/t"
			0x00, 0x03, 'b', 'y', 'e', // will payload "bye"
			0x00, 0x04, 'u', 's', 'e', 'r', // user name "user"
			0x00, 0x02, 'p', 'w', // password "pw"
		},
		want: &Connect{
			ProtocolName: "MQTT", Version: V311, CleanStart: true, KeepAlive: 10, ClientID: "dev",
			WillFlag: true, WillQoS: 1, WillRetain: true, WillTopic: "w/t", WillPayload: []byte("bye"),
			HasUsername: true, Username: "user", HasPassword: true, Password: []byte("pw"),
		},
	},
	{
		name: "v311 CONNECT empty client id, no clean session", v: V311, exact: true,
		raw: []byte{
			0x10, 0x0C, // CONNECT, remaining length 12
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
			0x04,       // level 4
			0x00,       // no flags
			0x00, 0x00, // keep alive off
			0x00, 0x00, // client identifier "" (the broker decides whether to accept it)
		},
		want: &Connect{ProtocolName: "MQTT", Version: V311},
	},
	{
		name: "v311 CONNECT from a bridge", v: V311, exact: true,
		raw: []byte{
			0x10, 0x12, // CONNECT, remaining length 18
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
			0x84,       // level 4 with the bridge bit (Mosquitto's try_private)
			0x02,       // clean session
			0x00, 0x3C, // keep alive 60 s
			0x00, 0x06, 'e', 'd', 'g', 'e', '.', '1', // client identifier "edge.1"
		},
		want: &Connect{ProtocolName: "MQTT", Version: V311, Bridge: true, CleanStart: true, KeepAlive: 60, ClientID: "edge.1"},
	},
	{
		name: "v31 CONNECT from a bridge", v: V31, exact: true,
		raw: []byte{
			0x10, 0x10, // CONNECT, remaining length 16
			0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name "MQIsdp"
			0x83,       // level 3 with the bridge bit
			0x00,       // no flags
			0x00, 0x1E, // keep alive 30 s
			0x00, 0x02, 'b', '1', // client identifier "b1"
		},
		want: &Connect{ProtocolName: "MQIsdp", Version: V31, Bridge: true, KeepAlive: 30, ClientID: "b1"},
	},
	{
		name: "v31 CONNECT", v: V31, exact: true,
		raw: []byte{
			0x10, 0x11, // CONNECT, remaining length 17
			0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name "MQIsdp"
			0x03,       // level 3 (3.1)
			0x02,       // clean session
			0x00, 0x1E, // keep alive 30 s
			0x00, 0x03, 'o', 'l', 'd', // client identifier "old"
		},
		want: &Connect{ProtocolName: "MQIsdp", Version: V31, CleanStart: true, KeepAlive: 30, ClientID: "old"},
	},
	{
		name: "v311 CONNACK accepted, session present", v: V311, exact: true,
		raw: []byte{
			0x20, 0x02, // CONNACK, remaining length 2
			0x01, // session present
			0x00, // return code 0: accepted
		},
		want: &Connack{SessionPresent: true, ReasonCode: Success},
	},
	{
		name: "v311 CONNACK bad user name or password", v: V311, exact: true,
		raw: []byte{
			0x20, 0x02, // CONNACK, remaining length 2
			0x00, // no session
			0x04, // return code 4: bad user name or password
		},
		want: &Connack{ReasonCode: BadUsernameOrPassword},
	},
	{
		name: "v31 CONNACK not authorized", v: V31, exact: true,
		raw: []byte{
			0x20, 0x02, // CONNACK, remaining length 2
			0x00, // reserved in 3.1
			0x05, // return code 5: not authorized
		},
		want: &Connack{ReasonCode: NotAuthorized},
	},
	{
		name: "v311 PUBLISH QoS 0", v: V311, exact: true,
		raw: []byte{
			0x30, 0x0A, // PUBLISH, QoS 0, remaining length 10
			0x00, 0x03, 'a', '/', 'b', // topic "a/b"
			'h', 'e', 'l', 'l', 'o', // payload "hello"
		},
		want: &Publish{Topic: []byte("a/b"), Payload: []byte("hello")},
	},
	{
		name: "v311 PUBLISH QoS 1 dup retain", v: V311, exact: true,
		raw: []byte{
			0x3B, 0x09, // PUBLISH, flags DUP 0x8 | QoS 1 0x2 | RETAIN 0x1, remaining length 9
			0x00, 0x03, 'a', '/', 'b', // topic "a/b"
			0x00, 0x07, // packet identifier 7
			'h', 'i', // payload "hi"
		},
		want: &Publish{Dup: true, QoS: 1, Retain: true, Topic: []byte("a/b"), PacketID: 7, Payload: []byte("hi")},
	},
	{
		name: "v311 PUBLISH QoS 2 empty payload UTF-8 topic", v: V311, exact: true,
		raw: []byte{
			0x34, 0x08, // PUBLISH, QoS 2, remaining length 8
			0x00, 0x04, 'x', '/', 0xC3, 0xA9, // topic "x/é" (é is C3 A9)
			0x12, 0x34, // packet identifier 0x1234
			// empty payload
		},
		want: &Publish{QoS: 2, Topic: []byte("x/é"), PacketID: 0x1234},
	},
	{
		name: "v31 PUBLISH QoS 1", v: V31, exact: true,
		raw: []byte{
			0x32, 0x08, // PUBLISH, QoS 1, remaining length 8
			0x00, 0x02, 's', '1', // topic "s1"
			0x00, 0x01, // packet identifier 1
			'4', '2', // payload "42"
		},
		want: &Publish{QoS: 1, Topic: []byte("s1"), PacketID: 1, Payload: []byte("42")},
	},
	{
		name: "v311 PUBACK", v: V311, exact: true,
		raw:  []byte{0x40, 0x02, 0x00, 0x07}, // PUBACK, remaining length 2, packet identifier 7
		want: &Ack{Type: PUBACK, PacketID: 7},
	},
	{
		name: "v311 PUBREC", v: V311, exact: true,
		raw:  []byte{0x50, 0x02, 0x00, 0x08}, // PUBREC, remaining length 2, packet identifier 8
		want: &Ack{Type: PUBREC, PacketID: 8},
	},
	{
		name: "v311 PUBREL", v: V311, exact: true,
		raw:  []byte{0x62, 0x02, 0x00, 0x08}, // PUBREL with its required flags 0x2, packet identifier 8
		want: &Ack{Type: PUBREL, PacketID: 8},
	},
	{
		name: "v311 PUBCOMP", v: V311, exact: true,
		raw:  []byte{0x70, 0x02, 0xFF, 0xFF}, // PUBCOMP, remaining length 2, packet identifier 65535
		want: &Ack{Type: PUBCOMP, PacketID: 65535},
	},
	{
		name: "v311 SUBSCRIBE two filters", v: V311, exact: true,
		raw: []byte{
			0x82, 0x0E, // SUBSCRIBE with its required flags 0x2, remaining length 14
			0x00, 0x0A, // packet identifier 10
			0x00, 0x03, 'a', '/', '#', // filter "a/#"
			0x01,                      // requested QoS 1
			0x00, 0x03, 'b', '/', '+', // filter "b/+"
			0x02, // requested QoS 2
		},
		want: &Subscribe{PacketID: 10, Subscriptions: []Subscription{{Filter: "a/#", QoS: 1}, {Filter: "b/+", QoS: 2}}},
	},
	{
		name: "v31 SUBSCRIBE", v: V31, exact: true,
		raw: []byte{
			0x82, 0x06, // SUBSCRIBE, remaining length 6
			0x00, 0x01, // packet identifier 1
			0x00, 0x01, '#', // filter "#"
			0x00, // requested QoS 0
		},
		want: &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "#"}}},
	},
	{
		name: "v311 SUBACK", v: V311, exact: true,
		raw: []byte{
			0x90, 0x05, // SUBACK, remaining length 5
			0x00, 0x0A, // packet identifier 10
			0x01, 0x02, 0x80, // granted QoS 1, granted QoS 2, failure
		},
		want: &Suback{PacketID: 10, ReasonCodes: []ReasonCode{GrantedQoS1, GrantedQoS2, UnspecifiedError}},
	},
	{
		name: "v311 UNSUBSCRIBE", v: V311, exact: true,
		raw: []byte{
			0xA2, 0x0A, // UNSUBSCRIBE with its required flags 0x2, remaining length 10
			0x00, 0x0B, // packet identifier 11
			0x00, 0x03, 'a', '/', '#', // filter "a/#"
			0x00, 0x01, 'c', // filter "c"
		},
		want: &Unsubscribe{PacketID: 11, Filters: []string{"a/#", "c"}},
	},
	{
		name: "v311 UNSUBACK", v: V311, exact: true,
		raw:  []byte{0xB0, 0x02, 0x00, 0x0B}, // UNSUBACK, remaining length 2, packet identifier 11
		want: &Unsuback{PacketID: 11},
	},
	{
		name: "v311 PINGREQ", v: V311, exact: true,
		raw:  []byte{0xC0, 0x00}, // PINGREQ, remaining length 0
		want: &Pingreq{},
	},
	{
		name: "v311 PINGRESP", v: V311, exact: true,
		raw:  []byte{0xD0, 0x00}, // PINGRESP, remaining length 0
		want: &Pingresp{},
	},
	{
		name: "v311 DISCONNECT", v: V311, exact: true,
		raw:  []byte{0xE0, 0x00}, // DISCONNECT, remaining length 0
		want: &Disconnect{},
	},

	// ---- MQTT 5.0 --------------------------------------------------------
	{
		name: "v5 CONNECT minimal", v: V5, exact: true,
		raw: []byte{
			0x10, 0x0F, // CONNECT, remaining length 15
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
			0x05,       // level 5
			0x02,       // clean start
			0x00, 0x3C, // keep alive 60 s
			0x00,                 // property length 0
			0x00, 0x02, 'c', '5', // client identifier "c5"
		},
		want: &Connect{ProtocolName: "MQTT", Version: V5, CleanStart: true, KeepAlive: 60, ClientID: "c5"},
	},
	{
		name: "v5 CONNECT every property and a will", v: V5, exact: true,
		raw: []byte{
			0x10, 0x81, 0x01, // CONNECT, remaining length 129 (two-byte variable byte integer)
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
			0x05,       // level 5
			0xD6,       // flags: user name 0x80, password 0x40, will QoS 2 0x10, will 0x04, clean start 0x02
			0x00, 0x00, // keep alive off
			0x28,                         // property length 40
			0x11, 0x00, 0x00, 0x0E, 0x10, // Session Expiry Interval 3600
			0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', // Authentication Method "SCRAM"
			0x16, 0x00, 0x02, 0x01, 0x02, // Authentication Data 01 02
			0x17, 0x00, // Request Problem Information 0
			0x19, 0x01, // Request Response Information 1
			0x21, 0x00, 0x14, // Receive Maximum 20
			0x22, 0x00, 0x0A, // Topic Alias Maximum 10
			0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // User Property k=v
			0x27, 0x00, 0x01, 0x00, 0x00, // Maximum Packet Size 65536
			0x00, 0x03, 'v', '5', 'c', // client identifier "v5c"
			0x2B,       // will property length 43
			0x01, 0x01, // Payload Format Indicator 1 (UTF-8)
			0x02, 0x00, 0x00, 0x00, 0x78, // Message Expiry Interval 120
			0x03, 0x00, 0x0A, 't', 'e', 'x', 't', '/', 'p', 'l', 'a', 'i', 'n', // Content Type "text/plain"
			0x08, 0x00, 0x03, 'r', '/', 't', // Response Topic "r/t"
			0x09, 0x00, 0x02, 0xAB, 0xCD, // Correlation Data AB CD
			0x18, 0x00, 0x00, 0x00, 0x05, // Will Delay Interval 5
			0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b', // User Property a=b
			0x00, 0x06, 'w', 'i', 'l', 'l', '/', 't', // will topic "will/t"
			0x00, 0x04, 'g', 'o', 'n', 'e', // will payload "gone"
			0x00, 0x05, 'a', 'l', 'i', 'c', 'e', // user name "alice"
			0x00, 0x06, 's', '3', 'c', 'r', '3', 't', // password "s3cr3t"
		},
		want: &Connect{
			ProtocolName: "MQTT", Version: V5, CleanStart: true, ClientID: "v5c",
			Properties: Properties{
				SessionExpiry: 3600, HasSessionExpiry: true,
				AuthMethod: "SCRAM", AuthData: []byte{1, 2},
				RequestProblemInfo: 0, HasRequestProblemInfo: true,
				RequestResponseInfo: 1, HasRequestResponseInfo: true,
				ReceiveMaximum: 20, HasReceiveMaximum: true,
				TopicAliasMaximum: 10, HasTopicAliasMaximum: true,
				User:              []UserProperty{{"k", "v"}},
				MaximumPacketSize: 65536, HasMaximumPacketSize: true,
			},
			WillFlag: true, WillQoS: 2,
			WillProperties: Properties{
				PayloadFormat: 1, HasPayloadFormat: true,
				MessageExpiry: 120, HasMessageExpiry: true,
				ContentType:     "text/plain",
				ResponseTopic:   "r/t",
				CorrelationData: []byte{0xAB, 0xCD},
				WillDelay:       5, HasWillDelay: true,
				User: []UserProperty{{"a", "b"}},
			},
			WillTopic: "will/t", WillPayload: []byte("gone"),
			HasUsername: true, Username: "alice", HasPassword: true, Password: []byte("s3cr3t"),
		},
	},
	{
		name: "v5 CONNECT password without user name", v: V5, exact: true,
		raw: []byte{
			0x10, 0x12, // CONNECT, remaining length 18
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
			0x05,       // level 5
			0x42,       // flags: password 0x40, clean start 0x02 (allowed in v5, section 3.1.2.9)
			0x00, 0x05, // keep alive 5 s
			0x00,       // property length 0
			0x00, 0x00, // client identifier ""
			0x00, 0x03, 't', 'o', 'k', // password "tok"
		},
		want: &Connect{ProtocolName: "MQTT", Version: V5, CleanStart: true, KeepAlive: 5, HasPassword: true, Password: []byte("tok")},
	},
	{
		name: "v5 CONNACK with server properties", v: V5, exact: true,
		raw: []byte{
			0x20, 0x24, // CONNACK, remaining length 36
			0x00,                                           // no session present
			0x00,                                           // reason code Success
			0x21,                                           // property length 33
			0x12, 0x00, 0x06, 'a', 'u', 't', 'o', '-', '1', // Assigned Client Identifier "auto-1"
			0x13, 0x00, 0x1E, // Server Keep Alive 30
			0x21, 0x00, 0x0A, // Receive Maximum 10
			0x22, 0x00, 0x05, // Topic Alias Maximum 5
			0x24, 0x01, // Maximum QoS 1
			0x25, 0x00, // Retain Available 0
			0x27, 0x00, 0x00, 0x10, 0x00, // Maximum Packet Size 4096
			0x28, 0x01, // Wildcard Subscription Available 1
			0x29, 0x01, // Subscription Identifier Available 1
			0x2A, 0x01, // Shared Subscription Available 1
		},
		want: &Connack{Properties: Properties{
			AssignedClientID: "auto-1",
			ServerKeepAlive:  30, HasServerKeepAlive: true,
			ReceiveMaximum: 10, HasReceiveMaximum: true,
			TopicAliasMaximum: 5, HasTopicAliasMaximum: true,
			MaximumQoS: 1, HasMaximumQoS: true,
			RetainAvailable: 0, HasRetainAvailable: true,
			MaximumPacketSize: 4096, HasMaximumPacketSize: true,
			WildcardSubAvailable: 1, HasWildcardSubAvailable: true,
			SubIDAvailable: 1, HasSubIDAvailable: true,
			SharedSubAvailable: 1, HasSharedSubAvailable: true,
		}},
	},
	{
		name: "v5 CONNACK use another server", v: V5, exact: true,
		raw: []byte{
			0x20, 0x14, // CONNACK, remaining length 20
			0x00,                                           // no session present
			0x9C,                                           // reason code Use another server
			0x11,                                           // property length 17
			0x1C, 0x00, 0x06, 'b', ':', '1', '8', '8', '3', // Server Reference "b:1883"
			0x1F, 0x00, 0x05, 'm', 'o', 'v', 'e', 'd', // Reason String "moved"
		},
		want: &Connack{ReasonCode: UseAnotherServer, Properties: Properties{ServerReference: "b:1883", ReasonString: "moved"}},
	},
	{
		name: "v5 CONNACK not authorized", v: V5, exact: true,
		raw:  []byte{0x20, 0x03, 0x00, 0x87, 0x00}, // CONNACK, length 3, flags 0, Not authorized, property length 0
		want: &Connack{ReasonCode: NotAuthorized},
	},
	{
		name: "v5 PUBLISH QoS 0 no properties", v: V5, exact: true,
		raw: []byte{
			0x30, 0x08, // PUBLISH, QoS 0, remaining length 8
			0x00, 0x03, 'a', '/', 'b', // topic "a/b"
			0x00,     // property length 0
			'h', 'i', // payload "hi"
		},
		want: &Publish{Topic: []byte("a/b"), Payload: []byte("hi")},
	},
	{
		name: "v5 PUBLISH QoS 1 every PUBLISH property", v: V5, exact: true,
		raw: []byte{
			0x32, 0x34, // PUBLISH, QoS 1, remaining length 52
			0x00, 0x03, 't', '/', '1', // topic "t/1"
			0x00, 0x2A, // packet identifier 42
			0x2A,       // property length 42
			0x01, 0x01, // Payload Format Indicator 1
			0x02, 0x00, 0x00, 0x00, 0x3C, // Message Expiry Interval 60
			0x03, 0x00, 0x04, 'j', 's', 'o', 'n', // Content Type "json"
			0x08, 0x00, 0x04, 'r', 'e', '/', 'q', // Response Topic "re/q"
			0x09, 0x00, 0x03, 0x01, 0x02, 0x03, // Correlation Data 01 02 03
			0x0B, 0x01, // Subscription Identifier 1
			0x0B, 0x80, 0x01, // Subscription Identifier 128 (two-byte variable byte integer)
			0x23, 0x00, 0x02, // Topic Alias 2
			0x26, 0x00, 0x01, 'x', 0x00, 0x01, 'y', // User Property x=y
			'{', '}', // payload "{}"
		},
		want: &Publish{
			QoS: 1, Topic: []byte("t/1"), PacketID: 42, Payload: []byte("{}"),
			Properties: Properties{
				PayloadFormat: 1, HasPayloadFormat: true,
				MessageExpiry: 60, HasMessageExpiry: true,
				ContentType:     "json",
				ResponseTopic:   "re/q",
				CorrelationData: []byte{1, 2, 3},
				SubscriptionIDs: []uint32{1, 128},
				TopicAlias:      2, HasTopicAlias: true,
				User: []UserProperty{{"x", "y"}},
			},
		},
	},
	{
		name: "v5 PUBLISH empty topic with Topic Alias", v: V5, exact: true,
		raw: []byte{
			0x30, 0x07, // PUBLISH, QoS 0, remaining length 7
			0x00, 0x00, // topic "" (the alias names it)
			0x03,             // property length 3
			0x23, 0x00, 0x02, // Topic Alias 2
			'x', // payload "x"
		},
		want: &Publish{Topic: []byte{}, Payload: []byte("x"), Properties: Properties{TopicAlias: 2, HasTopicAlias: true}},
	},
	{
		name: "v5 PUBLISH user properties keep order and repeats", v: V5, exact: true,
		raw: []byte{
			0x30, 0x17, // PUBLISH, QoS 0, remaining length 23
			0x00, 0x01, 't', // topic "t"
			0x13,                                   // property length 19
			0x26, 0x00, 0x01, 'k', 0x00, 0x01, '1', // User Property k=1
			0x26, 0x00, 0x01, 'k', 0x00, 0x01, '2', // User Property k=2 (same name again)
			0x26, 0x00, 0x00, 0x00, 0x00, // User Property with empty name and value
			// empty payload
		},
		want: &Publish{Topic: []byte("t"), Properties: Properties{User: []UserProperty{{"k", "1"}, {"k", "2"}, {"", ""}}}},
	},
	{
		name: "v5 PUBACK success short form", v: V5, exact: true,
		raw:  []byte{0x40, 0x02, 0x00, 0x01}, // PUBACK, length 2, packet identifier 1 (Success and no properties implied)
		want: &Ack{Type: PUBACK, PacketID: 1},
	},
	{
		name: "v5 PUBACK reason code only", v: V5, exact: true,
		raw:  []byte{0x40, 0x03, 0x00, 0x01, 0x10}, // PUBACK, length 3, packet identifier 1, No matching subscribers, no property length
		want: &Ack{Type: PUBACK, PacketID: 1, ReasonCode: NoMatchingSubscribers},
	},
	{
		name: "v5 PUBACK explicit success", v: V5,
		raw:  []byte{0x40, 0x03, 0x00, 0x05, 0x00}, // PUBACK, length 3, packet identifier 5, Success spelled out
		want: &Ack{Type: PUBACK, PacketID: 5},
	},
	{
		name: "v5 PUBREC with reason string", v: V5, exact: true,
		raw: []byte{
			0x50, 0x0B, // PUBREC, remaining length 11
			0x00, 0x02, // packet identifier 2
			0x80,                                 // Unspecified error
			0x07,                                 // property length 7
			0x1F, 0x00, 0x04, 'o', 'o', 'p', 's', // Reason String "oops"
		},
		want: &Ack{Type: PUBREC, PacketID: 2, ReasonCode: UnspecifiedError, Properties: Properties{ReasonString: "oops"}},
	},
	{
		name: "v5 PUBREL packet identifier not found", v: V5, exact: true,
		raw:  []byte{0x62, 0x03, 0x00, 0x03, 0x92}, // PUBREL, length 3, packet identifier 3, Packet Identifier not found
		want: &Ack{Type: PUBREL, PacketID: 3, ReasonCode: PacketIdentifierNotFound},
	},
	{
		name: "v5 PUBCOMP explicit success and empty properties", v: V5,
		raw:  []byte{0x70, 0x04, 0x00, 0x04, 0x00, 0x00}, // PUBCOMP, length 4, packet identifier 4, Success, property length 0
		want: &Ack{Type: PUBCOMP, PacketID: 4},
	},
	{
		name: "v5 SUBSCRIBE options and shared subscription", v: V5, exact: true,
		raw: []byte{
			0x82, 0x1F, // SUBSCRIBE, remaining length 31
			0x00, 0x0C, // packet identifier 12
			0x09,       // property length 9
			0x0B, 0x05, // Subscription Identifier 5
			0x26, 0x00, 0x01, 'u', 0x00, 0x01, '1', // User Property u=1
			0x00, 0x03, 'a', '/', '+', // filter "a/+"
			0x2D,                                                         // options: Retain Handling 2 (0x20), Retain As Published 0x08, No Local 0x04, QoS 1
			0x00, 0x0A, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'x', // filter "$share/g/x"
			0x12, // options: Retain Handling 1 (0x10), QoS 2
		},
		want: &Subscribe{
			PacketID:   12,
			Properties: Properties{SubscriptionIDs: []uint32{5}, User: []UserProperty{{"u", "1"}}},
			Subscriptions: []Subscription{
				{Filter: "a/+", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
				{Filter: "$share/g/x", QoS: 2, RetainHandling: 1},
			},
		},
	},
	{
		name: "v5 SUBACK", v: V5, exact: true,
		raw: []byte{
			0x90, 0x0B, // SUBACK, remaining length 11
			0x00, 0x0C, // packet identifier 12
			0x05,                       // property length 5
			0x1F, 0x00, 0x02, 'o', 'k', // Reason String "ok"
			0x01, 0x8F, 0xA2, // Granted QoS 1, Topic Filter invalid, Wildcard Subscriptions not supported
		},
		want: &Suback{
			PacketID: 12, Properties: Properties{ReasonString: "ok"},
			ReasonCodes: []ReasonCode{GrantedQoS1, TopicFilterInvalid, WildcardSubscriptionsNotSupported},
		},
	},
	{
		name: "v5 UNSUBSCRIBE", v: V5, exact: true,
		raw: []byte{
			0xA2, 0x08, // UNSUBSCRIBE, remaining length 8
			0x00, 0x0D, // packet identifier 13
			0x00,                      // property length 0
			0x00, 0x03, 'a', '/', 'b', // filter "a/b"
		},
		want: &Unsubscribe{PacketID: 13, Filters: []string{"a/b"}},
	},
	{
		name: "v5 UNSUBACK", v: V5, exact: true,
		raw: []byte{
			0xB0, 0x05, // UNSUBACK, remaining length 5
			0x00, 0x0D, // packet identifier 13
			0x00,       // property length 0
			0x00, 0x11, // Success, No subscription existed
		},
		want: &Unsuback{PacketID: 13, ReasonCodes: []ReasonCode{Success, NoSubscriptionExisted}},
	},
	{
		name: "v5 PINGREQ", v: V5, exact: true,
		raw:  []byte{0xC0, 0x00}, // PINGREQ, remaining length 0
		want: &Pingreq{},
	},
	{
		name: "v5 DISCONNECT normal short form", v: V5, exact: true,
		raw:  []byte{0xE0, 0x00}, // DISCONNECT, remaining length 0: Normal disconnection, no properties
		want: &Disconnect{},
	},
	{
		name: "v5 DISCONNECT with will", v: V5, exact: true,
		raw:  []byte{0xE0, 0x01, 0x04}, // DISCONNECT, length 1, Disconnect with Will Message, no property length
		want: &Disconnect{ReasonCode: DisconnectWithWill},
	},
	{
		name: "v5 DISCONNECT with properties", v: V5, exact: true,
		raw: []byte{
			0xE0, 0x0D, // DISCONNECT, remaining length 13
			0x00,                         // Normal disconnection
			0x0B,                         // property length 11
			0x11, 0x00, 0x00, 0x00, 0x00, // Session Expiry Interval 0
			0x1F, 0x00, 0x03, 'b', 'y', 'e', // Reason String "bye"
		},
		want: &Disconnect{Properties: Properties{SessionExpiry: 0, HasSessionExpiry: true, ReasonString: "bye"}},
	},
	{
		name: "v5 DISCONNECT reason and empty properties", v: V5,
		raw:  []byte{0xE0, 0x02, 0x8E, 0x00}, // DISCONNECT, length 2, Session taken over, property length 0
		want: &Disconnect{ReasonCode: SessionTakenOver},
	},
	{
		name: "v5 AUTH continue", v: V5, exact: true,
		raw: []byte{
			0xF0, 0x10, // AUTH, remaining length 16
			0x18,                                      // Continue authentication
			0x0E,                                      // property length 14
			0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', // Authentication Method "SCRAM"
			0x16, 0x00, 0x03, 'a', 'b', 'c', // Authentication Data "abc"
		},
		want: &Auth{ReasonCode: ContinueAuthentication, Properties: Properties{AuthMethod: "SCRAM", AuthData: []byte("abc")}},
	},
	{
		name: "v5 AUTH success short form", v: V5, exact: true,
		raw:  []byte{0xF0, 0x00}, // AUTH, remaining length 0: Success, no properties
		want: &Auth{},
	},
}

var malformedVectors = []malformedVector{
	// ---- fixed header ----------------------------------------------------
	{"packet type 0", V311, []byte{0x00, 0x00}, MalformedPacket},
	{"PUBLISH QoS 3", V311, []byte{0x36, 0x00}, MalformedPacket},              // flags 0110: QoS bits 11 [MQTT-3.3.1-4]
	{"SUBSCRIBE flags 0", V311, []byte{0x80, 0x00}, MalformedPacket},          // must be 0010 [MQTT-2.1.3-1]
	{"PUBREL flags 0", V311, []byte{0x60, 0x02, 0x00, 0x01}, MalformedPacket}, // must be 0010
	{"UNSUBSCRIBE flags 3", V311, []byte{0xA3, 0x00}, MalformedPacket},        // must be 0010
	{"PUBACK flags 1", V311, []byte{0x41, 0x02, 0x00, 0x01}, MalformedPacket}, // must be 0000
	{"AUTH flags 1", V5, []byte{0xF1, 0x00}, MalformedPacket},                 // must be 0000
	{"remaining length five bytes", V311, []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, MalformedPacket},
	{"remaining length not minimal", V311, []byte{0xC0, 0x80, 0x00}, MalformedPacket}, // 0 in two bytes [MQTT-1.5.5-1]

	// ---- CONNECT ---------------------------------------------------------
	{"CONNECT reserved flag", V311, []byte{
		0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
		0x03, // clean session + reserved bit 0 [MQTT-3.1.2-3]
		0x00, 0x00, 0x00, 0x00,
	}, MalformedPacket},
	{"CONNECT will QoS 3", V311, []byte{
		0x10, 0x14, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
		0x1C, // will 0x04 + will QoS 3 0x18 [MQTT-3.1.2-12]
		0x00, 0x00, 0x00, 0x00,
		0x00, 0x01, 't', 0x00, 0x03, 'b', 'y', 'e',
	}, MalformedPacket},
	{"CONNECT will QoS without will", V311, []byte{
		0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
		0x0A, // will QoS 1 without will flag [MQTT-3.1.2-11]
		0x00, 0x00, 0x00, 0x00,
	}, MalformedPacket},
	{"CONNECT will retain without will", V311, []byte{
		0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
		0x22, // will retain without will flag [MQTT-3.1.2-13]
		0x00, 0x00, 0x00, 0x00,
	}, MalformedPacket},
	{"v311 CONNECT password without user name", V311, []byte{
		0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
		0x42, // password without user name [MQTT-3.1.2-22]
		0x00, 0x00, 0x00, 0x00,
		0x00, 0x02, 'p', 'w',
	}, ProtocolError},
	{"CONNECT unknown protocol name", V311, []byte{
		0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'X', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00,
	}, UnsupportedProtocolVersion},
	{"CONNECT level 6", V5, []byte{
		0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
	}, UnsupportedProtocolVersion},
	{"CONNECT level 5 with the bridge bit", V5, []byte{
		// MQTT 5 has no bridge bit: 0x85 is an unknown level.
		0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x85, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
	}, UnsupportedProtocolVersion},
	{"CONNECT level 6 with the bridge bit", V311, []byte{
		0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x86, 0x02, 0x00, 0x00, 0x00, 0x00,
	}, UnsupportedProtocolVersion},
	{"CONNECT MQIsdp level 4", V311, []byte{
		0x10, 0x0E, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00,
	}, UnsupportedProtocolVersion},
	{"CONNECT client id invalid UTF-8", V311, []byte{
		0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00,
		0x00, 0x02, 0xC3, 0x28, // C3 must be followed by a continuation byte [MQTT-1.5.4-1]
	}, MalformedPacket},
	{"CONNECT client id surrogate", V311, []byte{
		0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00,
		0x00, 0x03, 0xED, 0xA0, 0x80, // U+D800 encoded as UTF-8 [MQTT-1.5.4-1]
	}, MalformedPacket},
	{"CONNECT client id U+0000", V311, []byte{
		0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00,
		0x00, 0x02, 'a', 0x00, // [MQTT-1.5.4-2]
	}, MalformedPacket},
	{"CONNECT trailing byte", V311, []byte{
		0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00,
		0xFF, // nothing may follow the payload
	}, MalformedPacket},
	{"CONNECT client id truncated", V311, []byte{
		0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00,
		0x00, 0x05, 'a', // five bytes announced, one present
	}, MalformedPacket},
	{"CONNECT will topic wildcard", V311, []byte{
		0x10, 0x13, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x06, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x03, 'a', '/', '#', // will topic "a/#" [MQTT-3.3.2-2]
		0x00, 0x00,
	}, TopicNameInvalid},
	{"CONNECT will topic empty", V311, []byte{
		0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x06, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, // will topic "" [MQTT-4.7.3-1]
		0x00, 0x00,
	}, TopicNameInvalid},
	{"v5 CONNECT duplicate Session Expiry", V5, []byte{
		0x10, 0x17, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00,
		0x0A, // property length 10
		0x11, 0x00, 0x00, 0x00, 0x01,
		0x11, 0x00, 0x00, 0x00, 0x02, // Session Expiry Interval twice (section 3.1.2.11.2)
		0x00, 0x00,
	}, ProtocolError},
	{"v5 CONNECT Topic Alias", V5, []byte{
		0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00,
		0x03, 0x23, 0x00, 0x01, // Topic Alias is a PUBLISH property (section 2.2.2.2)
		0x00, 0x00,
	}, MalformedPacket},
	{"v5 CONNECT Receive Maximum 0", V5, []byte{
		0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00,
		0x03, 0x21, 0x00, 0x00, // (section 3.1.2.11.3)
		0x00, 0x00,
	}, ProtocolError},
	{"v5 CONNECT Maximum Packet Size 0", V5, []byte{
		0x10, 0x12, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00,
		0x05, 0x27, 0x00, 0x00, 0x00, 0x00, // (section 3.1.2.11.4)
		0x00, 0x00,
	}, ProtocolError},
	{"v5 CONNECT Request Problem Information 2", V5, []byte{
		0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00,
		0x02, 0x17, 0x02, // only 0 and 1 (section 3.1.2.11.7)
		0x00, 0x00,
	}, ProtocolError},
	{"v5 CONNECT Authentication Data without Method", V5, []byte{
		0x10, 0x11, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00,
		0x04, 0x16, 0x00, 0x01, 0x00, // (section 3.1.2.11.10)
		0x00, 0x00,
	}, ProtocolError},
	{"v5 CONNECT Will Delay outside will", V5, []byte{
		0x10, 0x12, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00,
		0x05, 0x18, 0x00, 0x00, 0x00, 0x01, // Will Delay Interval belongs in the will properties
		0x00, 0x00,
	}, MalformedPacket},
	{"v5 CONNECT Session Expiry in will", V5, []byte{
		0x10, 0x18, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x06, 0x00, 0x00, 0x00,
		0x00, 0x00, // client identifier
		0x05, 0x11, 0x00, 0x00, 0x00, 0x01, // will properties: Session Expiry Interval is not a will property
		0x00, 0x01, 't', 0x00, 0x00,
	}, MalformedPacket},
	{"v5 CONNECT property length past the end", V5, []byte{
		0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00,
		0x7F, // 127 bytes of properties announced
		0x00, 0x00,
	}, MalformedPacket},
	{"v5 CONNECT property overruns its length", V5, []byte{
		0x10, 0x11, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00,
		0x02, 0x11, 0x00, // property length 2, but Session Expiry Interval needs 5
		0x00, 0x00, 0x00, 0x00,
	}, MalformedPacket},

	// ---- CONNACK ---------------------------------------------------------
	{"v311 CONNACK reserved flags", V311, []byte{0x20, 0x02, 0x02, 0x00}, MalformedPacket},
	{"v311 CONNACK return code 6", V311, []byte{0x20, 0x02, 0x00, 0x06}, ProtocolError},
	{"v311 CONNACK session present on refusal", V311, []byte{0x20, 0x02, 0x01, 0x05}, ProtocolError},
	{"v311 CONNACK too long", V311, []byte{0x20, 0x03, 0x00, 0x00, 0x00}, MalformedPacket},
	{"v5 CONNACK reason code 0x04", V5, []byte{0x20, 0x03, 0x00, 0x04, 0x00}, ProtocolError},
	{"v5 CONNACK Will Delay", V5, []byte{0x20, 0x08, 0x00, 0x00, 0x05, 0x18, 0x00, 0x00, 0x00, 0x01}, MalformedPacket},
	{"v5 CONNACK Maximum QoS 2", V5, []byte{0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02}, ProtocolError},
	{"v5 CONNACK no property length", V5, []byte{0x20, 0x02, 0x00, 0x00}, MalformedPacket},

	// ---- PUBLISH ---------------------------------------------------------
	{"PUBLISH topic with +", V311, []byte{0x30, 0x05, 0x00, 0x03, 'a', '/', '+'}, TopicNameInvalid},
	{"v5 PUBLISH topic with #", V5, []byte{0x30, 0x04, 0x00, 0x01, '#', 0x00}, TopicNameInvalid},
	{"v311 PUBLISH empty topic", V311, []byte{0x30, 0x03, 0x00, 0x00, 'x'}, TopicNameInvalid},
	{"v5 PUBLISH empty topic without alias", V5, []byte{0x30, 0x04, 0x00, 0x00, 0x00, 'x'}, ProtocolError},
	{"PUBLISH QoS 1 packet identifier 0", V311, []byte{0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00}, ProtocolError},
	{"PUBLISH QoS 1 without packet identifier", V311, []byte{0x32, 0x04, 0x00, 0x01, 't', 0x00}, MalformedPacket},
	{"PUBLISH DUP with QoS 0", V311, []byte{0x38, 0x03, 0x00, 0x01, 't'}, ProtocolError},
	{"PUBLISH topic length past the end", V311, []byte{0x30, 0x03, 0x00, 0x05, 't'}, MalformedPacket},
	{"PUBLISH no topic length", V311, []byte{0x30, 0x01, 0x00}, MalformedPacket},
	{"PUBLISH topic invalid UTF-8", V311, []byte{0x30, 0x04, 0x00, 0x02, 0xFF, 0xFE}, MalformedPacket},
	{"PUBLISH topic U+0000", V311, []byte{0x30, 0x04, 0x00, 0x02, 'a', 0x00}, MalformedPacket},
	{"v5 PUBLISH Topic Alias 0", V5, []byte{0x30, 0x07, 0x00, 0x01, 't', 0x03, 0x23, 0x00, 0x00}, TopicAliasInvalid},
	{"v5 PUBLISH duplicate Topic Alias", V5, []byte{0x30, 0x0A, 0x00, 0x01, 't', 0x06, 0x23, 0x00, 0x01, 0x23, 0x00, 0x02}, ProtocolError},
	{"v5 PUBLISH Subscription Identifier 0", V5, []byte{0x30, 0x06, 0x00, 0x01, 't', 0x02, 0x0B, 0x00}, ProtocolError},
	{"v5 PUBLISH Subscription Identifier five bytes", V5, []byte{
		0x30, 0x0A, 0x00, 0x01, 't', 0x06,
		0x0B, 0x80, 0x80, 0x80, 0x80, 0x01, // more than 268,435,455
	}, MalformedPacket},
	{"v5 PUBLISH Session Expiry", V5, []byte{0x30, 0x09, 0x00, 0x01, 't', 0x05, 0x11, 0x00, 0x00, 0x00, 0x01}, MalformedPacket},
	{"v5 PUBLISH Payload Format 2", V5, []byte{0x30, 0x06, 0x00, 0x01, 't', 0x02, 0x01, 0x02}, ProtocolError},
	{"v5 PUBLISH Response Topic wildcard", V5, []byte{0x30, 0x09, 0x00, 0x01, 't', 0x05, 0x08, 0x00, 0x02, 'a', '+'}, ProtocolError},
	{"v5 PUBLISH unknown property", V5, []byte{0x30, 0x06, 0x00, 0x01, 't', 0x02, 0x7F, 0x00}, MalformedPacket},
	{"v5 PUBLISH user property truncated", V5, []byte{0x30, 0x08, 0x00, 0x01, 't', 0x04, 0x26, 0x00, 0x01, 'k'}, MalformedPacket},
	{"v5 PUBLISH property length not minimal", V5, []byte{0x30, 0x05, 0x00, 0x01, 't', 0x80, 0x00}, MalformedPacket},
	{"v5 PUBLISH Content Type invalid UTF-8", V5, []byte{0x30, 0x08, 0x00, 0x01, 't', 0x04, 0x03, 0x00, 0x01, 0x80}, MalformedPacket},

	// ---- PUBACK, PUBREC, PUBREL, PUBCOMP ---------------------------------
	{"v311 PUBACK three bytes", V311, []byte{0x40, 0x03, 0x00, 0x01, 0x00}, MalformedPacket},
	{"PUBACK one byte", V5, []byte{0x40, 0x01, 0x00}, MalformedPacket},
	{"PUBACK packet identifier 0", V311, []byte{0x40, 0x02, 0x00, 0x00}, ProtocolError},
	{"v5 PUBACK reason code of PUBREL", V5, []byte{0x40, 0x03, 0x00, 0x01, 0x92}, ProtocolError},
	{"v5 PUBCOMP reason code of PUBACK", V5, []byte{0x70, 0x03, 0x00, 0x01, 0x10}, ProtocolError},
	{"v5 PUBACK Topic Alias", V5, []byte{0x40, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01}, MalformedPacket},
	{"v5 PUBACK bytes after properties", V5, []byte{0x40, 0x06, 0x00, 0x01, 0x00, 0x00, 0xFF, 0xFF}, MalformedPacket},
	{"v5 PUBREC duplicate Reason String", V5, []byte{
		0x50, 0x0C, 0x00, 0x01, 0x80, 0x08,
		0x1F, 0x00, 0x01, 'a', 0x1F, 0x00, 0x01, 'b',
	}, ProtocolError},

	// ---- SUBSCRIBE and SUBACK --------------------------------------------
	{"v311 SUBSCRIBE without filters", V311, []byte{0x82, 0x02, 0x00, 0x01}, ProtocolError},   // [MQTT-3.8.3-3]
	{"v5 SUBSCRIBE without filters", V5, []byte{0x82, 0x03, 0x00, 0x01, 0x00}, ProtocolError}, // [MQTT-3.8.3-2]
	{"v311 SUBSCRIBE reserved bits", V311, []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x04}, MalformedPacket},
	{"v311 SUBSCRIBE QoS 3", V311, []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x03}, MalformedPacket},
	{"v5 SUBSCRIBE reserved bits", V5, []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 't', 0x40}, MalformedPacket}, // [MQTT-3.8.3-5]
	{"v5 SUBSCRIBE QoS 3", V5, []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 't', 0x03}, ProtocolError},
	{"v5 SUBSCRIBE Retain Handling 3", V5, []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 't', 0x30}, ProtocolError},
	{"v5 SUBSCRIBE No Local on shared", V5, []byte{
		0x82, 0x0F, 0x00, 0x01, 0x00,
		0x00, 0x09, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', // filter "$share/g/" is long enough
		0x04, // No Local [MQTT-3.8.3-4]
	}, ProtocolError},
	{"SUBSCRIBE packet identifier 0", V311, []byte{0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 't', 0x00}, ProtocolError},
	{"SUBSCRIBE filter without options", V311, []byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 't'}, MalformedPacket},
	{"v5 SUBSCRIBE two Subscription Identifiers", V5, []byte{
		0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, 't', 0x00,
	}, ProtocolError},
	{"v5 SUBSCRIBE Subscription Identifier 0", V5, []byte{0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, 't', 0x00}, ProtocolError},
	{"v311 SUBACK code 3", V311, []byte{0x90, 0x03, 0x00, 0x01, 0x03}, ProtocolError},
	{"v5 SUBACK code 0x10", V5, []byte{0x90, 0x04, 0x00, 0x01, 0x00, 0x10}, ProtocolError},
	{"SUBACK without codes", V311, []byte{0x90, 0x02, 0x00, 0x01}, ProtocolError},

	// ---- UNSUBSCRIBE and UNSUBACK ----------------------------------------
	{"v311 UNSUBSCRIBE without filters", V311, []byte{0xA2, 0x02, 0x00, 0x01}, ProtocolError}, // [MQTT-3.10.3-2]
	{"v5 UNSUBSCRIBE without filters", V5, []byte{0xA2, 0x03, 0x00, 0x01, 0x00}, ProtocolError},
	{"UNSUBSCRIBE filter truncated", V311, []byte{0xA2, 0x05, 0x00, 0x01, 0x00, 0x02, 't'}, MalformedPacket},
	{"UNSUBSCRIBE packet identifier 0", V311, []byte{0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 't'}, ProtocolError},
	{"v311 UNSUBACK three bytes", V311, []byte{0xB0, 0x03, 0x00, 0x01, 0x00}, MalformedPacket},
	{"v5 UNSUBACK without codes", V5, []byte{0xB0, 0x03, 0x00, 0x01, 0x00}, ProtocolError},
	{"v5 UNSUBACK code 0x01", V5, []byte{0xB0, 0x04, 0x00, 0x01, 0x00, 0x01}, ProtocolError},

	// ---- PINGREQ, PINGRESP, DISCONNECT, AUTH ------------------------------
	{"PINGREQ with body", V311, []byte{0xC0, 0x01, 0x00}, MalformedPacket},
	{"PINGRESP with body", V5, []byte{0xD0, 0x01, 0x00}, MalformedPacket},
	{"v311 DISCONNECT with body", V311, []byte{0xE0, 0x01, 0x00}, MalformedPacket},
	{"v5 DISCONNECT reason code 0x01", V5, []byte{0xE0, 0x01, 0x01}, ProtocolError},
	{"v5 DISCONNECT Topic Alias", V5, []byte{0xE0, 0x05, 0x00, 0x03, 0x23, 0x00, 0x01}, MalformedPacket},
	{"v311 AUTH", V311, []byte{0xF0, 0x00}, MalformedPacket},
	{"v5 AUTH reason code 0x87", V5, []byte{0xF0, 0x01, 0x87}, ProtocolError},
	{"v5 AUTH without method", V5, []byte{0xF0, 0x02, 0x18, 0x00}, ProtocolError},
}
