package packet

import "slices"

// Property identifiers (MQTT 5.0 section 2.2.2.2, table 2-4).
const (
	propPayloadFormat        = 0x01
	propMessageExpiry        = 0x02
	propContentType          = 0x03
	propResponseTopic        = 0x08
	propCorrelationData      = 0x09
	propSubscriptionID       = 0x0B
	propSessionExpiry        = 0x11
	propAssignedClientID     = 0x12
	propServerKeepAlive      = 0x13
	propAuthMethod           = 0x15
	propAuthData             = 0x16
	propRequestProblemInfo   = 0x17
	propWillDelay            = 0x18
	propRequestResponseInfo  = 0x19
	propResponseInfo         = 0x1A
	propServerReference      = 0x1C
	propReasonString         = 0x1F
	propReceiveMaximum       = 0x21
	propTopicAliasMaximum    = 0x22
	propTopicAlias           = 0x23
	propMaximumQoS           = 0x24
	propRetainAvailable      = 0x25
	propUser                 = 0x26
	propMaximumPacketSize    = 0x27
	propWildcardSubAvailable = 0x28
	propSubIDAvailable       = 0x29
	propSharedSubAvailable   = 0x2A
)

// MaxSubscriptionID is the largest Subscription Identifier, the largest
// value of a Variable Byte Integer.
const MaxSubscriptionID = MaxRemainingLength

// propContext is where a property list sits: a packet type, or the will
// properties of CONNECT. PUBACK, PUBREC, PUBREL and PUBCOMP share one.
type propContext uint16

const (
	inConnect propContext = 1 << iota
	inConnack
	inPublish
	inWill
	inAck
	inSubscribe
	inSuback
	inUnsubscribe
	inUnsuback
	inDisconnect
	inAuth

	inAll = inConnect | inConnack | inPublish | inWill | inAck | inSubscribe | inSuback |
		inUnsubscribe | inUnsuback | inDisconnect | inAuth
)

func (c propContext) String() string {
	switch c {
	case inConnect:
		return "CONNECT"
	case inConnack:
		return "CONNACK"
	case inPublish:
		return "PUBLISH"
	case inWill:
		return "will properties"
	case inAck:
		return "PUBACK/PUBREC/PUBREL/PUBCOMP"
	case inSubscribe:
		return "SUBSCRIBE"
	case inSuback:
		return "SUBACK"
	case inUnsubscribe:
		return "UNSUBSCRIBE"
	case inUnsuback:
		return "UNSUBACK"
	case inDisconnect:
		return "DISCONNECT"
	case inAuth:
		return "AUTH"
	}
	return "unknown context"
}

// propSpecs names each property and says where it may appear (MQTT 5.0
// section 2.2.2.2, table 2-4). An identifier with no entry is not defined.
var propSpecs = [...]struct {
	name    string
	allowed propContext
}{
	propPayloadFormat:        {"Payload Format Indicator", inPublish | inWill},
	propMessageExpiry:        {"Message Expiry Interval", inPublish | inWill},
	propContentType:          {"Content Type", inPublish | inWill},
	propResponseTopic:        {"Response Topic", inPublish | inWill},
	propCorrelationData:      {"Correlation Data", inPublish | inWill},
	propSubscriptionID:       {"Subscription Identifier", inPublish | inSubscribe},
	propSessionExpiry:        {"Session Expiry Interval", inConnect | inConnack | inDisconnect},
	propAssignedClientID:     {"Assigned Client Identifier", inConnack},
	propServerKeepAlive:      {"Server Keep Alive", inConnack},
	propAuthMethod:           {"Authentication Method", inConnect | inConnack | inAuth},
	propAuthData:             {"Authentication Data", inConnect | inConnack | inAuth},
	propRequestProblemInfo:   {"Request Problem Information", inConnect},
	propWillDelay:            {"Will Delay Interval", inWill},
	propRequestResponseInfo:  {"Request Response Information", inConnect},
	propResponseInfo:         {"Response Information", inConnack},
	propServerReference:      {"Server Reference", inConnack | inDisconnect},
	propReasonString:         {"Reason String", inConnack | inAck | inSuback | inUnsuback | inDisconnect | inAuth},
	propReceiveMaximum:       {"Receive Maximum", inConnect | inConnack},
	propTopicAliasMaximum:    {"Topic Alias Maximum", inConnect | inConnack},
	propTopicAlias:           {"Topic Alias", inPublish},
	propMaximumQoS:           {"Maximum QoS", inConnack},
	propRetainAvailable:      {"Retain Available", inConnack},
	propUser:                 {"User Property", inAll},
	propMaximumPacketSize:    {"Maximum Packet Size", inConnect | inConnack},
	propWildcardSubAvailable: {"Wildcard Subscription Available", inConnack},
	propSubIDAvailable:       {"Subscription Identifier Available", inConnack},
	propSharedSubAvailable:   {"Shared Subscription Available", inConnack},
}

