package topic

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// nodeCount returns the number of trie nodes, root included.
func (t *Tree[K]) nodeCount() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var count func(n *node[K]) int
	count = func(n *node[K]) int {
		c := 1
		for _, ch := range n.literal {
			c += count(ch)
		}
		if n.plus != nil {
			c += count(n.plus)
		}
		if n.hash != nil {
			c += count(n.hash)
		}
		return c
	}
	return count(t.root)
}

// describe renders a result as sorted lines so tests compare it as a set:
// "key filter qos" for subscriptions, "$share/name/filter: key,key" for groups.
func describe[K comparable](r *Result[K]) []string {
	var out []string
	for _, s := range r.Subs {
		out = append(out, fmt.Sprintf("%v %s q%d", s.Key, s.Filter, s.QoS))
	}
	for _, g := range r.Groups {
		var keys []string
		for _, m := range g.Members {
			if m.Group != g.Name || m.Filter != g.Filter {
				out = append(out, fmt.Sprintf("BAD MEMBER %+v of %s/%s", m, g.Name, g.Filter))
			}
			keys = append(keys, fmt.Sprintf("%v", m.Key))
		}
		slices.Sort(keys)
		out = append(out, fmt.Sprintf("$share/%s/%s: %s", g.Name, g.Filter, strings.Join(keys, ",")))
	}
	slices.Sort(out)
	return out
}

func assertMatch[K comparable](t *testing.T, tr *Tree[K], topic string, want ...string) {
	t.Helper()
	got := describe(tr.Match(topic))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Match(%q):\n got  %q\n want %q", topic, got, want)
	}
}

func TestTreeOverlappingSubscriptionsOfOneKey(t *testing.T) {
	for _, size := range []int{0, 64} {
		t.Run(fmt.Sprintf("cache=%d", size), func(t *testing.T) {
			tr := NewTree[string](size)
			tr.Add("c1", "sport/tennis/player1", Options{QoS: 0})
			tr.Add("c1", "sport/tennis/+", Options{QoS: 1})
			tr.Add("c1", "sport/#", Options{QoS: 2})
			tr.Add("c1", "#", Options{QoS: 0})
			tr.Add("c2", "sport/+", Options{QoS: 1})

			assertMatch(t, tr, "sport/tennis/player1",
				"c1 sport/tennis/player1 q0", "c1 sport/tennis/+ q1", "c1 sport/# q2", "c1 # q0")
			assertMatch(t, tr, "sport", "c1 sport/# q2", "c1 # q0")
			assertMatch(t, tr, "sport/", "c1 sport/# q2", "c1 # q0", "c2 sport/+ q1")
			assertMatch(t, tr, "news", "c1 # q0")
			assertMatch(t, tr, "$SYS/broker") // [MQTT-4.7.2-1]
			if tr.Count() != 5 {
				t.Errorf("Count() = %d, want 5", tr.Count())
			}
		})
	}
}

func TestTreeDollarTopics(t *testing.T) {
	tr := NewTree[string](16)
	tr.Add("all", "#", Options{})
	tr.Add("plus", "+/monitor/Clients", Options{})
	tr.Add("sys", "$SYS/#", Options{})
	tr.Add("mon", "$SYS/monitor/+", Options{})
	tr.Add("g1", "$share/g/#", Options{})
	tr.Add("deep", "a/+/#", Options{})

	assertMatch(t, tr, "$SYS/monitor/Clients", "sys $SYS/# q0", "mon $SYS/monitor/+ q0")
	assertMatch(t, tr, "x/monitor/Clients", "all # q0", "plus +/monitor/Clients q0", "$share/g/#: g1")
	// Only the first level is special.
	assertMatch(t, tr, "a/$x/y", "all # q0", "deep a/+/# q0", "$share/g/#: g1")
}

