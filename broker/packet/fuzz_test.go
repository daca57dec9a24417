package packet

import (
	"bytes"
	"fmt"
	"testing"
)

// fuzzVersion maps any byte to one of the three protocol versions.
func fuzzVersion(b byte) Version { return V31 + Version(b%3) }

// versionByte is the fuzz input byte that fuzzVersion maps to v.
func versionByte(v Version) byte { return byte(v - V31) }

// FuzzDecode feeds arbitrary bytes to the decoders. Nothing may panic;
// every error must be an *Error; whatever decodes must encode, and the
// encoding must decode to an equal value and encode to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, tc := range vectors {
		f.Add(versionByte(tc.v), tc.raw)
	}
	for _, tc := range malformedVectors {
		f.Add(versionByte(tc.v), tc.raw)
	}
	f.Fuzz(func(t *testing.T, vb byte, data []byte) {
		v := fuzzVersion(vb)
		fh, n, err := ReadFixedHeader(data)
		if err != nil {
			reasonOf(t, err)
			return
		}
		if n == 0 || len(data)-n < fh.Remaining {
			return
		}
		body := data[n : n+fh.Remaining]
		p, err := Decode(fh, body, v)
		if err != nil {
			reasonOf(t, err)
			return
		}
		if c, ok := p.(*Connect); ok {
			v = c.Version
		}

		// Decoding into a used value gives the same result as into a new one.
		used := dirty(p)
		if err := decodeInto(used, fh, body, v); err != nil {
			t.Fatalf("decodes into a new value but not into a used one: %v", err)
		}
		if !equalPackets(used, p) {
			t.Fatalf("decoding into a used value\n got  %s\n want %s", show(used), show(p))
		}

		enc, err := p.Encode(nil, v)
		if err != nil {
			t.Fatalf("decoded %s from % X but cannot encode it: %v", show(p), data[:n+fh.Remaining], err)
		}
		if len(enc) > n+fh.Remaining {
			t.Fatalf("encoding is longer than the input: % X from % X", enc, data[:n+fh.Remaining])
		}
		back, err := decodeRaw(enc, v)
		if err != nil {
			t.Fatalf("cannot decode own encoding % X of %s: %v", enc, show(p), err)
		}
		if !equalPackets(back, p) {
			t.Fatalf("round trip changed the packet\n got  %s\n want %s", show(back), show(p))
		}
		again, err := back.Encode(nil, v)
		if err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("encoding is not stable: % X then % X (%v)", enc, again, err)
		}
	})
}

// event is what a reader of a packet stream observes for one packet.
type event struct {
	fh      FixedHeader
	encoded string     // re-encoding of the decoded packet, when it decoded
	code    ReasonCode // error code, when it did not
}

// readStream parses packets from the front of buf the way a connection's
// read loop does. It returns what it saw, how many bytes it consumed, and
// whether it stopped on an error (after which a connection closes).
func readStream(t *testing.T, buf []byte, v Version) (events []event, used int, failed bool) {
	for {
		fh, n, err := ReadFixedHeader(buf[used:])
		if err != nil {
			return append(events, event{code: reasonOf(t, err)}), used, true
		}
		if n == 0 || len(buf)-used-n < fh.Remaining {
			return events, used, false
		}
		body := buf[used+n : used+n+fh.Remaining]
		ev := event{fh: fh}
		p, err := Decode(fh, body, v)
		if err != nil {
			ev.code = reasonOf(t, err)
		} else {
			ev.encoded = fmt.Sprintf("%T % X", p, mustEncode(t, p, v))
		}
		events = append(events, ev)
		used += n + fh.Remaining
		if err != nil {
			return events, used, true
		}
	}
}

func mustEncode(t *testing.T, p Packet, v Version) []byte {
	t.Helper()
	if c, ok := p.(*Connect); ok {
		v = c.Version
	}
	b, err := p.Encode(nil, v)
	if err != nil {
		t.Fatalf("decoded %s but cannot encode it: %v", show(p), err)
	}
	return b
}

// FuzzStream checks incremental parsing: a stream of packets delivered in
// arbitrary pieces, as TCP does, must yield exactly the packets (or the
// error) that the whole stream yields at once. The sizes of the pieces
// come from cuts.
func FuzzStream(f *testing.F) {
	streams := map[Version][]byte{}
	for _, tc := range vectors {
		f.Add(versionByte(tc.v), tc.raw, []byte{1})
		streams[tc.v] = append(streams[tc.v], tc.raw...)
	}
	for v, s := range streams {
		f.Add(versionByte(v), s, []byte{1, 2, 3, 5, 8, 13})
		f.Add(versionByte(v), s, []byte{200, 7})
		f.Add(versionByte(v), append(bytes.Clone(s), malformedVectors[0].raw...), []byte{3})
	}
	f.Fuzz(func(t *testing.T, vb byte, stream []byte, cuts []byte) {
		v := fuzzVersion(vb)
		want, wantUsed, wantFailed := readStream(t, stream, v)

		// A complete fixed header is recognised as such at exactly one
		// length: every shorter prefix asks for more.
		if _, n, err := ReadFixedHeader(stream); err == nil && n > 0 {
			for k := 0; k < n; k++ {
				if _, m, err := ReadFixedHeader(stream[:k]); m != 0 || err != nil {
					t.Fatalf("prefix % X of header % X: n=%d err=%v, want 0, nil", stream[:k], stream[:n], m, err)
				}
			}
		}

		var (
			got    []event
			buf    []byte
			failed bool
			pos    int
		)
		for i := 0; pos < len(stream) && !failed; i++ {
			size := 1
			if len(cuts) > 0 {
				size = int(cuts[i%len(cuts)]) + 1
			}
			end := min(pos+size, len(stream))
			buf = append(buf, stream[pos:end]...)
			pos = end
			var evs []event
			var used int
			evs, used, failed = readStream(t, buf, v)
			got = append(got, evs...)
			// Keep the unread tail, as a connection compacts its buffer.
			buf = append(buf[:0], buf[used:]...)
		}
		if len(got) != len(want) || failed != wantFailed {
			t.Fatalf("in pieces: %d packets (failed %v), at once: %d packets (failed %v)", len(got), failed, len(want), wantFailed)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("packet %d in pieces %+v, at once %+v", i, got[i], want[i])
			}
		}
		if !failed && len(buf) != len(stream)-wantUsed {
			t.Fatalf("in pieces %d bytes are left unread, at once %d", len(buf), len(stream)-wantUsed)
		}
	})
}
