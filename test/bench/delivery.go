package bench

import (
	"math/bits"
	"sync/atomic"
)

// seenSet records which sequence numbers of one publisher a receiver group
// has received, one bit per message. A receiver group is the set of
// subscribers of which exactly one should receive each message: a single
// subscriber for fan-in, fan-out and pairs, the whole group for a $share
// subscription. Bits are set with an atomic OR because the members of a
// shared group mark the same set from their own reader goroutines.
type seenSet struct {
	words []uint64
}

func newSeenSet(messages uint64) *seenSet {
	return &seenSet{words: make([]uint64, (messages+63)/64)}
}

// mark records seq and reports whether it had been received before, that is
// whether this delivery is a duplicate. ok is false when seq is outside the
// set, which only a misbehaving broker could cause.
func (s *seenSet) mark(seq uint64) (duplicate, ok bool) {
	w := seq / 64
	if w >= uint64(len(s.words)) {
		return false, false
	}
	bit := uint64(1) << (seq % 64)
	old := atomic.OrUint64(&s.words[w], bit)
	return old&bit != 0, true
}

// unique counts the distinct sequence numbers received. Call it only after
// the readers have stopped.
func (s *seenSet) unique() uint64 {
	var n uint64
	for _, w := range s.words {
		n += uint64(bits.OnesCount64(w))
	}
	return n
}

// receiverGroup is one receiver group with a seenSet for every publisher
// whose messages it should receive, indexed by publisher; nil for a
// publisher it does not hear from.
type receiverGroup struct {
	seen []*seenSet
}