func TestTreeSharedGroups(t *testing.T) {
	tr := NewTree[string](64)
	tr.Add("c1", "$share/g/sport/+", Options{QoS: 1})
	tr.Add("c2", "$share/g/sport/+", Options{QoS: 2})
	tr.Add("c3", "$share/h/sport/#", Options{})
	tr.Add("c1", "sport/tennis", Options{})
	tr.Add("c4", "$share/g/sport/tennis", Options{}) // same group name, other filter: another group

	assertMatch(t, tr, "sport/tennis",
		"c1 sport/tennis q0",
		"$share/g/sport/+: c1,c2",
		"$share/h/sport/#: c3",
		"$share/g/sport/tennis: c4")
	assertMatch(t, tr, "sport", "$share/h/sport/#: c3")
	if tr.Count() != 5 {
		t.Errorf("Count() = %d, want 5", tr.Count())
	}

	// The member options are the ones given at Add.
	g := groupOf(t, tr.Match("sport/golf"), "g")
	for _, m := range g.Members {
		want := map[string]byte{"c1": 1, "c2": 2}[m.Key]
		if m.QoS != want {
			t.Errorf("member %s QoS = %d, want %d", m.Key, m.QoS, want)
		}
	}
}

func groupOf(t *testing.T, r *Result[string], name string) *Group[string] {
	t.Helper()
	for _, g := range r.Groups {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no group %q in result %q", name, describe(r))
	return nil
}

func TestGroupRoundRobinSurvivesChurn(t *testing.T) {
	tr := NewTree[string](64)
	tr.Add("a", "$share/g/t", Options{})
	tr.Add("b", "$share/g/t", Options{})
	g := groupOf(t, tr.Match("t"), "g")
	if got := []int{g.Next(), g.Next(), g.Next()}; !slices.Equal(got, []int{0, 1, 0}) {
		t.Fatalf("Next() sequence = %v, want [0 1 0]", got)
	}

	// A new member invalidates the cache and republishes the group; the
	// rotation must carry on rather than restart at the first member.
	tr.Add("c", "$share/g/t", Options{})
	g2 := groupOf(t, tr.Match("t"), "g")
	if len(g.Members) != 2 {
		t.Errorf("old snapshot changed: %d members, want 2", len(g.Members))
	}
	if len(g2.Members) != 3 {
		t.Fatalf("new snapshot has %d members, want 3", len(g2.Members))
	}
	if got := []int{g2.Next(), g2.Next(), g2.Next()}; !slices.Equal(got, []int{0, 1, 2}) {
		// The counter stood at 3 after three calls: 3%3, 4%3, 5%3.
		t.Fatalf("Next() after churn = %v, want [0 1 2]", got)
	}

	// The last member leaving removes the group from results.
	for _, k := range []string{"a", "b", "c"} {
		if !tr.Remove(k, "$share/g/t") {
			t.Fatalf("Remove(%s) = false", k)
		}
	}
	assertMatch(t, tr, "t")
	var zero Group[string]
	if zero.Next() != 0 {
		t.Error("Next on an empty group must return 0")
	}
}

func TestTreeReplaceOptions(t *testing.T) {
	tr := NewTree[string](64)
	if tr.Add("c1", "a/+", Options{QoS: 0}) {
		t.Fatal("first Add reported existed")
	}
	assertMatch(t, tr, "a/b", "c1 a/+ q0") // now cached
	if !tr.Add("c1", "a/+", Options{QoS: 2, SubscriptionID: 7}) {
		t.Fatal("second Add did not report existed")
	}
	assertMatch(t, tr, "a/b", "c1 a/+ q2")
	if id := tr.Match("a/b").Subs[0].SubscriptionID; id != 7 {
		t.Errorf("SubscriptionID = %d, want 7", id)
	}

	tr.Add("c1", "$share/g/a/+", Options{QoS: 1})
	if !tr.Add("c1", "$share/g/a/+", Options{QoS: 2}) {
		t.Fatal("replacing a group member did not report existed")
	}
	if q := groupOf(t, tr.Match("a/b"), "g").Members[0].QoS; q != 2 {
		t.Errorf("member QoS = %d, want 2", q)
	}
	if tr.Count() != 2 {
		t.Errorf("Count() = %d, want 2", tr.Count())
	}
}

func TestTreeRemoveAndPrune(t *testing.T) {
	tr := NewTree[int](64)
	filters := []string{
		"a", "a/b", "a/b/c", "a/+/c", "a/#", "+", "#", "/", "//", "a//b", "+/+/#",
		"$SYS/#", "$share/g/a/b", "$share/h/a/b", "$share/g/x/+/y",
	}
	for k := range 40 { // past subIndexThreshold, so the key map is exercised too
		for _, f := range filters {
			tr.Add(k, f, Options{})
		}
	}
	if want := 40 * len(filters); tr.Count() != want {
		t.Fatalf("Count() = %d, want %d", tr.Count(), want)
	}
	if tr.Remove(0, "a/b/c/d") || tr.Remove(0, "a/+/d") || tr.Remove(99, "a/b") || tr.Remove(0, "$share/zz/a/b") {
		t.Fatal("Remove of something never added reported existed")
	}
	if tr.Remove(0, "a/b") != true || tr.Remove(0, "a/b") != false {
		t.Fatal("Remove twice: want true then false")
	}
	// Remove in an order that leaves leaves before parents and the reverse.
	for k := range 40 {
		for i, f := range filters {
			if k%2 == 1 {
				f = filters[len(filters)-1-i]
			}
			if k == 0 && f == "a/b" {
				continue
			}
			if !tr.Remove(k, f) {
				t.Fatalf("Remove(%d, %q) = false", k, f)
			}
		}
	}
	if tr.Count() != 0 {
		t.Errorf("Count() = %d after removing everything", tr.Count())
	}
	if n := tr.nodeCount(); n != 1 {
		t.Errorf("trie has %d nodes after removing everything, want 1 (the root)", n)
	}
	assertMatch(t, tr, "a/b")

	// Partial pruning keeps what is still needed.
	tr.Add(1, "a/b/c/d", Options{})
	tr.Add(1, "a/b", Options{})
	tr.Remove(1, "a/b/c/d")
	if n := tr.nodeCount(); n != 3 {
		t.Errorf("trie has %d nodes, want 3 (root, a, a/b)", n)
	}
	assertMatch(t, tr, "a/b", "1 a/b q0")
}

func TestTreeCacheInvalidation(t *testing.T) {
	tr := NewTree[string](64)
	tr.Add("c1", "a/b", Options{})
	first := tr.Match("a/b")
	if tr.Match("a/b") != first {
		t.Error("a repeated Match without changes did not come from the cache")
	}
	assertMatch(t, tr, "x") // an empty result is cached too

	tr.Add("c2", "+/b", Options{})
	assertMatch(t, tr, "a/b", "c1 a/b q0", "c2 +/b q0")
	tr.Add("c3", "#", Options{})
	assertMatch(t, tr, "x", "c3 # q0")
	tr.Remove("c1", "a/b")
	assertMatch(t, tr, "a/b", "c2 +/b q0", "c3 # q0")
	if got := describe(first); !slices.Equal(got, []string{"c1 a/b q0"}) {
		t.Errorf("a published result changed afterwards: %q", got)
	}
	// A Remove of nothing does not need to drop the cache.
	r := tr.Match("a/b")
	tr.Remove("nobody", "a/b")
	if tr.Match("a/b") != r {
		t.Error("a Remove that changed nothing invalidated the cache")
	}
}

// TestTreeStaleResultNotCached puts an Add between a Match's trie walk and
// its cache store. That Match may return the old result (it started first),
// but the next Match must see the Add.
func TestTreeStaleResultNotCached(t *testing.T) {
	tr := NewTree[string](16)
	tr.Add("c1", "a/b", Options{})
	tr.afterWalk = func() {
		tr.afterWalk = nil
		tr.Add("c2", "a/+", Options{})
	}
	assertMatch(t, tr, "a/b", "c1 a/b q0")
	assertMatch(t, tr, "a/b", "c1 a/b q0", "c2 a/+ q0")
}

// TestTreeSmallCacheStaysCorrect cycles through more topics than the cache
// holds so that entries are evicted and replaced all the time.
func TestTreeSmallCacheStaysCorrect(t *testing.T) {
	for _, size := range []int{1, 2, 3, 7} {
		tr := NewTree[int](size)
		for i := range 20 {
			tr.Add(i, fmt.Sprintf("t/%d", i), Options{})
		}
		for round := range 5 {
			for i := range 20 {
				r := tr.Match(fmt.Sprintf("t/%d", i))
				if len(r.Subs) != 1 || r.Subs[0].Key != i {
					t.Fatalf("size %d round %d: Match(t/%d) = %q", size, round, i, describe(r))
				}
			}
		}
	}
}

func TestTreeMatchBytes(t *testing.T) {
	tr := NewTree[string](8)
	tr.Add("c1", "a/+", Options{})
	buf := []byte("a/b")
	r := tr.MatchBytes(buf)
	copy(buf, "x/y") // the connection reuses its read buffer
	if got := describe(r); !slices.Equal(got, []string{"c1 a/+ q0"}) {
		t.Errorf("MatchBytes = %q", got)
	}
	// The cache must have kept its own copy of "a/b": a hit proves it.
	if tr.Match("a/b") != r {
		t.Error("the cached entry for a/b changed with the caller's buffer")
	}
	assertMatch(t, tr, "x/y")
	if r := tr.MatchBytes(nil); len(r.Subs) != 0 {
		t.Errorf("MatchBytes(nil) = %q", describe(r))
	}
}

func TestTreeWalk(t *testing.T) {
	tr := NewTree[string](8)
	tr.Add("c1", "a/#", Options{QoS: 1})
	tr.Add("c1", "$share/g/a/#", Options{QoS: 2})
	tr.Add("c2", "$share/g/a/#", Options{})
	tr.Add("c2", "b", Options{})

	var got []string
	tr.Walk(func(s Sub[string]) bool {
		got = append(got, fmt.Sprintf("%s %s %q q%d", s.Key, s.Filter, s.Group, s.QoS))
		return true
	})
	slices.Sort(got)
	want := []string{`c1 a/# "" q1`, `c1 a/# "g" q2`, `c2 a/# "g" q0`, `c2 b "" q0`}
	if !slices.Equal(got, want) {
		t.Errorf("Walk visited %q, want %q", got, want)
	}

	calls := 0
	tr.Walk(func(Sub[string]) bool { calls++; return false })
	if calls != 1 {
		t.Errorf("Walk called fn %d times after it returned false, want 1", calls)
	}

	// An ACL re-check removes subscriptions from inside Walk.
	tr.Walk(func(s Sub[string]) bool {
		if s.Key == "c2" {
			f := s.Filter
			if s.Group != "" {
				f = "$share/" + s.Group + "/" + f
			}
			tr.Remove(s.Key, f)
		}
		return true
	})
	assertMatch(t, tr, "a/x", "c1 a/# q1", "$share/g/a/#: c1")
	assertMatch(t, tr, "b")
}

// TestTreeMatchesReference compares the trie with MatchFilter over random
// filters and topics drawn from a small alphabet, so that overlaps, empty
// levels, '$' topics and '#'-parent matches all occur often.
func TestTreeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	levels := []string{"a", "b", "", "$s"}
	randTopic := func() string {
		n := 1 + rng.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = levels[rng.IntN(len(levels))]
		}
		return strings.Join(parts, "/")
	}
	randFilter := func() string {
		n := 1 + rng.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			switch rng.IntN(5) {
			case 0:
				parts[i] = "+"
			case 1:
				if i == n-1 {
					parts[i] = "#"
					continue
				}
				fallthrough
			default:
				parts[i] = levels[rng.IntN(len(levels))]
			}
		}
		return strings.Join(parts, "/")
	}

	for _, size := range []int{0, 16} {
		tr := NewTree[int](size)
		var filters []string
		type entry struct {
			key    int
			filter string
		}
		live := map[entry]bool{}
		for step := range 3000 {
			// Mostly adds, some removes, so the set grows and churns.
			if step%4 == 3 && len(filters) > 0 {
				i := rng.IntN(len(filters))
				e := entry{i % 3, filters[i]}
				tr.Remove(e.key, e.filter)
				delete(live, e)
			} else {
				f := randFilter()
				if rng.IntN(4) == 0 {
					f = "$share/g" + fmt.Sprint(rng.IntN(2)) + "/" + f
				}
				filters = append(filters, f)
				e := entry{(len(filters) - 1) % 3, f}
				tr.Add(e.key, e.filter, Options{})
				live[e] = true
			}
			topic := randTopic()
			var want []string
			for e := range live {
				group, inner, shared, err := ParseShared(e.filter)
				if !shared || err != nil {
					// The trie keeps a malformed $share filter literally.
					inner, shared = e.filter, false
				}
				if !MatchFilter(inner, topic) {
					continue
				}
				if shared {
					want = append(want, fmt.Sprintf("member %s %s %d", group, inner, e.key))
				} else {
					want = append(want, fmt.Sprintf("%d %s q0", e.key, inner))
				}
			}
			var got []string
			r := tr.Match(topic)
			got = append(got, describe(&Result[int]{Subs: r.Subs})...)
			for _, g := range r.Groups {
				for _, m := range g.Members {
					got = append(got, fmt.Sprintf("member %s %s %d", g.Name, g.Filter, m.Key))
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("cache %d step %d: Match(%q)\n got  %q\n want %q", size, step, topic, got, want)
			}
			if tr.Count() != len(live) {
				t.Fatalf("Count() = %d, want %d", tr.Count(), len(live))
			}
		}
		for e := range live {
			tr.Remove(e.key, e.filter)
		}
		if n := tr.nodeCount(); n != 1 {
			t.Errorf("cache %d: %d nodes left after removing everything", size, n)
		}
	}
}

