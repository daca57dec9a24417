package topic

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchFilters returns n filters shaped like a device fleet's: mostly
// literal per-device topics, some per-site '+' filters and a few '#' ones.
func benchFilters(n int) []string {
	rng := rand.New(rand.NewPCG(7, 8))
	out := make([]string, n)
	for i := range out {
		site, dev := rng.IntN(50), rng.IntN(200)
		switch rng.IntN(10) {
		case 0, 1:
			out[i] = fmt.Sprintf("fleet/site%d/+/telemetry", site)
		case 2:
			out[i] = fmt.Sprintf("fleet/site%d/#", site)
		case 3:
			out[i] = fmt.Sprintf("$share/workers/fleet/+/dev%d/#", dev)
		default:
			out[i] = fmt.Sprintf("fleet/site%d/dev%d/telemetry", site, dev)
		}
	}
	return out
}

func benchTopics(n int) []string {
	rng := rand.New(rand.NewPCG(9, 10))
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("fleet/site%d/dev%d/telemetry", rng.IntN(50), rng.IntN(200))
	}
	return out
}

func benchTree(cacheSize int) *Tree[int] {
	tr := NewTree[int](cacheSize)
	for i, f := range benchFilters(10000) {
		tr.Add(i%2000, f, Options{QoS: 1})
	}
	return tr
}

// BenchmarkMatch matches topics against 10k subscriptions. cached cycles
// through 512 topics with a cache of 4096 (all hits once warm); uncached has
// the cache disabled, so every call walks the trie and builds a result.
func BenchmarkMatch(b *testing.B) {
	topics := benchTopics(512)
	for _, bc := range []struct {
		name string
		size int
	}{{"cached", 4096}, {"uncached", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			tr := benchTree(bc.size)
			for _, tp := range topics {
				tr.Match(tp)
			}
			subs := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				subs += len(tr.Match(topics[i&511]).Subs)
			}
			b.ReportMetric(float64(subs)/float64(b.N), "subs/op")
		})
	}
}

// BenchmarkMatchParallel is BenchmarkMatch's cached case from every core.
func BenchmarkMatchParallel(b *testing.B) {
	topics := benchTopics(512)
	for _, bc := range []struct {
		name string
		size int
	}{{"cached", 4096}, {"uncached", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			tr := benchTree(bc.size)
			for _, tp := range topics {
				tr.Match(tp)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(512)
				for pb.Next() {
					tr.Match(topics[i&511])
					i++
				}
			})
		})
	}
}

// BenchmarkAdd adds new subscriptions to a tree that holds 10k. Every 1024
// adds, the batch is removed again with the timer stopped, so the tree (and
// the share groups, which are copied on every change) stays at its size.
func BenchmarkAdd(b *testing.B) {
	const batch = 1024
	tr := benchTree(4096)
	filters := benchFilters(batch)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tr.Add(10000+i%batch, filters[i%batch], Options{})
		if i%batch == batch-1 {
			b.StopTimer()
			for j := range batch {
				tr.Remove(10000+j, filters[j])
			}
			b.StartTimer()
		}
	}
}

// BenchmarkIndexMatch finds retained topics by filter in an index of 10k.
func BenchmarkIndexMatch(b *testing.B) {
	x := NewIndex[int]()
	for i, tp := range benchTopics(10000) {
		x.Set(tp, i)
	}
	for _, filter := range []string{"fleet/site7/dev9/telemetry", "fleet/site7/+/telemetry", "fleet/site7/#", "fleet/+/dev9/#"} {
		b.Run(filter, func(b *testing.B) {
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				x.Match(filter, func(string, int) bool { n++; return true })
			}
			b.ReportMetric(float64(n)/float64(b.N), "topics/op")
		})
	}
}
