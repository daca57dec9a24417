package packet

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDecodeVectors(t *testing.T) {
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeRaw(tc.raw, tc.v)
			if err != nil {
				t.Fatalf("decode % X: %v", tc.raw, err)
			}
			if !equalPackets(got, tc.want) {
				t.Errorf("decoded\n got  %s\n want %s", show(got), show(tc.want))
			}
			if got.PacketType() != Type(tc.raw[0]>>4) {
				t.Errorf("PacketType() = %v, the first byte says %v", got.PacketType(), Type(tc.raw[0]>>4))
			}
		})
	}
}

func TestEncodeVectors(t *testing.T) {
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := tc.want.Encode(nil, tc.v)
			if err != nil {
				t.Fatalf("encode %s: %v", show(tc.want), err)
			}
			if tc.exact && !bytes.Equal(enc, tc.raw) {
				t.Errorf("encoded\n got  % X\n want % X", enc, tc.raw)
			}
			back, err := decodeRaw(enc, tc.v)
			if err != nil {
				t.Fatalf("decode of encoded % X: %v", enc, err)
			}
			if !equalPackets(back, tc.want) {
				t.Errorf("round trip\n got  %s\n want %s", show(back), show(tc.want))
			}
		})
	}
}

// A connection decodes every packet into the same value per type; nothing
// of what was there before may survive.
func TestDecodeIntoUsedValueResetsEveryField(t *testing.T) {
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			fh, body, err := splitPacket(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			p := dirty(tc.want)
			if err := decodeInto(p, fh, body, tc.v); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !equalPackets(p, tc.want) {
				t.Errorf("decoded into a used value\n got  %s\n want %s", show(p), show(tc.want))
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, tc := range malformedVectors {
		t.Run(tc.name, func(t *testing.T) {
			fh, n, err := ReadFixedHeader(tc.raw)
			if err == nil {
				if n == 0 || len(tc.raw) != n+fh.Remaining {
					t.Fatalf("vector is not one framed packet: header %d bytes %+v, %d bytes in all", n, fh, len(tc.raw))
				}
				_, err = Decode(fh, tc.raw[n:], tc.v)
			}
			if err == nil {
				t.Fatalf("% X decoded without error, want %v", tc.raw, tc.code)
			}
			if got := reasonOf(t, err); got != tc.code {
				t.Errorf("error %q has code %v (0x%02X), want %v (0x%02X)", err, got, byte(got), tc.code, byte(tc.code))
			}
		})
	}
}

// A per-type decoder handed the wrong packet, or a body of another length
// than the header announced, refuses it instead of misreading it.
func TestDecodeRejectsMismatchedHeader(t *testing.T) {
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			fh, body, err := splitPacket(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			other := fh
			other.Type = CONNACK // a type that this value's decoder does not take
			if fh.Type == CONNACK {
				other.Type = CONNECT
			}
			if err := decodeInto(dirty(tc.want), other, body, tc.v); err == nil {
				t.Errorf("decoding a %v body as %v succeeded", fh.Type, other.Type)
			} else if code := reasonOf(t, err); code != MalformedPacket {
				t.Errorf("wrong type: code %v, want MalformedPacket", code)
			}
			longer := fh
			longer.Remaining++
			if err := decodeInto(dirty(tc.want), longer, body, tc.v); err == nil {
				t.Errorf("body shorter than the Remaining Length was accepted")
			}
		})
	}
}

func TestReadFixedHeaderWaitsForCompleteHeader(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		{0x30},
		{0x00},                   // even an invalid first byte waits for the length
		{0x30, 0x80},             // continuation bit: more length bytes follow
		{0x30, 0xFF, 0xFF},       //
		{0x30, 0xFF, 0xFF, 0xFF}, // the fourth byte is still to come
	} {
		fh, n, err := ReadFixedHeader(b)
		if n != 0 || err != nil || fh != (FixedHeader{}) {
			t.Errorf("ReadFixedHeader(% X) = %+v, %d, %v; want zero, 0, nil", b, fh, n, err)
		}
	}
}