// repeatable reports whether property id may appear more than once in ctx.
// Every other property appearing twice is a Protocol Error: the spec says so
// property by property, e.g. "It is a Protocol Error to include the Session
// Expiry Interval more than once" (section 3.1.2.11.2).
func repeatable(id byte, ctx propContext) bool {
	// User Property "is allowed to appear multiple times" (3.1.2.11.8 and
	// the other packets); a PUBLISH to a client carries one Subscription
	// Identifier per matching subscription (3.3.2.3.8), but SUBSCRIBE at
	// most one (3.8.2.1.2).
	return id == propUser || (id == propSubscriptionID && ctx == inPublish)
}

// reset clears pr for a new decode, keeping the backing arrays of its list
// slices so that decoding into the same Properties again does not allocate.
// The binary properties become nil, which is how absence is told apart
// from a present but empty value.
func (pr *Properties) reset() {
	user, ids := pr.User[:0], pr.SubscriptionIDs[:0]
	*pr = Properties{}
	pr.User, pr.SubscriptionIDs = user, ids
}

// Clone returns a deep copy of pr that shares no memory with it, for a
// caller that keeps properties beyond the next Decode into the same packet.
func (pr *Properties) Clone() Properties {
	c := *pr
	c.CorrelationData = slices.Clone(pr.CorrelationData)
	c.AuthData = slices.Clone(pr.AuthData)
	c.SubscriptionIDs = slices.Clone(pr.SubscriptionIDs)
	c.User = slices.Clone(pr.User)
	return c
}

