package packet

// Protocol names carried in CONNECT.
const (
	ProtocolMQTT   = "MQTT"   // 3.1.1 and 5.0
	ProtocolMQIsdp = "MQIsdp" // 3.1
)

// supportedProtocol reports whether name and level are a pair this codec
// speaks: "MQIsdp" 3, "MQTT" 4 and "MQTT" 5.
func supportedProtocol(name string, level Version) bool {
	switch name {
	case ProtocolMQTT:
		return level == V311 || level == V5
	case ProtocolMQIsdp:
		return level == V31
	}
	return false
}

// bridgeBit marks a bridge in the protocol level of a 3.1 or 3.1.1 CONNECT.
const bridgeBit = 0x80

// PacketType returns CONNECT.
func (*Connect) PacketType() Type { return CONNECT }

// Decode parses the body of a CONNECT, which says itself which protocol
// version it speaks. When the error is UnsupportedProtocolVersion, or any
// error after the protocol level, p.ProtocolName and p.Version hold what
// the client sent, so the caller can answer with a CONNACK the client
// understands (v5 when p.Version is V5, 3.1.1 otherwise).
//
// Unlike the other decoders Decode reuses no memory of p: everything in a
// decoded Connect is newly allocated, because the will message and the
// credentials usually outlive the packet and CONNECT comes once per
// connection.
func (p *Connect) Decode(fh FixedHeader, body []byte) error {
	*p = Connect{}
	if err := checkBody(fh, body, CONNECT); err != nil {
		return err
	}
	r := reader{b: body}
	name, err := r.readBytes("protocol name")
	if err != nil {
		return err
	}
	level, err := r.readByte("protocol level")
	if err != nil {
		return err
	}
	p.Version = Version(level)
	if level&bridgeBit != 0 && Version(level&^bridgeBit) != V5 {
		// A bridge of 3.1 or 3.1.1 (not in the specification; see Connect.Bridge).
		p.Version, p.Bridge = Version(level&^bridgeBit), true
	}
	// Comparing before converting keeps the common names from allocating.
	switch string(name) {
	case ProtocolMQTT:
		p.ProtocolName = ProtocolMQTT
	case ProtocolMQIsdp:
		p.ProtocolName = ProtocolMQIsdp
	default:
		if scanText(name, false) == textOK {
			p.ProtocolName = string(name)
		}
		return Errorf(UnsupportedProtocolVersion, "protocol name %q is not MQTT or MQIsdp [MQTT-3.1.2-1]", name)
	}
	if !supportedProtocol(p.ProtocolName, p.Version) {
		return Errorf(UnsupportedProtocolVersion, "protocol %s level %d is not supported [MQTT-3.1.2-2]", p.ProtocolName, level)
	}
	v5 := p.Version == V5

	flags, err := r.readByte("connect flags")
	if err != nil {
		return err
	}
	if flags&0x01 != 0 {
		return Errorf(MalformedPacket, "reserved connect flag is set [MQTT-3.1.2-3]")
	}
	p.CleanStart = flags&0x02 != 0
	p.WillFlag = flags&0x04 != 0
	p.WillQoS = flags >> 3 & 0x03
	p.WillRetain = flags&0x20 != 0
	p.HasPassword = flags&0x40 != 0
	p.HasUsername = flags&0x80 != 0
	if p.WillQoS == 3 {
		return Errorf(MalformedPacket, "will QoS 3 [MQTT-3.1.2-12]")
	}
	if !p.WillFlag && p.WillQoS != 0 {
		return Errorf(MalformedPacket, "will QoS %d without the will flag [MQTT-3.1.2-11]", p.WillQoS)
	}
	if !p.WillFlag && p.WillRetain {
		return Errorf(MalformedPacket, "will retain without the will flag [MQTT-3.1.2-13]")
	}
	// MQTT 5 allows a password without a user name (3.1.2.9); 3.1.1 does not.
	if !v5 && p.HasPassword && !p.HasUsername {
		return Errorf(ProtocolError, "password flag without user name flag [MQTT-3.1.2-22]")
	}
	if p.KeepAlive, err = r.readUint16("keep alive"); err != nil {
		return err
	}
	if v5 {
		if err := p.Properties.decode(&r, inConnect); err != nil {
			return err
		}
	}

	// Whether a client identifier is acceptable (empty, too long) is the
	// broker's decision, answered with a CONNACK: the codec only checks it
	// is a valid string.
	if p.ClientID, err = r.readString("client identifier"); err != nil {
		return err
	}
	if p.WillFlag {
		if v5 {
			if err := p.WillProperties.decode(&r, inWill); err != nil {
				return err
			}
		}
		topic, err := r.readBytes("will topic")
		if err != nil {
			return err
		}
		if err := checkTopicName("will topic", topic, false); err != nil {
			return err
		}
		p.WillTopic = string(topic)
		if p.WillPayload, err = r.readBinary("will payload", nil); err != nil {
			return err
		}
	}
	if p.HasUsername {
		if p.Username, err = r.readString("user name"); err != nil {
			return err
		}
	}
	if p.HasPassword {
		if p.Password, err = r.readBinary("password", nil); err != nil {
			return err
		}
	}
	if r.left() != 0 {
		return Errorf(MalformedPacket, "%d bytes after the CONNECT payload", r.left())
	}
	return nil
}