func TestReadFixedHeaderRemainingLengthBoundaries(t *testing.T) {
	for _, tc := range []struct {
		remaining int
		size      int // bytes of the length
	}{
		{0, 1}, {127, 1}, {128, 2}, {16383, 2}, {16384, 3}, {2097151, 3}, {2097152, 4}, {MaxRemainingLength, 4},
	} {
		b := appendVBI([]byte{0x30}, tc.remaining)
		fh, n, err := ReadFixedHeader(b)
		if err != nil || n != 1+tc.size || fh.Remaining != tc.remaining || fh.Type != PUBLISH {
			t.Errorf("remaining %d encoded as % X: got %+v, n=%d, err=%v", tc.remaining, b, fh, n, err)
		}
		if vbiLen(tc.remaining) != tc.size {
			t.Errorf("vbiLen(%d) = %d, want %d", tc.remaining, vbiLen(tc.remaining), tc.size)
		}
	}
}

// Decoded strings and binary properties must not change when the read
// buffer is reused; only PUBLISH's Topic and Payload alias it.
func TestDecodeCopiesAllButTopicAndPayload(t *testing.T) {
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			raw := bytes.Clone(tc.raw)
			got, err := decodeRaw(raw, tc.v)
			if err != nil {
				t.Fatal(err)
			}
			for i := range raw {
				raw[i] = 0xEE
			}
			if pub, ok := got.(*Publish); ok {
				if len(pub.Payload) > 0 && pub.Payload[0] != 0xEE {
					t.Errorf("Payload does not alias the buffer")
				}
				pub.Topic, pub.Payload = nil, nil
				want := *tc.want.(*Publish)
				want.Topic, want.Payload = nil, nil
				if !equalPackets(pub, &want) {
					t.Errorf("after overwriting the buffer\n got  %s\n want %s", show(pub), show(&want))
				}
				return
			}
			if !equalPackets(got, tc.want) {
				t.Errorf("after overwriting the buffer\n got  %s\n want %s", show(got), show(tc.want))
			}
		})
	}
}

func TestDecodeReusesSlices(t *testing.T) {
	sub := vectorNamed(t, "v311 SUBSCRIBE two filters")
	fh, body, _ := splitPacket(sub.raw)
	var s Subscribe
	if err := s.Decode(fh, body, sub.v); err != nil {
		t.Fatal(err)
	}
	first := &s.Subscriptions[0]
	if err := s.Decode(fh, body, sub.v); err != nil {
		t.Fatal(err)
	}
	if &s.Subscriptions[0] != first {
		t.Errorf("second decode allocated a new Subscriptions array")
	}

	pub := vectorNamed(t, "v5 PUBLISH QoS 1 every PUBLISH property")
	fh, body, _ = splitPacket(pub.raw)
	var p Publish
	allocs := testing.AllocsPerRun(100, func() {
		if err := p.Decode(fh, body, V5); err != nil {
			t.Fatal(err)
		}
	})
	// Content Type, Response Topic and the User Property strings are new
	// strings every time (at most 4); the slices and the Correlation Data
	// reuse their space.
	if allocs > 4 {
		t.Errorf("decoding a v5 PUBLISH with properties into a used value: %v allocations, want at most 4", allocs)
	}
}

func TestPublishDecodeAndEncodeDoNotAllocate(t *testing.T) {
	for _, name := range []string{"v311 PUBLISH QoS 1 dup retain", "v5 PUBLISH QoS 0 no properties"} {
		tc := vectorNamed(t, name)
		fh, body, _ := splitPacket(tc.raw)
		var p Publish
		dst := make([]byte, 0, 256)
		allocs := testing.AllocsPerRun(100, func() {
			if err := p.Decode(fh, body, tc.v); err != nil {
				t.Fatal(err)
			}
			var err error
			if dst, err = p.Encode(dst[:0], tc.v); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per decode and encode, want 0", name, allocs)
		}
	}
	// Encoding with properties does not allocate either.
	tc := vectorNamed(t, "v5 PUBLISH QoS 1 every PUBLISH property")
	dst := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		if dst, err = tc.want.Encode(dst[:0], V5); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("encoding a v5 PUBLISH with properties: %v allocations, want 0", allocs)
	}
}