// decode reads a Property Length and the properties after it from r,
// replacing all of pr. ctx is where the properties sit.
func (pr *Properties) decode(r *reader, ctx propContext) error {
	// Keep the space of the old binary properties for the new values.
	corrBuf, authBuf := pr.CorrelationData[:0], pr.AuthData[:0]
	pr.reset()

	n, err := r.readVBI("property length")
	if err != nil {
		return err
	}
	if n > r.left() {
		return Errorf(MalformedPacket, "property length %d exceeds the %d bytes left in the %s", n, r.left(), ctx)
	}
	// Reading through a reader that ends with the properties makes a
	// property that overruns the Property Length malformed.
	p := reader{b: r.b[:r.off+n], off: r.off}
	r.off += n

	var seen uint64
	for p.left() > 0 {
		id := p.b[p.off]
		p.off++
		// Identifiers are Variable Byte Integers, but every defined one fits
		// in one byte (non-normative comment in 2.2.2.2), so a byte with the
		// continuation bit is not a defined identifier either.
		if int(id) >= len(propSpecs) || propSpecs[id].allowed&ctx == 0 {
			if int(id) < len(propSpecs) && propSpecs[id].name != "" {
				return Errorf(MalformedPacket, "%s (0x%02X) is not valid in %s (MQTT 5.0 section 2.2.2.2)", propSpecs[id].name, id, ctx)
			}
			return Errorf(MalformedPacket, "property identifier 0x%02X is not defined (MQTT 5.0 section 2.2.2.2)", id)
		}
		name := propSpecs[id].name
		bit := uint64(1) << id
		if seen&bit != 0 && !repeatable(id, ctx) {
			return Errorf(ProtocolError, "%s included more than once in %s", name, ctx)
		}
		seen |= bit

		switch id {
		case propPayloadFormat:
			pr.PayloadFormat, err = readBoolByte(&p, name)
			pr.HasPayloadFormat = true
		case propMessageExpiry:
			pr.MessageExpiry, err = p.readUint32(name)
			pr.HasMessageExpiry = true
		case propContentType:
			pr.ContentType, err = p.readString(name)
		case propResponseTopic:
			var b []byte
			if b, err = p.readBytes(name); err == nil {
				// The Response Topic is a Topic Name, so the rules of
				// [MQTT-3.3.2-14] and [MQTT-1.5.4-1] apply; a wildcard in
				// it is not a name the server can publish to.
				switch f := scanText(b, true); f {
				case textOK:
					pr.ResponseTopic = string(b)
				case textWildcard:
					err = Errorf(ProtocolError, "Response Topic contains a wildcard character [MQTT-3.3.2-14]")
				default:
					err = textError(name, f)
				}
			}
		case propCorrelationData:
			pr.CorrelationData, err = p.readBinary(name, corrBuf)
		case propSubscriptionID:
			var v int
			if v, err = p.readVBI(name); err == nil {
				if v == 0 {
					err = Errorf(ProtocolError, "Subscription Identifier 0 (MQTT 5.0 sections 3.3.2.3.8 and 3.8.2.1.2)")
				}
				pr.SubscriptionIDs = append(pr.SubscriptionIDs, uint32(v))
			}
		case propSessionExpiry:
			pr.SessionExpiry, err = p.readUint32(name)
			pr.HasSessionExpiry = true
		case propAssignedClientID:
			pr.AssignedClientID, err = p.readString(name)
		case propServerKeepAlive:
			pr.ServerKeepAlive, err = p.readUint16(name)
			pr.HasServerKeepAlive = true
		case propAuthMethod:
			pr.AuthMethod, err = p.readString(name)
		case propAuthData:
			pr.AuthData, err = p.readBinary(name, authBuf)
		case propRequestProblemInfo:
			pr.RequestProblemInfo, err = readBoolByte(&p, name)
			pr.HasRequestProblemInfo = true
		case propWillDelay:
			pr.WillDelay, err = p.readUint32(name)
			pr.HasWillDelay = true
		case propRequestResponseInfo:
			pr.RequestResponseInfo, err = readBoolByte(&p, name)
			pr.HasRequestResponseInfo = true
		case propResponseInfo:
			pr.ResponseInfo, err = p.readString(name)
		case propServerReference:
			pr.ServerReference, err = p.readString(name)
		case propReasonString:
			pr.ReasonString, err = p.readString(name)
		case propReceiveMaximum:
			if pr.ReceiveMaximum, err = p.readUint16(name); err == nil && pr.ReceiveMaximum == 0 {
				err = Errorf(ProtocolError, "Receive Maximum 0 (MQTT 5.0 section 3.1.2.11.3)")
			}
			pr.HasReceiveMaximum = true
		case propTopicAliasMaximum:
			pr.TopicAliasMaximum, err = p.readUint16(name)
			pr.HasTopicAliasMaximum = true
		case propTopicAlias:
			if pr.TopicAlias, err = p.readUint16(name); err == nil && pr.TopicAlias == 0 {
				err = Errorf(TopicAliasInvalid, "Topic Alias 0 [MQTT-3.3.2-8]")
			}
			pr.HasTopicAlias = true
		case propMaximumQoS:
			pr.MaximumQoS, err = readBoolByte(&p, name)
			pr.HasMaximumQoS = true
		case propRetainAvailable:
			pr.RetainAvailable, err = readBoolByte(&p, name)
			pr.HasRetainAvailable = true
		case propUser:
			var u UserProperty
			if u.Key, err = p.readString("User Property name"); err == nil {
				if u.Value, err = p.readString("User Property value"); err == nil {
					pr.User = append(pr.User, u)
				}
			}
		case propMaximumPacketSize:
			if pr.MaximumPacketSize, err = p.readUint32(name); err == nil && pr.MaximumPacketSize == 0 {
				err = Errorf(ProtocolError, "Maximum Packet Size 0 (MQTT 5.0 section 3.1.2.11.4)")
			}
			pr.HasMaximumPacketSize = true
		case propWildcardSubAvailable:
			pr.WildcardSubAvailable, err = readBoolByte(&p, name)
			pr.HasWildcardSubAvailable = true
		case propSubIDAvailable:
			pr.SubIDAvailable, err = readBoolByte(&p, name)
			pr.HasSubIDAvailable = true
		case propSharedSubAvailable:
			pr.SharedSubAvailable, err = readBoolByte(&p, name)
			pr.HasSharedSubAvailable = true
		}
		if err != nil {
			return err
		}
	}
	if ctx == inConnect && seen&(1<<propAuthData) != 0 && seen&(1<<propAuthMethod) == 0 {
		return Errorf(ProtocolError, "Authentication Data without Authentication Method (MQTT 5.0 section 3.1.2.11.10)")
	}
	return nil
}

