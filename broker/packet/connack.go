package packet

// PacketType returns CONNACK.
func (*Connack) PacketType() Type { return CONNACK }

// v3ConnackReasons maps a 3.1/3.1.1 CONNACK return code to the v5 reason
// code that V3ConnackCode maps back to it.
var v3ConnackReasons = [...]ReasonCode{
	0: Success,
	1: UnsupportedProtocolVersion,
	2: ClientIdentifierNotValid,
	3: ServerUnavailable,
	4: BadUsernameOrPassword,
	5: NotAuthorized,
}

// Decode parses the body of a CONNACK. A v3 return code becomes the v5
// reason code with the same meaning (see V3ConnackCode).
func (p *Connack) Decode(fh FixedHeader, body []byte, v Version) error {
	p.SessionPresent, p.ReasonCode = false, Success
	p.Properties.reset()
	if err := checkVersion(v); err != nil {
		return err
	}
	if err := checkBody(fh, body, CONNACK); err != nil {
		return err
	}
	if v < V5 && len(body) != 2 {
		return Errorf(MalformedPacket, "CONNACK body is %d bytes, must be 2", len(body))
	}
	r := reader{b: body}
	flags, err := r.readByte("connect acknowledge flags")
	if err != nil {
		return err
	}
	code, err := r.readByte("connect reason code")
	if err != nil {
		return err
	}
	// MQTT 3.1 has no Session Present flag: the whole byte is reserved and
	// unused, so it is ignored rather than judged.
	if v != V31 {
		if flags&0xFE != 0 {
			return Errorf(MalformedPacket, "CONNACK reserved flags 0x%02X are set [MQTT-3.2.2-1]", flags&0xFE)
		}
		p.SessionPresent = flags&0x01 != 0
	}
	if v < V5 {
		if int(code) >= len(v3ConnackReasons) {
			return Errorf(ProtocolError, "CONNACK return code %d is reserved", code)
		}
		p.ReasonCode = v3ConnackReasons[code]
	} else {
		p.ReasonCode = ReasonCode(code)
		if !connackReasons.has(p.ReasonCode) {
			return errReason(CONNACK, p.ReasonCode)
		}
		if err := p.Properties.decode(&r, inConnack); err != nil {
			return err
		}
		if r.left() != 0 {
			return Errorf(MalformedPacket, "%d bytes after the CONNACK properties", r.left())
		}
	}
	// v5 [MQTT-3.2.2-6], 3.1.1 [MQTT-3.2.2-4].
	if p.SessionPresent && p.ReasonCode != Success {
		return Errorf(ProtocolError, "CONNACK refuses the connection but sets Session Present [MQTT-3.2.2-6]")
	}
	return nil
}

// Encode appends the CONNACK to dst. For v3 the reason code becomes a
// return code with V3ConnackCode and the properties are left out; MQTT 3.1
// has no Session Present flag.
func (p *Connack) Encode(dst []byte, v Version) ([]byte, error) {
	if err := checkVersion(v); err != nil {
		return dst, err
	}
	if p.SessionPresent && p.ReasonCode != Success {
		return dst, Errorf(ProtocolError, "encode CONNACK: Session Present with reason code %s [MQTT-3.2.2-6]", p.ReasonCode)
	}
	var flags byte
	if p.SessionPresent && v != V31 {
		flags = 0x01
	}
	if v < V5 {
		return append(dst, byte(CONNACK)<<4, 2, flags, V3ConnackCode(p.ReasonCode)), nil
	}
	if !connackReasons.has(p.ReasonCode) {
		return dst, errReason(CONNACK, p.ReasonCode)
	}
	propLen, err := p.Properties.size(inConnack)
	if err != nil {
		return dst, err
	}
	n := 2 + vbiLen(propLen) + propLen
	if err := checkRemaining(CONNACK, n); err != nil {
		return dst, err
	}
	dst = appendHeader(dst, byte(CONNACK)<<4, n)
	dst = append(dst, flags, byte(p.ReasonCode))
	return p.Properties.appendProperties(dst, propLen), nil
}
