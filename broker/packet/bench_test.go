package packet

import "testing"

// Benchmarks measure; they assert nothing about time. Run with
//   go test -run='^$' -bench=. -benchmem ./broker/packet

// benchPublishV3 is a small QoS 1 PUBLISH as a 3.1.1 sensor sends it.
var benchPublishV3 = []byte{
	0x32, 0x17, // PUBLISH QoS 1, remaining length 23
	0x00, 0x0F, 's', 'e', 'n', 's', 'o', 'r', 's', '/', '4', '2', '/', 't', 'e', 'm', 'p', // topic
	0x00, 0x01, // packet identifier 1
	'2', '1', '.', '5', // payload
}

// benchPublishV5 is the same message in v5 with a few properties that
// decode without allocating: no strings, and the Correlation Data reuses
// the space of the previous decode.
var benchPublishV5 = []byte{
	0x32, 0x29, // PUBLISH QoS 1, remaining length 41
	0x00, 0x0F, 's', 'e', 'n', 's', 'o', 'r', 's', '/', '4', '2', '/', 't', 'e', 'm', 'p', // topic
	0x00, 0x01, // packet identifier 1
	0x11,       // property length 17
	0x01, 0x01, // Payload Format Indicator 1
	0x02, 0x00, 0x00, 0x00, 0x3C, // Message Expiry Interval 60
	0x09, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF, // Correlation Data
	0x23, 0x00, 0x01, // Topic Alias 1
	'2', '1', '.', '5', // payload
}

// benchPublishV5User adds a User Property, whose name must be copied into
// a new string on every decode (its one-byte value needs no allocation).
var benchPublishV5User = []byte{
	0x32, 0x33, // PUBLISH QoS 1, remaining length 51
	0x00, 0x0F, 's', 'e', 'n', 's', 'o', 'r', 's', '/', '4', '2', '/', 't', 'e', 'm', 'p', // topic
	0x00, 0x01, // packet identifier 1
	0x1B,       // property length 27
	0x01, 0x01, // Payload Format Indicator 1
	0x02, 0x00, 0x00, 0x00, 0x3C, // Message Expiry Interval 60
	0x09, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF, // Correlation Data
	0x23, 0x00, 0x01, // Topic Alias 1
	0x26, 0x00, 0x04, 'u', 'n', 'i', 't', 0x00, 0x01, 'C', // User Property unit=C
	'2', '1', '.', '5', // payload
}

// publishBenches are the PUBLISH packets the decode and encode benchmarks share.
var publishBenches = []struct {
	name string
	v    Version
	raw  []byte
}{
	{"v3_qos1", V311, benchPublishV3},
	{"v5_qos1_props", V5, benchPublishV5},
	{"v5_qos1_props_user", V5, benchPublishV5User},
}

func BenchmarkReadFixedHeader(b *testing.B) {
	big := appendVBI([]byte{0x30}, 1<<20) // three-byte Remaining Length
	for _, bc := range []struct {
		name string
		raw  []byte
	}{{"short", benchPublishV3}, {"1MiB", big}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, n, err := ReadFixedHeader(bc.raw); n == 0 || err != nil {
					b.Fatal(n, err)
				}
			}
		})
	}
}

func BenchmarkDecodePublish(b *testing.B) {
	for _, bc := range publishBenches {
		b.Run(bc.name, func(b *testing.B) {
			fh, body, err := splitPacket(bc.raw)
			if err != nil {
				b.Fatal(err)
			}
			var p Publish
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.raw)))
			for b.Loop() {
				if err := p.Decode(fh, body, bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodePublish(b *testing.B) {
	for _, bc := range publishBenches {
		b.Run(bc.name, func(b *testing.B) {
			fh, body, err := splitPacket(bc.raw)
			if err != nil {
				b.Fatal(err)
			}
			var p Publish
			if err := p.Decode(fh, body, bc.v); err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, 0, 512)
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.raw)))
			for b.Loop() {
				if dst, err = p.Encode(dst[:0], bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeConnect(b *testing.B) {
	for _, name := range []string{"v311 CONNECT will user password", "v5 CONNECT every property and a will"} {
		var raw []byte
		var v Version
		for _, tc := range vectors {
			if tc.name == name {
				raw, v = tc.raw, tc.v
			}
		}
		fh, body, err := splitPacket(raw)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(v.String(), func(b *testing.B) {
			var c Connect
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Decode(fh, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeSubscribe(b *testing.B) {
	var raw []byte
	for _, tc := range vectors {
		if tc.name == "v5 SUBSCRIBE options and shared subscription" {
			raw = tc.raw
		}
	}
	fh, body, err := splitPacket(raw)
	if err != nil {
		b.Fatal(err)
	}
	var s Subscribe
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Decode(fh, body, V5); err != nil {
			b.Fatal(err)
		}
	}
}
