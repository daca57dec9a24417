package packet

// vbiStatus is the outcome of decoding a Variable Byte Integer.
type vbiStatus uint8

const (
	vbiOK         vbiStatus = iota
	vbiShort                // the input ends before the last byte of the integer
	vbiTooLong              // a fifth byte would be needed
	vbiNotMinimal           // more bytes than the value needs
)

// decodeVBI decodes the Variable Byte Integer at the start of b (MQTT 5.0
// section 1.5.5). n is the number of bytes it occupies when status is vbiOK.
func decodeVBI(b []byte) (value, n int, status vbiStatus) {
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, vbiShort
		}
		c := b[i]
		value |= int(c&0x7F) << (7 * i)
		if c < 0x80 {
			// A last byte of zero after a continuation byte adds nothing:
			// the sender used more bytes than the value needs [MQTT-1.5.5-1].
			if c == 0 && i > 0 {
				return 0, 0, vbiNotMinimal
			}
			return value, i + 1, vbiOK
		}
	}
	return 0, 0, vbiTooLong
}

// vbiError turns a failed decodeVBI into the error for the named field.
func vbiError(field string, status vbiStatus) error {
	switch status {
	case vbiShort:
		return errTruncated(field)
	case vbiTooLong:
		return Errorf(MalformedPacket, "%s: variable byte integer longer than 4 bytes", field)
	default:
		return Errorf(MalformedPacket, "%s: variable byte integer not in its shortest form [MQTT-1.5.5-1]", field)
	}
}

// vbiLen is the number of bytes appendVBI uses for n (0 <= n <= MaxRemainingLength).
func vbiLen(n int) int {
	switch {
	case n < 1<<7:
		return 1
	case n < 1<<14:
		return 2
	case n < 1<<21:
		return 3
	default:
		return 4
	}
}

// appendVBI appends n as a Variable Byte Integer in its shortest form.
// n must be in [0, MaxRemainingLength].
func appendVBI(dst []byte, n int) []byte {
	for n >= 0x80 {
		dst = append(dst, byte(n)|0x80)
		n >>= 7
	}
	return append(dst, byte(n))
}

// ReadFixedHeader parses the fixed header at the start of b. When b does not
// yet hold a complete fixed header it returns n == 0 and err == nil, so a
// connection can call it again after the next read. It checks what can be
// checked without the body: the packet type, the flags of the first byte
// and the encoding of the Remaining Length. It does not check that the body
// has arrived: the packet is complete when len(b) >= n+fh.Remaining.
func ReadFixedHeader(b []byte) (fh FixedHeader, n int, err error) {
	if len(b) < 2 {
		return FixedHeader{}, 0, nil
	}
	// Most packets are shorter than 128 bytes: one length byte.
	rem, m, status := int(b[1]), 1, vbiOK
	if b[1] >= 0x80 {
		rem, m, status = decodeVBI(b[1:])
	}
	switch status {
	case vbiOK:
	case vbiShort:
		return FixedHeader{}, 0, nil
	default:
		return FixedHeader{}, 0, vbiError("remaining length", status)
	}
	t, flags := Type(b[0]>>4), b[0]&0x0F
	if validFlags[t]&(1<<flags) == 0 {
		return FixedHeader{}, 0, flagsError(t, flags)
	}
	return FixedHeader{Type: t, Flags: flags, Remaining: rem}, 1 + m, nil
}

// validFlags holds, per packet type, a bit for each acceptable value of
// the first byte's low nibble [MQTT-2.1.3-1]. Type 0 is reserved and has
// none; PUBLISH takes any flags but QoS 3 [MQTT-3.3.1-4].
var validFlags = [16]uint16{
	Reserved:    0,
	CONNECT:     1 << 0,
	CONNACK:     1 << 0,
	PUBLISH:     0xFFFF &^ (1<<0x6 | 1<<0x7 | 1<<0xE | 1<<0xF),
	PUBACK:      1 << 0,
	PUBREC:      1 << 0,
	PUBREL:      1 << 2,
	PUBCOMP:     1 << 0,
	SUBSCRIBE:   1 << 2,
	SUBACK:      1 << 0,
	UNSUBSCRIBE: 1 << 2,
	UNSUBACK:    1 << 0,
	PINGREQ:     1 << 0,
	PINGRESP:    1 << 0,
	DISCONNECT:  1 << 0,
	AUTH:        1 << 0,
}

// flagsError explains why validFlags rejected the first byte.
func flagsError(t Type, flags byte) error {
	switch t {
	case Reserved:
		return Errorf(MalformedPacket, "packet type 0 is reserved")
	case PUBLISH:
		return Errorf(MalformedPacket, "PUBLISH with QoS 3 [MQTT-3.3.1-4]")
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		return Errorf(MalformedPacket, "%s flags are 0x%X, must be 0x2 [MQTT-2.1.3-1]", t, flags)
	default:
		return Errorf(MalformedPacket, "%s flags are 0x%X, must be 0 [MQTT-2.1.3-1]", t, flags)
	}
}

// appendHeader appends a fixed header with the given first byte.
func appendHeader(dst []byte, first byte, remaining int) []byte {
	dst = append(dst, first)
	return appendVBI(dst, remaining)
}

// checkBody reports whether body is the body that fh announces, of a
// packet of type want.
func checkBody(fh FixedHeader, body []byte, want Type) error {
	if fh.Type != want {
		return Errorf(MalformedPacket, "decoding a %s as %s", fh.Type, want)
	}
	if fh.Remaining != len(body) {
		return Errorf(MalformedPacket, "%s body is %d bytes, the fixed header says %d", want, len(body), fh.Remaining)
	}
	return nil
}
