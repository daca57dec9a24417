package packet

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// splitPacket frames one whole packet: it fails unless raw is exactly one
// fixed header and the body it announces.
func splitPacket(raw []byte) (FixedHeader, []byte, error) {
	fh, n, err := ReadFixedHeader(raw)
	if err != nil {
		return fh, nil, err
	}
	if n == 0 {
		return fh, nil, fmt.Errorf("incomplete fixed header in % X", raw)
	}
	if len(raw) != n+fh.Remaining {
		return fh, nil, fmt.Errorf("packet is %d bytes, its header says %d", len(raw), n+fh.Remaining)
	}
	return fh, raw[n:], nil
}

// decodeRaw decodes one whole packet with the generic decoder.
func decodeRaw(raw []byte, v Version) (Packet, error) {
	fh, body, err := splitPacket(raw)
	if err != nil {
		return nil, err
	}
	return Decode(fh, body, v)
}

// decodeInto decodes with the per-type method of p, as the broker does
// into its reused values.
func decodeInto(p Packet, fh FixedHeader, body []byte, v Version) error {
	switch p := p.(type) {
	case *Connect:
		return p.Decode(fh, body)
	case *Connack:
		return p.Decode(fh, body, v)
	case *Publish:
		return p.Decode(fh, body, v)
	case *Ack:
		return p.Decode(fh, body, v)
	case *Subscribe:
		return p.Decode(fh, body, v)
	case *Suback:
		return p.Decode(fh, body, v)
	case *Unsubscribe:
		return p.Decode(fh, body, v)
	case *Unsuback:
		return p.Decode(fh, body, v)
	case *Pingreq:
		return p.Decode(fh, body, v)
	case *Pingresp:
		return p.Decode(fh, body, v)
	case *Disconnect:
		return p.Decode(fh, body, v)
	case *Auth:
		return p.Decode(fh, body, v)
	}
	panic(fmt.Sprintf("decodeInto: unhandled %T", p))
}

// dirty returns a new value of p's concrete type with every field set to
// something no decoder produces on its own, to catch a decoder that leaves
// a stale field behind.
func dirty(p Packet) Packet {
	v := reflect.New(reflect.TypeOf(p).Elem())
	fill(v.Elem())
	return v.Interface().(Packet)
}

func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fill(v.Field(i))
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fill(s.Index(0))
		fill(s.Index(1))
		v.Set(s)
	case reflect.String:
		v.SetString("stale")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(77)
	case reflect.Int:
		v.SetInt(77)
	}
}

// equalPackets compares decoded values field by field, treating a nil and
// an empty slice as equal: the wire cannot tell them apart for lists.
// Binary properties are the exception: nil means absent and empty means
// present but empty, so for []byte fields nil-ness is compared too unless
// the field is a PUBLISH Topic or Payload.
func equalPackets(a, b Packet) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return equalValues(reflect.ValueOf(a), reflect.ValueOf(b), "")
}

func equalValues(a, b reflect.Value, field string) bool {
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValues(a.Elem(), b.Elem(), field)
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !equalValues(a.Field(i), b.Field(i), a.Type().Field(i).Name) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		if (field == "CorrelationData" || field == "AuthData") && a.IsNil() != b.IsNil() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !equalValues(a.Index(i), b.Index(i), "") {
				return false
			}
		}
		return true
	default:
		return a.Equal(b)
	}
}

// reasonOf extracts the reason code of a codec error, checking it is an
// *Error as the package promises.
func reasonOf(t *testing.T, err error) ReasonCode {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *packet.Error", err, err)
	}
	var rc ReasonCode
	if !errors.As(err, &rc) || rc != pe.Code {
		t.Fatalf("errors.As(%v, *ReasonCode) = %v, want %v", err, rc, pe.Code)
	}
	return pe.Code
}

// show formats a packet for failure messages, with byte slices as text.
func show(p Packet) string {
	if pub, ok := p.(*Publish); ok {
		c := *pub
		return fmt.Sprintf("&Publish{Dup:%v QoS:%d Retain:%v Topic:%q PacketID:%d Payload:%q Properties:%+v}",
			c.Dup, c.QoS, c.Retain, c.Topic, c.PacketID, c.Payload, c.Properties)
	}
	return fmt.Sprintf("%+v", p)
}