// readBoolByte reads a Byte property whose only values are 0 and 1. The
// spec makes any other value a Protocol Error for Request Problem
// Information, Request Response Information, Maximum QoS and the four
// "available" properties; Payload Format Indicator defines only 0 and 1.
func readBoolByte(r *reader, name string) (byte, error) {
	v, err := r.readByte(name)
	if err == nil && v > 1 {
		return v, Errorf(ProtocolError, "%s is %d, must be 0 or 1", name, v)
	}
	return v, err
}

// propSizer adds up the encoded size of properties and records the first
// reason they cannot be encoded in ctx.
type propSizer struct {
	ctx propContext
	n   int
	err error
}

// add counts property id with a value of n bytes.
func (s *propSizer) add(id byte, n int) {
	if s.err == nil && propSpecs[id].allowed&s.ctx == 0 {
		s.err = Errorf(MalformedPacket, "encode %s: %s is not valid there (MQTT 5.0 section 2.2.2.2)", s.ctx, propSpecs[id].name)
	}
	s.n += 1 + n
}

// addField counts a length-prefixed string or binary property.
func (s *propSizer) addField(id byte, n int) {
	if s.err == nil && n > maxFieldLen {
		s.err = Errorf(MalformedPacket, "encode %s: %s is %d bytes, the limit is %d", s.ctx, propSpecs[id].name, n, maxFieldLen)
	}
	s.add(id, 2+n)
}

// addBool counts a Byte property that must be 0 or 1.
func (s *propSizer) addBool(id byte, v byte) {
	if s.err == nil && v > 1 {
		s.err = Errorf(ProtocolError, "encode %s: %s is %d, must be 0 or 1", s.ctx, propSpecs[id].name, v)
	}
	s.add(id, 1)
}

