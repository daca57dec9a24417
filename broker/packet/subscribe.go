package packet

import "strings"

// sharePrefix starts the filter of a shared subscription (MQTT 5.0 section 4.8.2).
const sharePrefix = "$share/"

// PacketType returns SUBSCRIBE.
func (*Subscribe) PacketType() Type { return SUBSCRIBE }

// Decode parses the body of a SUBSCRIBE, reusing the space of
// p.Subscriptions. Filters are checked to be valid strings only: whether a
// filter is acceptable is answered per filter in SUBACK, so it is the
// broker's to judge.
func (p *Subscribe) Decode(fh FixedHeader, body []byte, v Version) error {
	p.PacketID = 0
	p.Subscriptions = p.Subscriptions[:0]
	p.Properties.reset()
	if err := checkVersion(v); err != nil {
		return err
	}
	if err := checkBody(fh, body, SUBSCRIBE); err != nil {
		return err
	}
	r := reader{b: body}
	id, err := r.readUint16("packet identifier")
	if err != nil {
		return err
	}
	p.PacketID = id
	if v == V5 {
		if err := p.Properties.decode(&r, inSubscribe); err != nil {
			return err
		}
	}
	for r.left() > 0 {
		var s Subscription
		if s.Filter, err = r.readString("topic filter"); err != nil {
			return err
		}
		opts, err := r.readByte("subscription options")
		if err != nil {
			return err
		}
		s.QoS = opts & 0x03
		if v < V5 {
			// 3.1.1: "malformed ... if any of Reserved bits in the payload
			// are non-zero, or QoS is not 0,1 or 2" [MQTT-3-8.3-4].
			if opts&0xFC != 0 || s.QoS == 3 {
				return Errorf(MalformedPacket, "requested QoS byte 0x%02X [MQTT-3-8.3-4]", opts)
			}
		} else {
			if opts&0xC0 != 0 {
				return Errorf(MalformedPacket, "subscription options 0x%02X set reserved bits [MQTT-3.8.3-5]", opts)
			}
			s.NoLocal = opts&0x04 != 0
			s.RetainAsPublished = opts&0x08 != 0
			s.RetainHandling = opts >> 4 & 0x03
			if s.QoS == 3 {
				return Errorf(ProtocolError, "subscription Maximum QoS 3 (MQTT 5.0 section 3.8.3.1)")
			}
			if s.RetainHandling == 3 {
				return Errorf(ProtocolError, "Retain Handling 3 (MQTT 5.0 section 3.8.3.1)")
			}
			if s.NoLocal && strings.HasPrefix(s.Filter, sharePrefix) {
				return Errorf(ProtocolError, "No Local on shared subscription %q [MQTT-3.8.3-4]", s.Filter)
			}
		}
		p.Subscriptions = append(p.Subscriptions, s)
	}
	// v5 [MQTT-3.8.3-2], 3.1.1 [MQTT-3.8.3-3].
	if len(p.Subscriptions) == 0 {
		return Errorf(ProtocolError, "SUBSCRIBE without topic filters [MQTT-3.8.3-2]")
	}
	if p.PacketID == 0 {
		return Errorf(ProtocolError, "SUBSCRIBE with packet identifier 0 [MQTT-2.2.1-3]")
	}
	return nil
}

// Encode appends the SUBSCRIBE to dst. For v3 only each filter's QoS is
// sent; the v5 options and properties are left out.
func (p *Subscribe) Encode(dst []byte, v Version) ([]byte, error) {
	if err := checkVersion(v); err != nil {
		return dst, err
	}
	if len(p.Subscriptions) == 0 {
		return dst, Errorf(ProtocolError, "encode SUBSCRIBE: no topic filters [MQTT-3.8.3-2]")
	}
	if p.PacketID == 0 {
		return dst, Errorf(ProtocolError, "encode SUBSCRIBE: packet identifier 0 [MQTT-2.2.1-3]")
	}
	n := 2
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		if err := checkFieldLen(SUBSCRIBE, "topic filter", len(s.Filter)); err != nil {
			return dst, err
		}
		if s.QoS > 2 {
			return dst, Errorf(ProtocolError, "encode SUBSCRIBE: QoS %d for %q", s.QoS, s.Filter)
		}
		if v == V5 {
			if s.RetainHandling > 2 {
				return dst, Errorf(ProtocolError, "encode SUBSCRIBE: Retain Handling %d for %q", s.RetainHandling, s.Filter)
			}
			if s.NoLocal && strings.HasPrefix(s.Filter, sharePrefix) {
				return dst, Errorf(ProtocolError, "encode SUBSCRIBE: No Local on shared subscription %q [MQTT-3.8.3-4]", s.Filter)
			}
		}
		n += 2 + len(s.Filter) + 1
	}
	var propLen int
	if v == V5 {
		var err error
		if propLen, err = p.Properties.size(inSubscribe); err != nil {
			return dst, err
		}
		n += vbiLen(propLen) + propLen
	}
	if err := checkRemaining(SUBSCRIBE, n); err != nil {
		return dst, err
	}
	dst = appendHeader(dst, byte(SUBSCRIBE)<<4|0x02, n)
	dst = appendUint16(dst, p.PacketID)
	if v == V5 {
		dst = p.Properties.appendProperties(dst, propLen)
	}
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		opts := s.QoS
		if v == V5 {
			opts |= s.RetainHandling << 4
			if s.NoLocal {
				opts |= 0x04
			}
			if s.RetainAsPublished {
				opts |= 0x08
			}
		}
		dst = append(appendString(dst, s.Filter), opts)
	}
	return dst, nil
}

