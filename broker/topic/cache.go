package topic

import (
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"sync/atomic"
)

// cacheWays is the number of slots in one cache bucket: eight pointers, one
// CPU cache line. A topic may sit in any slot of its bucket, so a handful of
// hot topics whose hashes collide do not keep evicting each other, as they
// would with one or two candidate slots.
const cacheWays = 8

// matchCache remembers Match results by topic name. It is a fixed array of
// slots, each an atomic pointer to an immutable entry, so a lookup takes no
// lock and allocates nothing: hash the topic, load the slots of one bucket,
// compare.
//
// Entries are never removed on invalidation. Each carries the trie generation
// it was computed at, and a lookup only accepts an entry of the current
// generation; stale entries are overwritten later. The fixed array bounds the
// memory held by results, stale or not.
type matchCache[K comparable] struct {
	seed    maphash.Seed
	ways    int
	buckets uint64
	slots   []atomic.Pointer[cacheEntry[K]]
}

// cacheEntry is immutable once stored.
type cacheEntry[K comparable] struct {
	hash  uint64
	gen   uint64
	topic string
	res   *Result[K]
}

// newMatchCache returns a cache of at most size entries (size > 0).
func newMatchCache[K comparable](size int) *matchCache[K] {
	ways := min(size, cacheWays)
	buckets := size / ways
	return &matchCache[K]{
		seed:    maphash.MakeSeed(),
		ways:    ways,
		buckets: uint64(buckets),
		slots:   make([]atomic.Pointer[cacheEntry[K]], buckets*ways),
	}
}

// bucket returns the slots topic may occupy.
func (c *matchCache[K]) bucket(h uint64) []atomic.Pointer[cacheEntry[K]] {
	// Multiply-shift maps the hash onto [0, buckets) without a division.
	b := int(((h >> 32) * c.buckets) >> 32)
	return c.slots[b*c.ways : (b+1)*c.ways]
}

// get returns the cached result for topic at generation gen, or nil.
func (c *matchCache[K]) get(topic string, gen uint64) *Result[K] {
	h := maphash.String(c.seed, topic)
	slots := c.bucket(h)
	for i := range slots {
		e := slots[i].Load()
		if e == nil {
			return nil // slots fill from the front and are never emptied
		}
		if e.hash == h && e.gen == gen && e.topic == topic {
			return e.res
		}
	}
	return nil
}

// put stores res for topic at generation gen. It takes the slot already
// holding topic, else an empty one, else one of an older generation, else a
// random one: nothing to track, and no access pattern can make it evict the
// same hot entry every time.
func (c *matchCache[K]) put(topic string, gen uint64, res *Result[K]) {
	h := maphash.String(c.seed, topic)
	slots := c.bucket(h)
	victim, stale := -1, -1
	for i := range slots {
		e := slots[i].Load()
		if e == nil {
			victim = i
			break
		}
		if e.hash == h && e.topic == topic {
			if e.gen > gen {
				// A newer result for this topic is already cached: ours is
				// stale, and storing it would evict a useful entry.
				return
			}
			victim = i
			break
		}
		if e.gen < gen && stale < 0 {
			stale = i
		}
	}
	switch {
	case victim >= 0:
	case stale >= 0:
		victim = stale
	default:
		victim = int(rand.Uint32() % uint32(len(slots)))
	}
	// The caller's topic may alias a connection's read buffer; keep a copy.
	slots[victim].Store(&cacheEntry[K]{hash: h, gen: gen, topic: strings.Clone(topic), res: res})
}
