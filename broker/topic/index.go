package topic

import (
	"strings"
	"sync"
)

// Index maps concrete topic names to values and finds them by filter: the
// retained-message store's index. Safe for concurrent use.
//
// It is a trie of topic levels, so a filter visits only the branches it can
// match: a literal level is one map lookup, and only '+' and '#' fan out.
type Index[V any] struct {
	mu   sync.RWMutex
	root *indexNode[V]
	n    int
	hits sync.Pool // *[]indexHit[V], reused by Match
}

type indexNode[V any] struct {
	parent   *indexNode[V]
	token    string // key in parent.children
	children map[string]*indexNode[V]
	topic    string // the full topic name, set while has is true
	value    V
	has      bool
}

// indexHit is one (topic, value) pair found by Match.
type indexHit[V any] struct {
	topic string
	value V
}

// NewIndex returns an empty index.
func NewIndex[V any]() *Index[V] {
	return &Index[V]{root: &indexNode[V]{}}
}

// Set stores v under topic, replacing any previous value. The index keeps
// its own copy of topic.
func (x *Index[V]) Set(topic string, v V) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := x.root
	for start := 0; start <= len(topic); {
		level, next := nextLevel(topic, start)
		c := n.children[level]
		if c == nil {
			c = &indexNode[V]{parent: n, token: strings.Clone(level)}
			if n.children == nil {
				n.children = make(map[string]*indexNode[V])
			}
			n.children[c.token] = c
		}
		n, start = c, next
	}
	if !n.has {
		n.topic, n.has = strings.Clone(topic), true
		x.n++
	}
	n.value = v
}

// find returns the node of topic, or nil. The caller holds mu.
func (x *Index[V]) find(topic string) *indexNode[V] {
	n := x.root
	for start := 0; start <= len(topic) && n != nil; {
		level, next := nextLevel(topic, start)
		n, start = n.children[level], next
	}
	return n
}

// Get returns the value stored under topic.
func (x *Index[V]) Get(topic string) (V, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if n := x.find(topic); n != nil && n.has {
		return n.value, true
	}
	var zero V
	return zero, false
}

// Delete removes topic and reports whether it was present. Nodes left empty
// are pruned so the index does not grow with topics that come and go.
func (x *Index[V]) Delete(topic string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := x.find(topic)
	if n == nil || !n.has {
		return false
	}
	var zero V
	n.value, n.topic, n.has = zero, "", false
	x.n--
	for n != x.root && !n.has && len(n.children) == 0 {
		p := n.parent
		delete(p.children, n.token)
		if len(p.children) == 0 {
			p.children = nil
		}
		n.parent = nil
		n = p
	}
	return true
}

// Len returns the number of stored topics.
func (x *Index[V]) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.n
}

// Match calls fn for every stored topic that filter matches, until fn
// returns false. The filter is a plain filter (no $share prefix). Topics
// starting with '$' are not matched by a filter starting with a wildcard
// [MQTT-4.7.2-1].
//
// The matches are collected first and fn runs without the index's lock, so
// fn may block (queueing a retained message to a slow session) or call Set
// and Delete (dropping an expired message) without stalling or deadlocking
// the index.
func (x *Index[V]) Match(filter string, fn func(topic string, v V) bool) {
	hits, _ := x.hits.Get().(*[]indexHit[V])
	if hits == nil {
		hits = new([]indexHit[V])
	}
	x.mu.RLock()
	*hits = x.root.collect(filter, 0, true, *hits)
	x.mu.RUnlock()
	for _, h := range *hits {
		if !fn(h.topic, h.value) {
			break
		}
	}
	if cap(*hits) <= maxScratch {
		clear(*hits) // do not keep deleted values alive
		*hits = (*hits)[:0]
		x.hits.Put(hits)
	}
}

// collect appends the stored topics below n that the filter matches from
// byte offset start on. atRoot marks the first level, where wildcards skip
// '$' topics.
func (n *indexNode[V]) collect(filter string, start int, atRoot bool, hits []indexHit[V]) []indexHit[V] {
	for {
		if start > len(filter) {
			if n.has {
				hits = append(hits, indexHit[V]{n.topic, n.value})
			}
			return hits
		}
		level, next := nextLevel(filter, start)
		switch level {
		case "#":
			if next <= len(filter) {
				return hits // '#' before the last level matches nothing, as in MatchFilter
			}
			if n.has {
				hits = append(hits, indexHit[V]{n.topic, n.value}) // "a/#" matches "a"
			}
			for token, c := range n.children {
				if atRoot && strings.HasPrefix(token, "$") {
					continue // [MQTT-4.7.2-1]
				}
				hits = c.appendAll(hits)
			}
			return hits
		case "+":
			for token, c := range n.children {
				if atRoot && strings.HasPrefix(token, "$") {
					continue // [MQTT-4.7.2-1]
				}
				hits = c.collect(filter, next, false, hits)
			}
			return hits
		}
		c := n.children[level]
		if c == nil {
			return hits
		}
		n, start, atRoot = c, next, false
	}
}

// appendAll appends n and every stored topic below it.
func (n *indexNode[V]) appendAll(hits []indexHit[V]) []indexHit[V] {
	if n.has {
		hits = append(hits, indexHit[V]{n.topic, n.value})
	}
	for _, c := range n.children {
		hits = c.appendAll(hits)
	}
	return hits
}
