package packet

import "slices"

// PacketType returns PUBLISH.
func (*Publish) PacketType() Type { return PUBLISH }

// Decode parses the body of a PUBLISH. Topic and Payload alias body; the
// properties' slices reuse the space of the previous decode into p.
//
// The codec checks what the packet alone can tell: the Topic Name has no
// wildcards and is not empty (v5 allows empty with a Topic Alias), QoS>0
// carries a non-zero Packet Identifier, and the properties are valid for
// PUBLISH. Whether a Topic Alias is in range, or whether a client may send
// a Subscription Identifier [MQTT-3.3.4-6], depends on the connection and
// is the caller's to check.
func (p *Publish) Decode(fh FixedHeader, body []byte, v Version) error {
	p.Dup = fh.Flags&0x08 != 0
	p.QoS = fh.Flags >> 1 & 0x03
	p.Retain = fh.Flags&0x01 != 0
	p.Topic, p.PacketID, p.Payload = nil, 0, nil
	if fh.Type != PUBLISH || fh.Remaining != len(body) {
		p.Properties.reset()
		return checkBody(fh, body, PUBLISH)
	}
	if v < V31 || v > V5 {
		p.Properties.reset()
		return checkVersion(v)
	}
	if p.QoS == 3 {
		p.Properties.reset()
		return Errorf(MalformedPacket, "PUBLISH with QoS 3 [MQTT-3.3.1-4]")
	}

	// The topic is read by hand: this is the hottest path in the broker.
	if len(body) < 2 {
		p.Properties.reset()
		return errTruncated("topic name")
	}
	end := 2 + (int(body[0])<<8 | int(body[1]))
	if end > len(body) {
		p.Properties.reset()
		return Errorf(MalformedPacket, "topic name: length %d exceeds the %d bytes left in the packet", end-2, len(body)-2)
	}
	p.Topic = body[2:end:end]
	r := reader{b: body, off: end}
	if p.QoS > 0 {
		if r.left() < 2 {
			p.Properties.reset()
			return errTruncated("packet identifier")
		}
		p.PacketID = uint16(body[end])<<8 | uint16(body[end+1])
		r.off += 2
	}
	if v == V5 {
		if err := p.Properties.decode(&r, inPublish); err != nil {
			return err
		}
	} else {
		p.Properties.reset()
	}
	p.Payload = body[r.off:len(body):len(body)]

	// The topic's text is checked once the layout has parsed, the rules
	// about values after it.
	if f := scanText(p.Topic, true); f != textOK {
		return textError("topic name", f)
	}
	if len(p.Topic) == 0 {
		if v < V5 {
			return Errorf(TopicNameInvalid, "empty topic name [MQTT-4.7.3-1]")
		}
		if !p.Properties.HasTopicAlias {
			return Errorf(ProtocolError, "empty topic name without a Topic Alias (MQTT 5.0 section 3.3.2.1)")
		}
	}
	if p.QoS > 0 && p.PacketID == 0 {
		return Errorf(ProtocolError, "PUBLISH QoS %d with packet identifier 0 [MQTT-2.2.1-3]", p.QoS)
	}
	if p.QoS == 0 && p.Dup {
		return Errorf(ProtocolError, "PUBLISH QoS 0 with DUP set [MQTT-3.3.1-2]")
	}
	return nil
}

// Encode appends the PUBLISH to dst without allocating when dst has room.
// For v3 the properties are left out. It checks the structure (QoS, Packet
// Identifier, lengths, properties) but not the text of the topic, which a
// broker has already checked when it decoded it.
func (p *Publish) Encode(dst []byte, v Version) ([]byte, error) {
	if err := checkVersion(v); err != nil {
		return dst, err
	}
	if p.QoS > 2 {
		return dst, Errorf(MalformedPacket, "encode PUBLISH: QoS %d [MQTT-3.3.1-4]", p.QoS)
	}
	if p.QoS == 0 && p.Dup {
		return dst, Errorf(ProtocolError, "encode PUBLISH: DUP with QoS 0 [MQTT-3.3.1-2]")
	}
	if len(p.Topic) > maxFieldLen {
		return dst, checkFieldLen(PUBLISH, "topic name", len(p.Topic))
	}
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		if p.PacketID == 0 {
			return dst, Errorf(ProtocolError, "encode PUBLISH: QoS %d with packet identifier 0 [MQTT-2.2.1-3]", p.QoS)
		}
		n += 2
	}
	var propLen int
	if v == V5 {
		var err error
		if propLen, err = p.Properties.size(inPublish); err != nil {
			return dst, err
		}
		n += vbiLen(propLen) + propLen
		if len(p.Topic) == 0 && !p.Properties.HasTopicAlias {
			return dst, Errorf(ProtocolError, "encode PUBLISH: empty topic name without a Topic Alias")
		}
	} else if len(p.Topic) == 0 {
		return dst, Errorf(TopicNameInvalid, "encode PUBLISH: empty topic name")
	}
	if n > MaxRemainingLength {
		return dst, checkRemaining(PUBLISH, n)
	}

	first := byte(PUBLISH)<<4 | p.QoS<<1
	if p.Dup {
		first |= 0x08
	}
	if p.Retain {
		first |= 0x01
	}
	dst = appendHeader(dst, first, n)
	dst = appendUint16(dst, uint16(len(p.Topic)))
	dst = append(dst, p.Topic...)
	if p.QoS > 0 {
		dst = appendUint16(dst, p.PacketID)
	}
	if v == V5 {
		dst = p.Properties.appendProperties(dst, propLen)
	}
	return append(dst, p.Payload...), nil
}

// Clone returns a deep copy of p that shares no memory with p or with the
// buffer p was decoded from, for a message that outlives the read buffer.
func (p *Publish) Clone() Publish {
	c := *p
	c.Topic = slices.Clone(p.Topic)
	c.Payload = slices.Clone(p.Payload)
	c.Properties = p.Properties.Clone()
	return c
}