func TestEncodeAppends(t *testing.T) {
	prefix := []byte("prefix")
	tc := vectorNamed(t, "v311 PUBACK")
	out, err := tc.want.Encode(bytes.Clone(prefix), tc.v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, append(bytes.Clone(prefix), tc.raw...)) {
		t.Errorf("Encode did not append: % X", out)
	}
}

func TestEncodeRefusesInvalidPackets(t *testing.T) {
	long := strings.Repeat("x", maxFieldLen+1)
	for _, tc := range []struct {
		name string
		v    Version
		p    Packet
		code ReasonCode
	}{
		{"PUBLISH QoS 3", V311, &Publish{QoS: 3, Topic: []byte("t")}, MalformedPacket},
		{"PUBLISH QoS 1 packet id 0", V311, &Publish{QoS: 1, Topic: []byte("t")}, ProtocolError},
		{"PUBLISH DUP QoS 0", V311, &Publish{Dup: true, Topic: []byte("t")}, ProtocolError},
		{"v3 PUBLISH empty topic", V311, &Publish{}, TopicNameInvalid},
		{"v5 PUBLISH empty topic without alias", V5, &Publish{}, ProtocolError},
		{"PUBLISH topic too long", V311, &Publish{Topic: []byte(long)}, MalformedPacket},
		{"v5 PUBLISH Topic Alias 0", V5, &Publish{Topic: []byte("t"), Properties: Properties{HasTopicAlias: true}}, TopicAliasInvalid},
		{"v5 PUBLISH Subscription Identifier 0", V5, &Publish{Topic: []byte("t"), Properties: Properties{SubscriptionIDs: []uint32{0}}}, ProtocolError},
		{"v5 PUBLISH Subscription Identifier too big", V5, &Publish{Topic: []byte("t"), Properties: Properties{SubscriptionIDs: []uint32{MaxSubscriptionID + 1}}}, ProtocolError},
		{"v5 PUBLISH Session Expiry", V5, &Publish{Topic: []byte("t"), Properties: Properties{HasSessionExpiry: true}}, MalformedPacket},
		{"v5 PUBLISH Payload Format 7", V5, &Publish{Topic: []byte("t"), Properties: Properties{HasPayloadFormat: true, PayloadFormat: 7}}, ProtocolError},
		{"v5 PUBLISH user property too long", V5, &Publish{Topic: []byte("t"), Properties: Properties{User: []UserProperty{{long, ""}}}}, MalformedPacket},
		{"v5 CONNACK Topic Alias", V5, &Connack{Properties: Properties{HasTopicAlias: true, TopicAlias: 1}}, MalformedPacket},
		{"v5 CONNACK Receive Maximum 0", V5, &Connack{Properties: Properties{HasReceiveMaximum: true}}, ProtocolError},
		{"v5 CONNACK reason code 0x10", V5, &Connack{ReasonCode: NoMatchingSubscribers}, ProtocolError},
		{"CONNACK session present on refusal", V311, &Connack{SessionPresent: true, ReasonCode: NotAuthorized}, ProtocolError},
		{"CONNECT unknown level", 0, &Connect{Version: 7}, UnsupportedProtocolVersion},
		{"CONNECT MQIsdp level 5", 0, &Connect{ProtocolName: "MQIsdp", Version: V5}, UnsupportedProtocolVersion},
		{"v5 CONNECT with the bridge bit", V5, &Connect{Bridge: true}, UnsupportedProtocolVersion},
		{"CONNECT will QoS 3", V311, &Connect{WillFlag: true, WillQoS: 3, WillTopic: "t"}, MalformedPacket},
		{"CONNECT will retain without will", V311, &Connect{WillRetain: true}, MalformedPacket},
		{"CONNECT will without topic", V311, &Connect{WillFlag: true}, TopicNameInvalid},
		{"v311 CONNECT password without user name", V311, &Connect{HasPassword: true}, ProtocolError},
		{"v5 CONNECT Auth Data without Method", V5, &Connect{Properties: Properties{AuthData: []byte{1}}}, ProtocolError},
		{"v5 CONNECT Will Delay outside will", V5, &Connect{Properties: Properties{HasWillDelay: true}}, MalformedPacket},
		{"CONNECT client id too long", V311, &Connect{ClientID: long}, MalformedPacket},
		{"Ack of type PUBLISH", V311, &Ack{Type: PUBLISH, PacketID: 1}, MalformedPacket},
		{"PUBACK packet id 0", V311, &Ack{Type: PUBACK}, ProtocolError},
		{"v5 PUBREL reason 0x10", V5, &Ack{Type: PUBREL, PacketID: 1, ReasonCode: NoMatchingSubscribers}, ProtocolError},
		{"SUBSCRIBE without filters", V311, &Subscribe{PacketID: 1}, ProtocolError},
		{"SUBSCRIBE packet id 0", V311, &Subscribe{Subscriptions: []Subscription{{Filter: "t"}}}, ProtocolError},
		{"SUBSCRIBE QoS 3", V311, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "t", QoS: 3}}}, ProtocolError},
		{"v5 SUBSCRIBE No Local on shared", V5, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "$share/g/t", NoLocal: true}}}, ProtocolError},
		{"v5 SUBSCRIBE two Subscription Identifiers", V5, &Subscribe{PacketID: 1, Properties: Properties{SubscriptionIDs: []uint32{1, 2}}, Subscriptions: []Subscription{{Filter: "t"}}}, ProtocolError},
		{"SUBACK without codes", V311, &Suback{PacketID: 1}, ProtocolError},
		{"v3 SUBACK code without v3 meaning", V311, &Suback{PacketID: 1, ReasonCodes: []ReasonCode{NoMatchingSubscribers}}, ProtocolError},
		{"UNSUBSCRIBE without filters", V5, &Unsubscribe{PacketID: 1}, ProtocolError},
		{"v5 UNSUBACK without codes", V5, &Unsuback{PacketID: 1}, ProtocolError},
		{"v5 DISCONNECT reason 0x01", V5, &Disconnect{ReasonCode: GrantedQoS1}, ProtocolError},
		{"v311 AUTH", V311, &Auth{}, ProtocolError},
		{"v5 AUTH continue without method", V5, &Auth{ReasonCode: ContinueAuthentication}, ProtocolError},
		{"unknown version", Version(9), &Pingreq{}, UnsupportedProtocolVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.p.Encode([]byte("keep"), tc.v)
			if err == nil {
				t.Fatalf("encoded % X, want an error", out)
			}
			if got := reasonOf(t, err); got != tc.code {
				t.Errorf("error %q has code %v, want %v", err, got, tc.code)
			}
			if string(out) != "keep" {
				t.Errorf("a failed Encode changed dst to %q", out)
			}
		})
	}
}