// PacketType returns SUBACK.
func (*Suback) PacketType() Type { return SUBACK }

// Decode parses the body of a SUBACK, reusing the space of p.ReasonCodes.
// For v3 the codes are 0, 1, 2 or 0x80 (failure).
func (p *Suback) Decode(fh FixedHeader, body []byte, v Version) error {
	p.PacketID = 0
	p.ReasonCodes = p.ReasonCodes[:0]
	p.Properties.reset()
	if err := checkVersion(v); err != nil {
		return err
	}
	if err := checkBody(fh, body, SUBACK); err != nil {
		return err
	}
	r := reader{b: body}
	id, err := r.readUint16("packet identifier")
	if err != nil {
		return err
	}
	p.PacketID = id
	if v == V5 {
		if err := p.Properties.decode(&r, inSuback); err != nil {
			return err
		}
	}
	for _, c := range body[r.off:] {
		code := ReasonCode(c)
		if v < V5 {
			if c > 2 && code != UnspecifiedError {
				return Errorf(ProtocolError, "SUBACK return code 0x%02X is not 0, 1, 2 or 0x80", c)
			}
		} else if !subackReasons.has(code) {
			return errReason(SUBACK, code)
		}
		p.ReasonCodes = append(p.ReasonCodes, code)
	}
	if len(p.ReasonCodes) == 0 {
		return Errorf(ProtocolError, "SUBACK without reason codes")
	}
	if p.PacketID == 0 {
		return Errorf(ProtocolError, "SUBACK with packet identifier 0 [MQTT-2.2.1-3]")
	}
	return nil
}

// Encode appends the SUBACK to dst. For v3 every failure code (0x80 and
// above) is sent as 0x80, the only failure 3.1.1 has, and the properties
// are left out.
func (p *Suback) Encode(dst []byte, v Version) ([]byte, error) {
	if err := checkVersion(v); err != nil {
		return dst, err
	}
	if len(p.ReasonCodes) == 0 {
		return dst, Errorf(ProtocolError, "encode SUBACK: no reason codes")
	}
	if p.PacketID == 0 {
		return dst, Errorf(ProtocolError, "encode SUBACK: packet identifier 0")
	}
	for _, c := range p.ReasonCodes {
		if v < V5 && c > GrantedQoS2 && !c.IsError() {
			return dst, Errorf(ProtocolError, "encode SUBACK: reason code 0x%02X has no MQTT %s equivalent", byte(c), v)
		}
		if v == V5 && !subackReasons.has(c) {
			return dst, errReason(SUBACK, c)
		}
	}
	n := 2 + len(p.ReasonCodes)
	var propLen int
	if v == V5 {
		var err error
		if propLen, err = p.Properties.size(inSuback); err != nil {
			return dst, err
		}
		n += vbiLen(propLen) + propLen
	}
	if err := checkRemaining(SUBACK, n); err != nil {
		return dst, err
	}
	dst = appendHeader(dst, byte(SUBACK)<<4, n)
	dst = appendUint16(dst, p.PacketID)
	if v == V5 {
		dst = p.Properties.appendProperties(dst, propLen)
	}
	for _, c := range p.ReasonCodes {
		if v < V5 && c.IsError() {
			c = UnspecifiedError
		}
		dst = append(dst, byte(c))
	}
	return dst, nil
}