// fail records err unless an earlier error is already recorded.
func (s *propSizer) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// size returns the length of pr's properties on the wire, not counting the
// Property Length itself. It fails when a property is not valid in ctx or
// has a value the decoder would refuse, so that whatever encodes decodes.
func (pr *Properties) size(ctx propContext) (int, error) {
	s := propSizer{ctx: ctx}
	if pr.HasPayloadFormat {
		s.addBool(propPayloadFormat, pr.PayloadFormat)
	}
	if pr.HasMessageExpiry {
		s.add(propMessageExpiry, 4)
	}
	if pr.ContentType != "" {
		s.addField(propContentType, len(pr.ContentType))
	}
	if pr.ResponseTopic != "" {
		s.addField(propResponseTopic, len(pr.ResponseTopic))
	}
	if pr.CorrelationData != nil {
		s.addField(propCorrelationData, len(pr.CorrelationData))
	}
	if len(pr.SubscriptionIDs) > 1 && ctx != inPublish {
		s.fail(Errorf(ProtocolError, "encode %s: %d Subscription Identifiers, at most 1 allowed", ctx, len(pr.SubscriptionIDs)))
	}
	for _, id := range pr.SubscriptionIDs {
		if id == 0 || id > MaxSubscriptionID {
			s.fail(Errorf(ProtocolError, "encode %s: Subscription Identifier %d is not in 1..%d", ctx, id, MaxSubscriptionID))
			continue
		}
		s.add(propSubscriptionID, vbiLen(int(id)))
	}
	if pr.HasSessionExpiry {
		s.add(propSessionExpiry, 4)
	}
	if pr.AssignedClientID != "" {
		s.addField(propAssignedClientID, len(pr.AssignedClientID))
	}
	if pr.HasServerKeepAlive {
		s.add(propServerKeepAlive, 2)
	}
	if pr.AuthMethod != "" {
		s.addField(propAuthMethod, len(pr.AuthMethod))
	}
	if pr.AuthData != nil {
		if ctx == inConnect && pr.AuthMethod == "" {
			s.fail(Errorf(ProtocolError, "encode CONNECT: Authentication Data without Authentication Method"))
		}
		s.addField(propAuthData, len(pr.AuthData))
	}
	if pr.HasRequestProblemInfo {
		s.addBool(propRequestProblemInfo, pr.RequestProblemInfo)
	}
	if pr.HasWillDelay {
		s.add(propWillDelay, 4)
	}
	if pr.HasRequestResponseInfo {
		s.addBool(propRequestResponseInfo, pr.RequestResponseInfo)
	}
	if pr.ResponseInfo != "" {
		s.addField(propResponseInfo, len(pr.ResponseInfo))
	}
	if pr.ServerReference != "" {
		s.addField(propServerReference, len(pr.ServerReference))
	}
	if pr.ReasonString != "" {
		s.addField(propReasonString, len(pr.ReasonString))
	}
	if pr.HasReceiveMaximum {
		if pr.ReceiveMaximum == 0 {
			s.fail(Errorf(ProtocolError, "encode %s: Receive Maximum 0", ctx))
		}
		s.add(propReceiveMaximum, 2)
	}
	if pr.HasTopicAliasMaximum {
		s.add(propTopicAliasMaximum, 2)
	}
	if pr.HasTopicAlias {
		if pr.TopicAlias == 0 {
			s.fail(Errorf(TopicAliasInvalid, "encode %s: Topic Alias 0 [MQTT-3.3.2-8]", ctx))
		}
		s.add(propTopicAlias, 2)
	}
	if pr.HasMaximumQoS {
		s.addBool(propMaximumQoS, pr.MaximumQoS)
	}
	if pr.HasRetainAvailable {
		s.addBool(propRetainAvailable, pr.RetainAvailable)
	}
	for i := range pr.User {
		u := &pr.User[i]
		if len(u.Key) > maxFieldLen || len(u.Value) > maxFieldLen {
			s.fail(Errorf(MalformedPacket, "encode %s: User Property longer than %d bytes", ctx, maxFieldLen))
		}
		s.add(propUser, 4+len(u.Key)+len(u.Value))
	}
	if pr.HasMaximumPacketSize {
		if pr.MaximumPacketSize == 0 {
			s.fail(Errorf(ProtocolError, "encode %s: Maximum Packet Size 0", ctx))
		}
		s.add(propMaximumPacketSize, 4)
	}
	if pr.HasWildcardSubAvailable {
		s.addBool(propWildcardSubAvailable, pr.WildcardSubAvailable)
	}
	if pr.HasSubIDAvailable {
		s.addBool(propSubIDAvailable, pr.SubIDAvailable)
	}
	if pr.HasSharedSubAvailable {
		s.addBool(propSharedSubAvailable, pr.SharedSubAvailable)
	}
	if s.err == nil && s.n > MaxRemainingLength {
		s.err = Errorf(PacketTooLarge, "encode %s: properties are %d bytes", ctx, s.n)
	}
	return s.n, s.err
}