// A v5 reason code is sent to a 3.1.1 client as the nearest return code.
func TestV3ConnackAndSubackCodes(t *testing.T) {
	for _, tc := range []struct {
		code ReasonCode
		want byte
	}{
		{Success, 0}, {UnsupportedProtocolVersion, 1}, {ClientIdentifierNotValid, 2},
		{ServerBusy, 3}, {BadUsernameOrPassword, 4}, {Banned, 5}, {NotAuthorized, 5},
	} {
		out, err := (&Connack{ReasonCode: tc.code}).Encode(nil, V311)
		if err != nil || !bytes.Equal(out, []byte{0x20, 0x02, 0x00, tc.want}) {
			t.Errorf("v3 CONNACK for %v = % X, %v; want return code %d", tc.code, out, err, tc.want)
		}
	}
	// 3.1 has no Session Present flag.
	out, err := (&Connack{SessionPresent: true}).Encode(nil, V31)
	if err != nil || !bytes.Equal(out, []byte{0x20, 0x02, 0x00, 0x00}) {
		t.Errorf("v3.1 CONNACK with session present = % X, %v; want 20 02 00 00", out, err)
	}
	// Every v5 failure becomes 3.1.1's only failure code, 0x80.
	out, err = (&Suback{PacketID: 1, ReasonCodes: []ReasonCode{GrantedQoS2, NotAuthorized, TopicFilterInvalid}}).Encode(nil, V311)
	if err != nil || !bytes.Equal(out, []byte{0x90, 0x05, 0x00, 0x01, 0x02, 0x80, 0x80}) {
		t.Errorf("v3 SUBACK = % X, %v; want 90 05 00 01 02 80 80", out, err)
	}
	// v3 leaves out properties and v5-only fields instead of failing.
	out, err = (&Publish{Topic: []byte("t"), Properties: Properties{HasTopicAlias: true, TopicAlias: 3}}).Encode(nil, V311)
	if err != nil || !bytes.Equal(out, []byte{0x30, 0x03, 0x00, 0x01, 't'}) {
		t.Errorf("v3 PUBLISH with v5 properties = % X, %v; want 30 03 00 01 74", out, err)
	}
}