// TestTreeConcurrent runs writers and readers together (meant for -race).
// Each writer checks that its own Add is visible to its next Match and its
// Remove to the one after, while readers keep filling the cache with results
// built at older generations: a stale result cached under a newer generation
// would fail the writer's check.
func TestTreeConcurrent(t *testing.T) {
	const writers, rounds = 4, 300
	tr := NewTree[int](32)
	tr.Add(-1, "t/#", Options{}) // always there
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, writers+2)
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				res := tr.Match(fmt.Sprintf("t/%d", (i+r)%writers))
				if !slices.ContainsFunc(res.Subs, func(s Sub[int]) bool { return s.Key == -1 }) {
					errs <- "a Match lost the permanent subscription"
					return
				}
				for _, g := range res.Groups {
					if len(g.Members) == 0 {
						errs <- "a Match returned an empty group"
						return
					}
					g.Next()
				}
			}
		}()
	}
	var ww sync.WaitGroup
	for w := range writers {
		ww.Add(1)
		go func() {
			defer ww.Done()
			topic := fmt.Sprintf("t/%d", w)
			has := func(key int) bool {
				r := tr.Match(topic)
				if slices.ContainsFunc(r.Subs, func(s Sub[int]) bool { return s.Key == key }) {
					return true
				}
				for _, g := range r.Groups {
					if slices.ContainsFunc(g.Members, func(s Sub[int]) bool { return s.Key == key }) {
						return true
					}
				}
				return false
			}
			for i := range rounds {
				f := topic
				if i%3 == 0 {
					f = "$share/g/" + topic
				}
				tr.Add(w, f, Options{})
				if !has(w) {
					errs <- fmt.Sprintf("writer %d: own Add of %q not visible", w, f)
					return
				}
				tr.Remove(w, f)
				if has(w) {
					errs <- fmt.Sprintf("writer %d: own Remove of %q not visible", w, f)
					return
				}
			}
		}()
	}
	ww.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if tr.Count() != 1 || tr.nodeCount() != 3 {
		t.Errorf("after the run: Count() = %d, nodes = %d; want 1 and 3", tr.Count(), tr.nodeCount())
	}
}
