package packet

// PacketType returns PINGREQ.
func (*Pingreq) PacketType() Type { return PINGREQ }

// Decode checks that the PINGREQ has no body.
func (*Pingreq) Decode(fh FixedHeader, body []byte, v Version) error {
	return decodeEmpty(fh, body, v, PINGREQ)
}

// Encode appends the two bytes of a PINGREQ to dst.
func (*Pingreq) Encode(dst []byte, v Version) ([]byte, error) {
	if err := checkVersion(v); err != nil {
		return dst, err
	}
	return append(dst, byte(PINGREQ)<<4, 0), nil
}

// PacketType returns PINGRESP.
func (*Pingresp) PacketType() Type { return PINGRESP }

// Decode checks that the PINGRESP has no body.
func (*Pingresp) Decode(fh FixedHeader, body []byte, v Version) error {
	return decodeEmpty(fh, body, v, PINGRESP)
}

// Encode appends the two bytes of a PINGRESP to dst.
func (*Pingresp) Encode(dst []byte, v Version) ([]byte, error) {
	if err := checkVersion(v); err != nil {
		return dst, err
	}
	return append(dst, byte(PINGRESP)<<4, 0), nil
}

// decodeEmpty checks a packet that has no variable header or payload.
func decodeEmpty(fh FixedHeader, body []byte, v Version, t Type) error {
	if err := checkVersion(v); err != nil {
		return err
	}
	if err := checkBody(fh, body, t); err != nil {
		return err
	}
	if len(body) != 0 {
		return Errorf(MalformedPacket, "%s has a %d byte body, must have none", t, len(body))
	}
	return nil
}

// PacketType returns DISCONNECT.
func (*Disconnect) PacketType() Type { return DISCONNECT }

// Decode parses the body of a DISCONNECT: empty in v3; in v5 a missing
// reason code means Normal disconnection and a missing Property Length no
// properties (section 3.14.2.2.1).
func (p *Disconnect) Decode(fh FixedHeader, body []byte, v Version) error {
	p.ReasonCode = Success
	p.Properties.reset()
	if err := checkVersion(v); err != nil {
		return err
	}
	if err := checkBody(fh, body, DISCONNECT); err != nil {
		return err
	}
	if v < V5 {
		if len(body) != 0 {
			return Errorf(MalformedPacket, "MQTT %s DISCONNECT has a %d byte body, must have none", v, len(body))
		}
		return nil
	}
	return decodeReasonAndProperties(body, DISCONNECT, &disconnectReasons, inDisconnect, &p.ReasonCode, &p.Properties)
}

// Encode appends the DISCONNECT to dst. v3 DISCONNECT has no body; in v5
// Normal disconnection without properties has none either.
func (p *Disconnect) Encode(dst []byte, v Version) ([]byte, error) {
	if err := checkVersion(v); err != nil {
		return dst, err
	}
	if v < V5 {
		return append(dst, byte(DISCONNECT)<<4, 0), nil
	}
	return encodeReasonAndProperties(dst, DISCONNECT, &disconnectReasons, inDisconnect, p.ReasonCode, &p.Properties)
}

// PacketType returns AUTH.
func (*Auth) PacketType() Type { return AUTH }

// Decode parses the body of an AUTH, which exists in MQTT 5 only.
func (p *Auth) Decode(fh FixedHeader, body []byte, v Version) error {
	p.ReasonCode = Success
	p.Properties.reset()
	if err := checkVersion(v); err != nil {
		return err
	}
	if v < V5 {
		// Packet type 15 is reserved before MQTT 5.
		return Errorf(MalformedPacket, "AUTH packet in MQTT %s", v)
	}
	if err := checkBody(fh, body, AUTH); err != nil {
		return err
	}
	if err := decodeReasonAndProperties(body, AUTH, &authReasons, inAuth, &p.ReasonCode, &p.Properties); err != nil {
		return err
	}
	// An empty body is the short form of Success (section 3.15.2.1); any
	// other AUTH must name its method (section 3.15.2.2.2).
	if len(body) > 0 && p.Properties.AuthMethod == "" {
		return Errorf(ProtocolError, "AUTH without Authentication Method (MQTT 5.0 section 3.15.2.2.2)")
	}
	return nil
}

// Encode appends the AUTH to dst; v must be V5.
func (p *Auth) Encode(dst []byte, v Version) ([]byte, error) {
	if v != V5 {
		return dst, Errorf(ProtocolError, "encode AUTH: MQTT %s has no AUTH packet", v)
	}
	if p.Properties.AuthMethod == "" && (p.ReasonCode != Success || !p.Properties.empty(inAuth)) {
		return dst, Errorf(ProtocolError, "encode AUTH: no Authentication Method")
	}
	return encodeReasonAndProperties(dst, AUTH, &authReasons, inAuth, p.ReasonCode, &p.Properties)
}

// empty reports whether pr encodes to no properties in ctx.
func (pr *Properties) empty(ctx propContext) bool {
	n, err := pr.size(ctx)
	return n == 0 && err == nil
}

// decodeReasonAndProperties parses the v5 body shared by DISCONNECT and
// AUTH: an optional reason code, then optional properties.
func decodeReasonAndProperties(body []byte, t Type, allowed *reasonSet, ctx propContext, code *ReasonCode, pr *Properties) error {
	if len(body) == 0 {
		return nil
	}
	*code = ReasonCode(body[0])
	if !allowed.has(*code) {
		return errReason(t, *code)
	}
	if len(body) == 1 {
		return nil
	}
	r := reader{b: body, off: 1}
	if err := pr.decode(&r, ctx); err != nil {
		return err
	}
	if r.left() != 0 {
		return Errorf(MalformedPacket, "%d bytes after the %s properties", r.left(), t)
	}
	return nil
}

// encodeReasonAndProperties appends a v5 DISCONNECT or AUTH in its
// shortest form.
func encodeReasonAndProperties(dst []byte, t Type, allowed *reasonSet, ctx propContext, code ReasonCode, pr *Properties) ([]byte, error) {
	if !allowed.has(code) {
		return dst, errReason(t, code)
	}
	propLen, err := pr.size(ctx)
	if err != nil {
		return dst, err
	}
	first := byte(t) << 4
	switch {
	case propLen == 0 && code == Success:
		return append(dst, first, 0), nil
	case propLen == 0:
		return append(dst, first, 1, byte(code)), nil
	}
	n := 1 + vbiLen(propLen) + propLen
	if err := checkRemaining(t, n); err != nil {
		return dst, err
	}
	dst = appendHeader(dst, first, n)
	dst = append(dst, byte(code))
	return pr.appendProperties(dst, propLen), nil
}
