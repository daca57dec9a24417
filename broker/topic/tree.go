package topic

import (
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Options are the per-subscription options the broker stores with each entry
// (MQTT 5.0 section 3.8.3.1; a v3 subscription uses QoS only).
type Options struct {
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	SubscriptionID    uint32 // 0 = none
}

// Sub is one subscription entry as returned by Match. Key identifies the
// subscriber: the broker uses a pointer to its session type, and a remote
// peer's interest goes into the same trie under the peer's key.
type Sub[K comparable] struct {
	Key    K
	Filter string // the filter without any $share/<group>/ prefix
	Group  string // share group name; "" when not shared
	Options
}

// Group is one shared-subscription group ($share/<name>/<filter>) as seen by
// Match. A Group value is an immutable snapshot: Add and Remove publish a new
// one rather than change it, so Members is consistent for as long as a caller
// holds it. Callers must not modify Members.
type Group[K comparable] struct {
	Name    string
	Filter  string
	Members []Sub[K]
	// next is shared by every snapshot of the group, so the rotation carries
	// on across member churn and cache invalidation instead of restarting at
	// the first member (which would overload it).
	next *atomic.Uint64
}

// Next returns a rotating start index into Members (round robin); the broker
// walks members from there to skip ones that cannot take a message. Safe for
// concurrent use.
func (g *Group[K]) Next() int {
	n := uint64(len(g.Members))
	if n == 0 || g.next == nil {
		return 0
	}
	return int((g.next.Add(1) - 1) % n)
}

// Result is what Match returns. It is shared and immutable (it may come from
// the cache): callers must not modify it.
type Result[K comparable] struct {
	Subs   []Sub[K]    // every matching non-shared subscription (one per (key, filter))
	Groups []*Group[K] // every matching share group (one per (name, filter)), members non-empty
}

// Tree is the subscription trie. Safe for concurrent use; Match is the hot
// path (many concurrent readers), Add and Remove are rarer.
//
// Locking: mu guards the trie. Match takes no lock on a cache hit, and a read
// lock otherwise. gen changes only while mu is held for writing, so a reader
// holding the read lock sees a gen that exactly describes the trie it reads.
type Tree[K comparable] struct {
	// Read on every Match; written only by Add and Remove. Kept apart from mu,
	// which every uncached Match writes, so cache hits on other cores do not
	// keep losing this cache line.
	cache *matchCache[K] // nil when disabled
	empty *Result[K]     // shared result for topics nothing matches
	gen   atomic.Uint64  // bumped by every change to the trie
	_     [64]byte

	mu      sync.RWMutex
	root    *node[K]
	count   atomic.Int64
	scratch sync.Pool // *matchScratch[K], reused by uncached matches

	// afterWalk, when set by a test, runs between an uncached Match's trie
	// walk and its cache store: the window a concurrent Add can fall into.
	afterWalk func()
}

// node is one level of the trie. Its path from the root is a plain filter,
// kept in filter so every entry at the node can share the string.
type node[K comparable] struct {
	parent  *node[K]
	token   string // this node's level: the key in parent.literal, or "+" / "#"
	filter  string
	literal map[string]*node[K]
	plus    *node[K]
	hash    *node[K]

	subs   []Sub[K]
	subIdx map[K]int // position in subs by key, built once subs gets long

	groups map[string]*Group[K] // by share name
}

// subIndexThreshold is the number of entries at one node above which finding
// a key switches from a linear scan to a map. Most filters have a handful of
// subscribers, and a map per node would cost more than it saves there.
const subIndexThreshold = 16

// maxScratch bounds the scratch capacity kept for reuse.
const maxScratch = 1 << 12

// matchScratch holds the nodes an uncached Match found, reused across calls.
type matchScratch[K comparable] struct {
	nodes []*node[K]
}

// NewTree returns an empty trie whose match cache holds up to cacheSize
// topics; cacheSize 0 (or less) disables the cache.
func NewTree[K comparable](cacheSize int) *Tree[K] {
	t := &Tree[K]{
		empty: &Result[K]{},
		root:  &node[K]{},
	}
	if cacheSize > 0 {
		t.cache = newMatchCache[K](cacheSize)
	}
	t.scratch.New = func() any { return new(matchScratch[K]) }
	return t
}

// sharedParts splits a filter into its share name and plain filter. Add and
// Remove accept only valid filters, but a malformed $share filter must not
// break the trie, so it is kept as a plain filter of that literal text.
func sharedParts(filter string) (group, inner string) {
	group, inner, shared, err := ParseShared(filter)
	if !shared || err != nil {
		return "", filter
	}
	return group, inner
}

// Add inserts or replaces (same key and same full filter including any
// $share prefix) a subscription. The filter must already be valid (see
// ValidateFilter); the trie keeps its own copies of the strings it is given.
// existed reports a replacement.
func (t *Tree[K]) Add(key K, filter string, opts Options) (existed bool) {
	group, inner := sharedParts(filter)
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.root
	for start := 0; start <= len(inner); {
		level, next := nextLevel(inner, start)
		n = n.childFor(level, inner[:next-1])
		start = next
	}
	if group == "" {
		existed = n.addSub(key, opts)
	} else {
		existed = n.addMember(group, key, opts)
	}
	if !existed {
		t.count.Add(1)
	}
	// Even a replacement changes what Match returns (the options).
	t.gen.Add(1)
	return existed
}

// Remove deletes the subscription of key to filter (the full filter
// including any $share prefix) and prunes trie nodes left empty.
func (t *Tree[K]) Remove(key K, filter string) (existed bool) {
	group, inner := sharedParts(filter)
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.root
	for start := 0; start <= len(inner) && n != nil; {
		level, next := nextLevel(inner, start)
		switch level {
		case "+":
			n = n.plus
		case "#":
			n = n.hash
		default:
			n = n.literal[level]
		}
		start = next
	}
	if n == nil {
		return false
	}
	if group == "" {
		existed = n.removeSub(key)
	} else {
		existed = n.removeMember(group, key)
	}
	if !existed {
		return false
	}
	t.count.Add(-1)
	t.prune(n)
	t.gen.Add(1)
	return true
}

// Count returns the number of subscriptions (each shared member counts once).
func (t *Tree[K]) Count() int { return int(t.count.Load()) }

// Match returns the subscriptions matching a concrete topic name. Topics
// starting with '$' are not matched by filters starting with '+' or '#'
// [MQTT-4.7.2-1]. Match does not retain topic. The result is shared and must
// not be modified.
func (t *Tree[K]) Match(topic string) *Result[K] {
	if t.cache != nil {
		if r := t.cache.get(topic, t.gen.Load()); r != nil {
			return r
		}
	}
	return t.match(topic)
}

// MatchBytes is Match for a topic still in a connection's read buffer; it
// saves the conversion to a string. topic must not change during the call.
func (t *Tree[K]) MatchBytes(topic []byte) *Result[K] {
	// Safe because Match copies the topic before keeping it anywhere.
	return t.Match(unsafe.String(unsafe.SliceData(topic), len(topic)))
}

// match walks the trie and caches the result if the trie has not changed
// meanwhile.
func (t *Tree[K]) match(topic string) *Result[K] {
	sc := t.scratch.Get().(*matchScratch[K])
	t.mu.RLock()
	gen := t.gen.Load()
	// [MQTT-4.7.2-1] A topic starting with '$' is not matched by a filter
	// starting with a wildcard, so the root's wildcard children are skipped.
	dollar := topic != "" && topic[0] == '$'
	// First find the matching nodes, then copy their entries into slices of
	// the exact size: entries are copied once and each slice is allocated once.
	sc.nodes = t.root.collect(topic, 0, dollar, sc.nodes)
	subs, groups := 0, 0
	for _, n := range sc.nodes {
		subs += len(n.subs)
		groups += len(n.groups)
	}
	res := t.empty
	if subs > 0 || groups > 0 {
		res = &Result[K]{}
		if subs > 0 {
			res.Subs = make([]Sub[K], 0, subs)
		}
		if groups > 0 {
			res.Groups = make([]*Group[K], 0, groups)
		}
		for _, n := range sc.nodes {
			res.Subs = append(res.Subs, n.subs...)
			for _, g := range n.groups {
				res.Groups = append(res.Groups, g)
			}
		}
	}
	t.mu.RUnlock()
	t.releaseScratch(sc)
	if t.afterWalk != nil {
		t.afterWalk()
	}

	// The result describes the trie at gen. If an Add or Remove has happened
	// since, it is still stored under gen, which lookups no longer accept, so
	// a stale result is never served as current. Skipping the store when the
	// generation has moved on just saves the work.
	if t.cache != nil && t.gen.Load() == gen {
		t.cache.put(topic, gen, res)
	}
	return res
}

func (t *Tree[K]) releaseScratch(sc *matchScratch[K]) {
	if cap(sc.nodes) > maxScratch {
		return // let one huge match's buffer go
	}
	clear(sc.nodes) // do not keep pruned nodes alive
	sc.nodes = sc.nodes[:0]
	t.scratch.Put(sc)
}

// collect appends to nodes every node whose entries match topic from byte
// offset start on. It descends literal children in a loop and recurses only
// into '+' branches, so the stack grows with the number of '+' levels taken.
func (n *node[K]) collect(topic string, start int, noWildcards bool, nodes []*node[K]) []*node[K] {
	for {
		if h := n.hash; h != nil && !noWildcards && h.hasEntries() {
			// '#' matches this level's parent too: "a/#" matches "a".
			nodes = append(nodes, h)
		}
		if start > len(topic) {
			if n.hasEntries() {
				nodes = append(nodes, n)
			}
			return nodes
		}
		level, next := nextLevel(topic, start)
		if n.plus != nil && !noWildcards {
			nodes = n.plus.collect(topic, next, false, nodes)
		}
		child := n.literal[level]
		if child == nil {
			return nodes
		}
		n, start, noWildcards = child, next, false
	}
}

func (n *node[K]) hasEntries() bool { return len(n.subs) > 0 || len(n.groups) > 0 }

// childFor returns the child of n for level, creating it. path is the filter
// from the root up to and including level.
func (n *node[K]) childFor(level, path string) *node[K] {
	switch level {
	case "+":
		if n.plus == nil {
			n.plus = &node[K]{parent: n, token: "+", filter: strings.Clone(path)}
		}
		return n.plus
	case "#":
		if n.hash == nil {
			n.hash = &node[K]{parent: n, token: "#", filter: strings.Clone(path)}
		}
		return n.hash
	}
	if c := n.literal[level]; c != nil {
		return c
	}
	path = strings.Clone(path)
	c := &node[K]{parent: n, filter: path, token: path[len(path)-len(level):]}
	if n.literal == nil {
		n.literal = make(map[string]*node[K])
	}
	n.literal[c.token] = c
	return c
}

func (n *node[K]) isEmpty() bool {
	return len(n.subs) == 0 && len(n.groups) == 0 && len(n.literal) == 0 && n.plus == nil && n.hash == nil
}

// prune unlinks n and its ancestors while they hold nothing, so memory
// follows the live subscriptions rather than every filter ever seen.
func (t *Tree[K]) prune(n *node[K]) {
	for n != t.root && n.isEmpty() {
		p := n.parent
		switch {
		case p.plus == n:
			p.plus = nil
		case p.hash == n:
			p.hash = nil
		default:
			delete(p.literal, n.token)
			if len(p.literal) == 0 {
				p.literal = nil
			}
		}
		n.parent = nil
		n = p
	}
}

func (n *node[K]) findSub(key K) int {
	if n.subIdx != nil {
		if i, ok := n.subIdx[key]; ok {
			return i
		}
		return -1
	}
	for i := range n.subs {
		if n.subs[i].Key == key {
			return i
		}
	}
	return -1
}

// addSub adds or replaces key's entry and reports whether it replaced one.
// Entries are edited in place: results hold copies, never this slice.
func (n *node[K]) addSub(key K, opts Options) bool {
	if i := n.findSub(key); i >= 0 {
		n.subs[i].Options = opts
		return true
	}
	n.subs = append(n.subs, Sub[K]{Key: key, Filter: n.filter, Options: opts})
	switch {
	case n.subIdx != nil:
		n.subIdx[key] = len(n.subs) - 1
	case len(n.subs) > subIndexThreshold:
		n.subIdx = make(map[K]int, len(n.subs))
		for i := range n.subs {
			n.subIdx[n.subs[i].Key] = i
		}
	}
	return false
}

func (n *node[K]) removeSub(key K) bool {
	i := n.findSub(key)
	if i < 0 {
		return false
	}
	last := len(n.subs) - 1
	if i != last {
		n.subs[i] = n.subs[last]
		if n.subIdx != nil {
			n.subIdx[n.subs[i].Key] = i
		}
	}
	n.subs[last] = Sub[K]{}
	n.subs = n.subs[:last]
	if n.subIdx != nil {
		delete(n.subIdx, key)
	}
	switch {
	case len(n.subs) == 0:
		n.subs, n.subIdx = nil, nil
	case cap(n.subs) > 4*subIndexThreshold && len(n.subs) < cap(n.subs)/4:
		// Give back memory after a crowd of subscribers leaves.
		n.subs = append([]Sub[K](nil), n.subs...)
	}
	return true
}

// addMember adds or replaces key in the share group name. The group is
// republished as a new snapshot so results already handed out stay intact.
func (n *node[K]) addMember(name string, key K, opts Options) bool {
	old := n.groups[name]
	if old != nil {
		for i := range old.Members {
			if old.Members[i].Key == key {
				members := append([]Sub[K](nil), old.Members...)
				members[i].Options = opts
				n.groups[name] = &Group[K]{Name: old.Name, Filter: old.Filter, Members: members, next: old.next}
				return true
			}
		}
	}
	g := &Group[K]{Filter: n.filter}
	if old != nil {
		g.Name, g.next = old.Name, old.next
		g.Members = make([]Sub[K], len(old.Members), len(old.Members)+1)
		copy(g.Members, old.Members)
	} else {
		g.Name, g.next = strings.Clone(name), new(atomic.Uint64)
	}
	g.Members = append(g.Members, Sub[K]{Key: key, Filter: n.filter, Group: g.Name, Options: opts})
	if n.groups == nil {
		n.groups = make(map[string]*Group[K])
	}
	n.groups[g.Name] = g
	return false
}

func (n *node[K]) removeMember(name string, key K) bool {
	old := n.groups[name]
	if old == nil {
		return false
	}
	for i := range old.Members {
		if old.Members[i].Key != key {
			continue
		}
		if len(old.Members) == 1 {
			delete(n.groups, name)
			if len(n.groups) == 0 {
				n.groups = nil
			}
			return true
		}
		members := make([]Sub[K], 0, len(old.Members)-1)
		members = append(append(members, old.Members[:i]...), old.Members[i+1:]...)
		n.groups[name] = &Group[K]{Name: old.Name, Filter: old.Filter, Members: members, next: old.next}
		return true
	}
	return false
}

// Walk calls fn for every subscription (with Group set for shared ones) until
// fn returns false. It works on a snapshot taken when it is called and runs
// fn without holding the trie's lock, so fn may call Add and Remove (an ACL
// re-check removes what is no longer allowed).
func (t *Tree[K]) Walk(fn func(s Sub[K]) bool) {
	t.mu.RLock()
	all := make([]Sub[K], 0, t.count.Load())
	var visit func(n *node[K])
	visit = func(n *node[K]) {
		all = append(all, n.subs...)
		for _, g := range n.groups {
			all = append(all, g.Members...)
		}
		for _, c := range n.literal {
			visit(c)
		}
		if n.plus != nil {
			visit(n.plus)
		}
		if n.hash != nil {
			visit(n.hash)
		}
	}
	visit(t.root)
	t.mu.RUnlock()
	for _, s := range all {
		if !fn(s) {
			return
		}
	}
}
