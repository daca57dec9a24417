package packet

// PacketType returns UNSUBSCRIBE.
func (*Unsubscribe) PacketType() Type { return UNSUBSCRIBE }

// Decode parses the body of an UNSUBSCRIBE, reusing the space of p.Filters.
func (p *Unsubscribe) Decode(fh FixedHeader, body []byte, v Version) error {
	p.PacketID = 0
	p.Filters = p.Filters[:0]
	p.Properties.reset()
	if err := checkVersion(v); err != nil {
		return err
	}
	if err := checkBody(fh, body, UNSUBSCRIBE); err != nil {
		return err
	}
	r := reader{b: body}
	id, err := r.readUint16("packet identifier")
	if err != nil {
		return err
	}
	p.PacketID = id
	if v == V5 {
		if err := p.Properties.decode(&r, inUnsubscribe); err != nil {
			return err
		}
	}
	for r.left() > 0 {
		f, err := r.readString("topic filter")
		if err != nil {
			return err
		}
		p.Filters = append(p.Filters, f)
	}
	// v5 [MQTT-3.10.3-2], 3.1.1 [MQTT-3.10.3-2].
	if len(p.Filters) == 0 {
		return Errorf(ProtocolError, "UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]")
	}
	if p.PacketID == 0 {
		return Errorf(ProtocolError, "UNSUBSCRIBE with packet identifier 0 [MQTT-2.2.1-3]")
	}
	return nil
}

// Encode appends the UNSUBSCRIBE to dst. For v3 the properties are left out.
func (p *Unsubscribe) Encode(dst []byte, v Version) ([]byte, error) {
	if err := checkVersion(v); err != nil {
		return dst, err
	}
	if len(p.Filters) == 0 {
		return dst, Errorf(ProtocolError, "encode UNSUBSCRIBE: no topic filters [MQTT-3.10.3-2]")
	}
	if p.PacketID == 0 {
		return dst, Errorf(ProtocolError, "encode UNSUBSCRIBE: packet identifier 0 [MQTT-2.2.1-3]")
	}
	n := 2
	for _, f := range p.Filters {
		if err := checkFieldLen(UNSUBSCRIBE, "topic filter", len(f)); err != nil {
			return dst, err
		}
		n += 2 + len(f)
	}
	var propLen int
	if v == V5 {
		var err error
		if propLen, err = p.Properties.size(inUnsubscribe); err != nil {
			return dst, err
		}
		n += vbiLen(propLen) + propLen
	}
	if err := checkRemaining(UNSUBSCRIBE, n); err != nil {
		return dst, err
	}
	dst = appendHeader(dst, byte(UNSUBSCRIBE)<<4|0x02, n)
	dst = appendUint16(dst, p.PacketID)
	if v == V5 {
		dst = p.Properties.appendProperties(dst, propLen)
	}
	for _, f := range p.Filters {
		dst = appendString(dst, f)
	}
	return dst, nil
}

// PacketType returns UNSUBACK.
func (*Unsuback) PacketType() Type { return UNSUBACK }

// Decode parses the body of an UNSUBACK, reusing the space of
// p.ReasonCodes. A v3 UNSUBACK is only a Packet Identifier, so ReasonCodes
// comes back empty.
func (p *Unsuback) Decode(fh FixedHeader, body []byte, v Version) error {
	p.PacketID = 0
	p.ReasonCodes = p.ReasonCodes[:0]
	p.Properties.reset()
	if err := checkVersion(v); err != nil {
		return err
	}
	if err := checkBody(fh, body, UNSUBACK); err != nil {
		return err
	}
	if v < V5 && len(body) != 2 {
		return Errorf(MalformedPacket, "UNSUBACK body is %d bytes, must be 2", len(body))
	}
	r := reader{b: body}
	id, err := r.readUint16("packet identifier")
	if err != nil {
		return err
	}
	p.PacketID = id
	if v == V5 {
		if err := p.Properties.decode(&r, inUnsuback); err != nil {
			return err
		}
		for _, c := range body[r.off:] {
			if !unsubackReasons.has(ReasonCode(c)) {
				return errReason(UNSUBACK, ReasonCode(c))
			}
			p.ReasonCodes = append(p.ReasonCodes, ReasonCode(c))
		}
		if len(p.ReasonCodes) == 0 {
			return Errorf(ProtocolError, "UNSUBACK without reason codes")
		}
	}
	if p.PacketID == 0 {
		return Errorf(ProtocolError, "UNSUBACK with packet identifier 0 [MQTT-2.2.1-3]")
	}
	return nil
}

// Encode appends the UNSUBACK to dst. For v3 only the Packet Identifier is
// sent.
func (p *Unsuback) Encode(dst []byte, v Version) ([]byte, error) {
	if err := checkVersion(v); err != nil {
		return dst, err
	}
	if p.PacketID == 0 {
		return dst, Errorf(ProtocolError, "encode UNSUBACK: packet identifier 0")
	}
	if v < V5 {
		return append(dst, byte(UNSUBACK)<<4, 2, byte(p.PacketID>>8), byte(p.PacketID)), nil
	}
	if len(p.ReasonCodes) == 0 {
		return dst, Errorf(ProtocolError, "encode UNSUBACK: no reason codes")
	}
	for _, c := range p.ReasonCodes {
		if !unsubackReasons.has(c) {
			return dst, errReason(UNSUBACK, c)
		}
	}
	propLen, err := p.Properties.size(inUnsuback)
	if err != nil {
		return dst, err
	}
	n := 2 + vbiLen(propLen) + propLen + len(p.ReasonCodes)
	if err := checkRemaining(UNSUBACK, n); err != nil {
		return dst, err
	}
	dst = appendHeader(dst, byte(UNSUBACK)<<4, n)
	dst = appendUint16(dst, p.PacketID)
	dst = p.Properties.appendProperties(dst, propLen)
	for _, c := range p.ReasonCodes {
		dst = append(dst, byte(c))
	}
	return dst, nil
}
