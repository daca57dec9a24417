package topic

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

func (x *Index[V]) nodeCount() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var count func(n *indexNode[V]) int
	count = func(n *indexNode[V]) int {
		c := 1
		for _, ch := range n.children {
			c += count(ch)
		}
		return c
	}
	return count(x.root)
}

func matchAll[V any](x *Index[V], filter string) []string {
	var got []string
	x.Match(filter, func(topic string, v V) bool {
		got = append(got, fmt.Sprintf("%s=%v", topic, v))
		return true
	})
	slices.Sort(got)
	return got
}

func TestIndexSetGetDelete(t *testing.T) {
	x := NewIndex[int]()
	x.Set("a/b", 1)
	x.Set("a", 2)
	x.Set("a/b", 3) // replaces
	x.Set("a//b", 4)
	x.Set("/", 5)
	if x.Len() != 4 {
		t.Fatalf("Len() = %d, want 4", x.Len())
	}
	for topic, want := range map[string]int{"a/b": 3, "a": 2, "a//b": 4, "/": 5} {
		if v, ok := x.Get(topic); !ok || v != want {
			t.Errorf("Get(%q) = %d, %v; want %d, true", topic, v, ok, want)
		}
	}
	for _, topic := range []string{"a/", "", "a/b/c", "b", "//"} {
		if _, ok := x.Get(topic); ok {
			t.Errorf("Get(%q) found a value that was never set", topic)
		}
	}
	if x.Delete("a/b/c") || x.Delete("") {
		t.Error("Delete of a missing topic reported true")
	}
	if !x.Delete("a") || x.Delete("a") {
		t.Error("Delete twice: want true then false")
	}
	if v, ok := x.Get("a/b"); !ok || v != 3 {
		t.Errorf("deleting the parent topic lost a/b: %d, %v", v, ok)
	}
	for _, topic := range []string{"a/b", "a//b", "/"} {
		x.Delete(topic)
	}
	if x.Len() != 0 || x.nodeCount() != 1 {
		t.Errorf("after deleting everything: Len() = %d, nodes = %d; want 0 and 1", x.Len(), x.nodeCount())
	}
}

func TestIndexMatch(t *testing.T) {
	x := NewIndex[int]()
	for i, topic := range []string{
		"sport", "sport/", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking",
		"sport/golf", "/finance", "$SYS/monitor/Clients", "$SYS", "a/$SYS",
	} {
		x.Set(topic, i)
	}
	tests := []struct {
		filter string
		want   []string
	}{
		{"sport/tennis/player1/#", []string{"sport/tennis/player1=3", "sport/tennis/player1/ranking=4"}},
		{"sport/#", []string{"sport=0", "sport/=1", "sport/golf=5", "sport/tennis=2", "sport/tennis/player1=3", "sport/tennis/player1/ranking=4"}},
		{"sport/+", []string{"sport/=1", "sport/golf=5", "sport/tennis=2"}},
		{"+/+", []string{"/finance=6", "a/$SYS=9", "sport/=1", "sport/golf=5", "sport/tennis=2"}},
		{"/+", []string{"/finance=6"}},
		{"+", []string{"sport=0"}},
		{"#", []string{"/finance=6", "a/$SYS=9", "sport=0", "sport/=1", "sport/golf=5", "sport/tennis=2", "sport/tennis/player1=3", "sport/tennis/player1/ranking=4"}},
		{"+/monitor/Clients", nil},
		{"$SYS/#", []string{"$SYS=8", "$SYS/monitor/Clients=7"}},
		{"$SYS/monitor/+", []string{"$SYS/monitor/Clients=7"}},
		{"sport/tennis", []string{"sport/tennis=2"}},
		{"sport/tennis/+/+", []string{"sport/tennis/player1/ranking=4"}},
		{"nothing/#", nil},
		{"sport/#/x", nil}, // invalid: matches nothing, as MatchFilter
	}
	for _, tc := range tests {
		slices.Sort(tc.want)
		if got := matchAll(x, tc.filter); !slices.Equal(got, tc.want) {
			t.Errorf("Match(%q) = %q, want %q", tc.filter, got, tc.want)
		}
	}

	calls := 0
	x.Match("#", func(string, int) bool { calls++; return false })
	if calls != 1 {
		t.Errorf("Match called fn %d times after it returned false, want 1", calls)
	}

	// fn may change the index (an expired retained message is dropped).
	x.Match("sport/#", func(topic string, _ int) bool {
		x.Delete(topic)
		return true
	})
	if got := matchAll(x, "#"); !slices.Equal(got, []string{"/finance=6", "a/$SYS=9"}) {
		t.Errorf("after deleting inside Match: %q", got)
	}
}

// TestIndexMatchesReference compares Index.Match with MatchFilter over
// random topics and filters.
func TestIndexMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	levels := []string{"a", "b", "", "$s"}
	randLevels := func(wild bool) string {
		n := 1 + rng.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = levels[rng.IntN(len(levels))]
			if wild && rng.IntN(4) == 0 {
				parts[i] = "+"
			}
		}
		if wild && rng.IntN(3) == 0 {
			parts[n-1] = "#"
		}
		return strings.Join(parts, "/")
	}
	x := NewIndex[int]()
	live := map[string]bool{}
	for step := range 2000 {
		topic := randLevels(false)
		if step%3 == 2 {
			x.Delete(topic)
			delete(live, topic)
		} else {
			x.Set(topic, 0)
			live[topic] = true
		}
		filter := randLevels(true)
		var want []string
		for topic := range live {
			if MatchFilter(filter, topic) {
				want = append(want, topic+"=0")
			}
		}
		slices.Sort(want)
		if got := matchAll(x, filter); !slices.Equal(got, want) {
			t.Fatalf("step %d: Match(%q)\n got  %q\n want %q", step, filter, got, want)
		}
		if x.Len() != len(live) {
			t.Fatalf("Len() = %d, want %d", x.Len(), len(live))
		}
	}
}

func TestIndexConcurrent(t *testing.T) {
	x := NewIndex[int]()
	x.Set("keep", 1)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := fmt.Sprintf("w/%d", w)
			for i := range 500 {
				x.Set(topic, i)
				if v, ok := x.Get(topic); !ok || v != i {
					t.Errorf("writer %d: Get after Set = %d, %v", w, v, ok)
					return
				}
				found := false
				x.Match("#", func(tp string, _ int) bool {
					found = found || tp == "keep"
					return true
				})
				if !found {
					t.Errorf("writer %d: Match lost the permanent topic", w)
					return
				}
				x.Delete(topic)
			}
		}()
	}
	wg.Wait()
	if x.Len() != 1 || x.nodeCount() != 2 {
		t.Errorf("after the run: Len() = %d, nodes = %d; want 1 and 2", x.Len(), x.nodeCount())
	}
}
