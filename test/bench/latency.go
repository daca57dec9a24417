package bench

import (
	"math/bits"
	"time"
)

// The latency histogram is log-linear: values below subBuckets nanoseconds
// are counted exactly, and every power-of-two range above is split into
// subBuckets equal buckets, so a bucket is never wider than 1/128 (0.8%) of
// its values. Recording is an index computation and an increment, with no
// allocation, so that a subscriber can record every message it receives.
const (
	subBucketBits = 7
	subBuckets    = 1 << subBucketBits
	// maxLatencyBits bounds recorded values to 2^40 ns (about 18 minutes);
	// anything longer is clamped into the last bucket.
	maxLatencyBits = 40
	bucketCount    = (maxLatencyBits - subBucketBits + 2) * subBuckets
)

// histogram counts latencies in nanoseconds. It is not safe for concurrent
// use: each subscriber owns one and the run merges them at the end.
type histogram struct {
	counts [bucketCount]uint64
	total  uint64
	max    int64
}

// bucketIndex maps a non-negative value to its bucket.
func bucketIndex(v int64) int {
	if v < subBuckets {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBucketBits - 1
	i := (shift+1)*subBuckets + int(v>>uint(shift)) - subBuckets
	if i >= bucketCount {
		return bucketCount - 1
	}
	return i
}

// bucketLow is the smallest value that falls into bucket i.
func bucketLow(i int) int64 {
	if i < subBuckets {
		return int64(i)
	}
	shift := i/subBuckets - 1
	return int64(i%subBuckets+subBuckets) << uint(shift)
}

// record adds one latency. Negative values (impossible with a monotonic
// clock in one process, but cheap to guard) count as zero.
func (h *histogram) record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.counts[bucketIndex(ns)]++
	h.total++
	if ns > h.max {
		h.max = ns
	}
}

// merge adds o's counts to h.
func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the latency below which a fraction q (0..1) of the
// recorded values fall: the middle of the bucket that holds the q-th value,
// capped at the exact maximum. It returns 0 when nothing was recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > h.total {
		rank = h.total
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			low := bucketLow(i)
			high := bucketLow(i + 1)
			mid := low + (high-low)/2
			if mid > h.max {
				mid = h.max
			}
			return time.Duration(mid)
		}
	}
	return time.Duration(h.max)
}