// appendProperties appends the Property Length n and then the properties,
// in identifier order. n and the values were checked by size.
func (pr *Properties) appendProperties(dst []byte, n int) []byte {
	dst = appendVBI(dst, n)
	if n == 0 {
		return dst
	}
	if pr.HasPayloadFormat {
		dst = append(dst, propPayloadFormat, pr.PayloadFormat)
	}
	if pr.HasMessageExpiry {
		dst = appendUint32(append(dst, propMessageExpiry), pr.MessageExpiry)
	}
	if pr.ContentType != "" {
		dst = appendString(append(dst, propContentType), pr.ContentType)
	}
	if pr.ResponseTopic != "" {
		dst = appendString(append(dst, propResponseTopic), pr.ResponseTopic)
	}
	if pr.CorrelationData != nil {
		dst = appendBinary(append(dst, propCorrelationData), pr.CorrelationData)
	}
	for _, id := range pr.SubscriptionIDs {
		dst = appendVBI(append(dst, propSubscriptionID), int(id))
	}
	if pr.HasSessionExpiry {
		dst = appendUint32(append(dst, propSessionExpiry), pr.SessionExpiry)
	}
	if pr.AssignedClientID != "" {
		dst = appendString(append(dst, propAssignedClientID), pr.AssignedClientID)
	}
	if pr.HasServerKeepAlive {
		dst = appendUint16(append(dst, propServerKeepAlive), pr.ServerKeepAlive)
	}
	if pr.AuthMethod != "" {
		dst = appendString(append(dst, propAuthMethod), pr.AuthMethod)
	}
	if pr.AuthData != nil {
		dst = appendBinary(append(dst, propAuthData), pr.AuthData)
	}
	if pr.HasRequestProblemInfo {
		dst = append(dst, propRequestProblemInfo, pr.RequestProblemInfo)
	}
	if pr.HasWillDelay {
		dst = appendUint32(append(dst, propWillDelay), pr.WillDelay)
	}
	if pr.HasRequestResponseInfo {
		dst = append(dst, propRequestResponseInfo, pr.RequestResponseInfo)
	}
	if pr.ResponseInfo != "" {
		dst = appendString(append(dst, propResponseInfo), pr.ResponseInfo)
	}
	if pr.ServerReference != "" {
		dst = appendString(append(dst, propServerReference), pr.ServerReference)
	}
	if pr.ReasonString != "" {
		dst = appendString(append(dst, propReasonString), pr.ReasonString)
	}
	if pr.HasReceiveMaximum {
		dst = appendUint16(append(dst, propReceiveMaximum), pr.ReceiveMaximum)
	}
	if pr.HasTopicAliasMaximum {
		dst = appendUint16(append(dst, propTopicAliasMaximum), pr.TopicAliasMaximum)
	}
	if pr.HasTopicAlias {
		dst = appendUint16(append(dst, propTopicAlias), pr.TopicAlias)
	}
	if pr.HasMaximumQoS {
		dst = append(dst, propMaximumQoS, pr.MaximumQoS)
	}
	if pr.HasRetainAvailable {
		dst = append(dst, propRetainAvailable, pr.RetainAvailable)
	}
	for _, u := range pr.User {
		dst = appendString(appendString(append(dst, propUser), u.Key), u.Value)
	}
	if pr.HasMaximumPacketSize {
		dst = appendUint32(append(dst, propMaximumPacketSize), pr.MaximumPacketSize)
	}
	if pr.HasWildcardSubAvailable {
		dst = append(dst, propWildcardSubAvailable, pr.WildcardSubAvailable)
	}
	if pr.HasSubIDAvailable {
		dst = append(dst, propSubIDAvailable, pr.SubIDAvailable)
	}
	if pr.HasSharedSubAvailable {
		dst = append(dst, propSharedSubAvailable, pr.SharedSubAvailable)
	}
	return dst
}
