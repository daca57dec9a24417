package packet

// PacketType returns the type in p.Type: PUBACK, PUBREC, PUBREL or PUBCOMP.
func (p *Ack) PacketType() Type { return p.Type }

// ackReasons returns the reason codes packet type t may carry.
func ackReasons(t Type) *reasonSet {
	if t == PUBACK || t == PUBREC {
		return &pubackReasons
	}
	return &pubrelReasons
}

// Decode parses the body of a PUBACK, PUBREC, PUBREL or PUBCOMP and sets
// p.Type from fh. In v5 a missing reason code means Success and a missing
// Property Length means no properties (section 3.4.2.1).
func (p *Ack) Decode(fh FixedHeader, body []byte, v Version) error {
	p.Type, p.PacketID, p.ReasonCode = fh.Type, 0, Success
	p.Properties.reset()
	switch fh.Type {
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
	default:
		return Errorf(MalformedPacket, "decoding a %s as an acknowledgement", fh.Type)
	}
	if err := checkVersion(v); err != nil {
		return err
	}
	if err := checkBody(fh, body, fh.Type); err != nil {
		return err
	}
	if len(body) < 2 || (v < V5 && len(body) != 2) {
		return Errorf(MalformedPacket, "%s body is %d bytes", fh.Type, len(body))
	}
	p.PacketID = uint16(body[0])<<8 | uint16(body[1])
	if len(body) > 2 {
		p.ReasonCode = ReasonCode(body[2])
		if !ackReasons(fh.Type).has(p.ReasonCode) {
			return errReason(fh.Type, p.ReasonCode)
		}
	}
	if len(body) > 3 {
		r := reader{b: body, off: 3}
		if err := p.Properties.decode(&r, inAck); err != nil {
			return err
		}
		if r.left() != 0 {
			return Errorf(MalformedPacket, "%d bytes after the %s properties", r.left(), fh.Type)
		}
	}
	// Acknowledgements echo the identifier of a packet that cannot have
	// used 0 [MQTT-2.2.1-3], so 0 acknowledges nothing.
	if p.PacketID == 0 {
		return Errorf(ProtocolError, "%s with packet identifier 0 [MQTT-2.2.1-3]", fh.Type)
	}
	return nil
}

// Encode appends the acknowledgement to dst without allocating when dst
// has room. In v5 it leaves out what the receiver can infer: Success with
// no properties is just the Packet Identifier, and a reason code without
// properties omits the Property Length.
func (p *Ack) Encode(dst []byte, v Version) ([]byte, error) {
	var first byte
	switch p.Type {
	case PUBACK, PUBREC, PUBCOMP:
		first = byte(p.Type) << 4
	case PUBREL:
		first = byte(PUBREL)<<4 | 0x02
	default:
		return dst, Errorf(MalformedPacket, "encode: %s is not an acknowledgement", p.Type)
	}
	if err := checkVersion(v); err != nil {
		return dst, err
	}
	if p.PacketID == 0 {
		return dst, Errorf(ProtocolError, "encode %s: packet identifier 0", p.Type)
	}
	if v < V5 {
		return append(dst, first, 2, byte(p.PacketID>>8), byte(p.PacketID)), nil
	}
	if !ackReasons(p.Type).has(p.ReasonCode) {
		return dst, errReason(p.Type, p.ReasonCode)
	}
	propLen, err := p.Properties.size(inAck)
	if err != nil {
		return dst, err
	}
	switch {
	case propLen == 0 && p.ReasonCode == Success:
		return append(dst, first, 2, byte(p.PacketID>>8), byte(p.PacketID)), nil
	case propLen == 0:
		return append(dst, first, 3, byte(p.PacketID>>8), byte(p.PacketID), byte(p.ReasonCode)), nil
	}
	n := 3 + vbiLen(propLen) + propLen
	if err := checkRemaining(p.Type, n); err != nil {
		return dst, err
	}
	dst = appendHeader(dst, first, n)
	dst = append(dst, byte(p.PacketID>>8), byte(p.PacketID), byte(p.ReasonCode))
	return p.Properties.appendProperties(dst, propLen), nil
}
