package packet

import "unicode/utf8"

// maxFieldLen is the longest UTF-8 string or binary field: both carry a
// two-byte length prefix (MQTT 5.0 sections 1.5.4 and 1.5.6).
const maxFieldLen = 65535

// errTruncated is the error for a field that runs past the end of its packet.
func errTruncated(field string) error {
	return Errorf(MalformedPacket, "%s: truncated", field)
}

// reader walks the body of one packet. Every read reports a field that runs
// past the end as a Malformed Packet.
type reader struct {
	b   []byte
	off int
}

// left is the number of unread bytes.
func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) readByte(field string) (byte, error) {
	if r.off >= len(r.b) {
		return 0, errTruncated(field)
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) readUint16(field string) (uint16, error) {
	if r.left() < 2 {
		return 0, errTruncated(field)
	}
	v := uint16(r.b[r.off])<<8 | uint16(r.b[r.off+1])
	r.off += 2
	return v, nil
}

func (r *reader) readUint32(field string) (uint32, error) {
	if r.left() < 4 {
		return 0, errTruncated(field)
	}
	b := r.b[r.off : r.off+4]
	r.off += 4
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}

func (r *reader) readVBI(field string) (int, error) {
	v, n, status := decodeVBI(r.b[r.off:])
	if status != vbiOK {
		return 0, vbiError(field, status)
	}
	r.off += n
	return v, nil
}

// readBytes reads a two-byte length and that many bytes, which alias the
// packet.
func (r *reader) readBytes(field string) ([]byte, error) {
	n, err := r.readUint16(field)
	if err != nil {
		return nil, err
	}
	if int(n) > r.left() {
		return nil, Errorf(MalformedPacket, "%s: length %d exceeds the %d bytes left in the packet", field, n, r.left())
	}
	b := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return b, nil
}

// readString reads a UTF-8 Encoded String and returns a copy.
func (r *reader) readString(field string) (string, error) {
	b, err := r.readBytes(field)
	if err != nil {
		return "", err
	}
	if f := scanText(b, false); f != textOK {
		return "", textError(field, f)
	}
	return string(b), nil
}

// readBinary reads Binary Data and copies it into the space of dst.
func (r *reader) readBinary(field string, dst []byte) ([]byte, error) {
	b, err := r.readBytes(field)
	if err != nil {
		return nil, err
	}
	return copyInto(dst, b), nil
}

// copyInto copies src into dst's backing array when it fits. The result is
// never nil, so that a present but empty field stays distinguishable from
// an absent one.
func copyInto(dst, src []byte) []byte {
	if dst == nil && len(src) == 0 {
		return []byte{}
	}
	return append(dst[:0], src...)
}

// textFault is what makes a string unacceptable.
type textFault uint8

const (
	textOK          textFault = iota
	textInvalidUTF8           // not well-formed UTF-8, or a surrogate code point
	textNull                  // contains U+0000
	textWildcard              // a Topic Name contains '+' or '#'
)

// Classes of bytes that scanText looks for.
const (
	classNull     = 1 << iota // U+0000
	classWildcard             // '+' or '#'
	classHigh                 // part of a multi-byte sequence
)

// byteClass classifies every byte value for scanText.
var byteClass = func() (t [256]uint8) {
	t[0] = classNull
	t['+'] = classWildcard
	t['#'] = classWildcard
	for c := 0x80; c < 0x100; c++ {
		t[c] = classHigh
	}
	return t
}()

// scanText checks a UTF-8 Encoded String. With wildcards set it also
// rejects the topic wildcards, as a Topic Name must. The common all-ASCII
// case costs one branch-free pass over the bytes.
func scanText(b []byte, wildcards bool) textFault {
	var seen uint8
	for _, c := range b {
		seen |= byteClass[c]
	}
	if seen == 0 {
		return textOK
	}
	if seen&classNull != 0 {
		return textNull
	}
	// utf8.Valid also rejects the surrogates U+D800..U+DFFF, which
	// [MQTT-1.5.4-1] forbids.
	if seen&classHigh != 0 && !utf8.Valid(b) {
		return textInvalidUTF8
	}
	if wildcards && seen&classWildcard != 0 {
		return textWildcard
	}
	return textOK
}

// textError turns a textFault into the error for the named field.
func textError(field string, f textFault) error {
	switch f {
	case textNull:
		return Errorf(MalformedPacket, "%s contains U+0000 [MQTT-1.5.4-2]", field)
	case textWildcard:
		return Errorf(TopicNameInvalid, "%s contains a wildcard character [MQTT-3.3.2-2]", field)
	default:
		return Errorf(MalformedPacket, "%s is not well-formed UTF-8 [MQTT-1.5.4-1]", field)
	}
}

// checkVersion rejects protocol levels the codec does not speak.
func checkVersion(v Version) error {
	if v < V31 || v > V5 {
		return Errorf(UnsupportedProtocolVersion, "protocol level %d is not 3, 4 or 5", byte(v))
	}
	return nil
}

func appendUint16(dst []byte, v uint16) []byte {
	return append(dst, byte(v>>8), byte(v))
}

func appendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendString appends a length-prefixed string; the caller has checked
// that it is at most maxFieldLen bytes.
func appendString(dst []byte, s string) []byte {
	dst = appendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// appendBinary appends length-prefixed Binary Data; the caller has checked
// that it is at most maxFieldLen bytes.
func appendBinary(dst []byte, b []byte) []byte {
	dst = appendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// checkRemaining rejects a packet body too long for the Remaining Length.
func checkRemaining(t Type, n int) error {
	if n > MaxRemainingLength {
		return Errorf(PacketTooLarge, "encode %s: %d bytes exceed the largest Remaining Length (%d)", t, n, MaxRemainingLength)
	}
	return nil
}

// checkFieldLen rejects a string or binary field too long for its prefix.
func checkFieldLen(t Type, field string, n int) error {
	if n > maxFieldLen {
		return Errorf(MalformedPacket, "encode %s: %s is %d bytes, the limit is %d", t, field, n, maxFieldLen)
	}
	return nil
}