// The broker answers an unsupported CONNECT in the client's own dialect,
// so the decoder must report what the client asked for.
func TestConnectReportsVersionOnError(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     []byte
		version Version
		code    ReasonCode
	}{
		{"level 6", malformedNamed(t, "CONNECT level 6").raw, 6, UnsupportedProtocolVersion},
		{"v5 malformed after the level", malformedNamed(t, "v5 CONNECT Topic Alias").raw, V5, MalformedPacket},
		{"v3 malformed after the level", malformedNamed(t, "CONNECT reserved flag").raw, V311, MalformedPacket},
	} {
		fh, body, err := splitPacket(tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		var c Connect
		err = c.Decode(fh, body)
		if err == nil || reasonOf(t, err) != tc.code || c.Version != tc.version {
			t.Errorf("%s: err=%v, Version=%d; want code %v and Version %d", tc.name, err, c.Version, tc.code, tc.version)
		}
	}
}

func TestPublishCloneSharesNothing(t *testing.T) {
	tc := vectorNamed(t, "v5 PUBLISH QoS 1 every PUBLISH property")
	raw := bytes.Clone(tc.raw)
	fh, body, _ := splitPacket(raw)
	var p Publish
	if err := p.Decode(fh, body, V5); err != nil {
		t.Fatal(err)
	}
	c := p.Clone()
	for i := range raw {
		raw[i] = 0
	}
	p.Properties.CorrelationData[0] = 0xFF
	p.Properties.SubscriptionIDs[0] = 999
	p.Properties.User[0].Key = "changed"
	if !equalPackets(&c, tc.want) {
		t.Errorf("clone changed with its source\n got  %s\n want %s", show(&c), show(tc.want))
	}
}

func TestErrorsCarryContext(t *testing.T) {
	_, err := decodeRaw(malformedNamed(t, "v5 CONNECT duplicate Session Expiry").raw, V5)
	if err == nil || !strings.Contains(err.Error(), "Session Expiry Interval") || !errors.Is(err, ProtocolError) {
		t.Errorf("error %v should name the property and match ProtocolError", err)
	}
}

func vectorNamed(t *testing.T, name string) vector {
	t.Helper()
	for _, v := range vectors {
		if v.name == name {
			return v
		}
	}
	t.Fatalf("no vector %q", name)
	return vector{}
}

func malformedNamed(t *testing.T, name string) malformedVector {
	t.Helper()
	for _, v := range malformedVectors {
		if v.name == name {
			return v
		}
	}
	t.Fatalf("no malformed vector %q", name)
	return malformedVector{}
}