// checkTopicName validates a Topic Name: a UTF-8 string of at least one
// character [MQTT-4.7.3-1] without wildcards [MQTT-3.3.2-2]. allowEmpty
// admits the empty name of a v5 PUBLISH that uses a Topic Alias.
func checkTopicName(field string, topic []byte, allowEmpty bool) error {
	if len(topic) == 0 {
		if allowEmpty {
			return nil
		}
		return Errorf(TopicNameInvalid, "%s is empty [MQTT-4.7.3-1]", field)
	}
	if f := scanText(topic, true); f != textOK {
		return textError(field, f)
	}
	return nil
}

// Encode appends the CONNECT to dst. It writes the protocol level in
// p.Version, or v when p.Version is zero, and the protocol name in
// p.ProtocolName, or the one that level implies when it is empty.
// Properties are written for level 5 only.
func (p *Connect) Encode(dst []byte, v Version) ([]byte, error) {
	level := p.Version
	if level == 0 {
		level = v
	}
	name := p.ProtocolName
	if name == "" {
		name = ProtocolMQTT
		if level == V31 {
			name = ProtocolMQIsdp
		}
	}
	if !supportedProtocol(name, level) {
		return dst, Errorf(UnsupportedProtocolVersion, "encode CONNECT: protocol %q level %d is not supported", name, byte(level))
	}
	v5 := level == V5
	if p.Bridge && v5 {
		return dst, Errorf(UnsupportedProtocolVersion, "encode CONNECT: MQTT 5 has no bridge bit; bridges use the No Local and Retain As Published subscription options")
	}
	if p.WillQoS > 2 {
		return dst, Errorf(MalformedPacket, "encode CONNECT: will QoS %d", p.WillQoS)
	}
	if !p.WillFlag && (p.WillQoS != 0 || p.WillRetain) {
		return dst, Errorf(MalformedPacket, "encode CONNECT: will QoS or retain without a will")
	}
	if p.WillFlag && p.WillTopic == "" {
		return dst, Errorf(TopicNameInvalid, "encode CONNECT: empty will topic")
	}
	if !v5 && p.HasPassword && !p.HasUsername {
		return dst, Errorf(ProtocolError, "encode CONNECT: MQTT %s needs a user name to send a password", level)
	}

	var flags byte
	if p.CleanStart {
		flags |= 0x02
	}
	if p.WillFlag {
		flags |= 0x04 | p.WillQoS<<3
		if p.WillRetain {
			flags |= 0x20
		}
	}
	if p.HasPassword {
		flags |= 0x40
	}
	if p.HasUsername {
		flags |= 0x80
	}

	n := 2 + len(name) + 1 + 1 + 2 + 2 + len(p.ClientID)
	if err := checkFieldLen(CONNECT, "client identifier", len(p.ClientID)); err != nil {
		return dst, err
	}
	var propLen, willPropLen int
	if v5 {
		var err error
		if propLen, err = p.Properties.size(inConnect); err != nil {
			return dst, err
		}
		n += vbiLen(propLen) + propLen
	}
	if p.WillFlag {
		if v5 {
			var err error
			if willPropLen, err = p.WillProperties.size(inWill); err != nil {
				return dst, err
			}
			n += vbiLen(willPropLen) + willPropLen
		}
		if err := checkFieldLen(CONNECT, "will topic", len(p.WillTopic)); err != nil {
			return dst, err
		}
		if err := checkFieldLen(CONNECT, "will payload", len(p.WillPayload)); err != nil {
			return dst, err
		}
		n += 2 + len(p.WillTopic) + 2 + len(p.WillPayload)
	}
	if p.HasUsername {
		if err := checkFieldLen(CONNECT, "user name", len(p.Username)); err != nil {
			return dst, err
		}
		n += 2 + len(p.Username)
	}
	if p.HasPassword {
		if err := checkFieldLen(CONNECT, "password", len(p.Password)); err != nil {
			return dst, err
		}
		n += 2 + len(p.Password)
	}
	if err := checkRemaining(CONNECT, n); err != nil {
		return dst, err
	}

	dst = appendHeader(dst, byte(CONNECT)<<4, n)
	dst = appendString(dst, name)
	wireLevel := byte(level)
	if p.Bridge {
		wireLevel |= bridgeBit
	}
	dst = append(dst, wireLevel, flags)
	dst = appendUint16(dst, p.KeepAlive)
	if v5 {
		dst = p.Properties.appendProperties(dst, propLen)
	}
	dst = appendString(dst, p.ClientID)
	if p.WillFlag {
		if v5 {
			dst = p.WillProperties.appendProperties(dst, willPropLen)
		}
		dst = appendString(dst, p.WillTopic)
		dst = appendBinary(dst, p.WillPayload)
	}
	if p.HasUsername {
		dst = appendString(dst, p.Username)
	}
	if p.HasPassword {
		dst = appendBinary(dst, p.Password)
	}
	return dst, nil
}
