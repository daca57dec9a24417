package topic

import (
	"errors"
	"slices"
	"testing"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// FuzzMatchFilter checks that the trie and the index agree with the
// reference MatchFilter for any filter and topic name.
func FuzzMatchFilter(f *testing.F) {
	for _, tc := range specMatches {
		f.Add(tc.filter, tc.topic)
	}
	f.Add("$share/g/a/+", "a/b")
	f.Add("$share/g/#", "$SYS/x")
	f.Add("$share//a", "$share//a")
	f.Fuzz(func(t *testing.T, filter, topic string) {
		if ValidateName(topic, 0, 0) != nil {
			return // Match is only ever given valid topic names
		}
		group, inner, shared, err := ParseShared(filter)
		if !shared || err != nil {
			inner, shared = filter, false // the trie keeps a malformed $share filter literally
		}
		want := MatchFilter(inner, topic)

		tr := NewTree[int](4)
		tr.Add(1, filter, Options{})
		tr.Add(2, "#", Options{}) // a neighbour that must not disturb the result
		r := tr.Match(topic)
		got := false
		for _, s := range r.Subs {
			if s.Key == 1 {
				got = true
				if s.Filter != inner || s.Group != "" {
					t.Fatalf("entry %+v, want filter %q", s, inner)
				}
			}
		}
		for _, g := range r.Groups {
			got = true
			if !shared || g.Name != group || g.Filter != inner || len(g.Members) != 1 {
				t.Fatalf("group %+v, want %q/%q with one member", g, group, inner)
			}
		}
		if got != want {
			t.Fatalf("Tree.Match(%q) with filter %q: matched=%v, MatchFilter(%q)=%v", topic, filter, got, inner, want)
		}
		if r2 := tr.Match(topic); !slices.Equal(describe(r2), describe(r)) {
			t.Fatalf("a repeated Match(%q) = %q, the first gave %q", topic, describe(r2), describe(r))
		}
		if !tr.Remove(1, filter) || tr.Count() != 1 || tr.nodeCount() != 2 {
			t.Fatalf("Remove(%q) left Count()=%d, %d nodes", filter, tr.Count(), tr.nodeCount())
		}

		if shared {
			return // the index takes plain filters only
		}
		x := NewIndex[int]()
		x.Set(topic, 1)
		x.Set("other/level", 2)
		gotIndex := false
		x.Match(filter, func(tp string, _ int) bool {
			gotIndex = gotIndex || tp == topic
			return true
		})
		if gotIndex != want {
			t.Fatalf("Index.Match(%q) found %q: %v, MatchFilter=%v", filter, topic, gotIndex, want)
		}
	})
}

// FuzzValidateFilter checks that validation never panics, that its errors
// carry the right reason code, and that a filter it accepts behaves as a
// filter: it matches a topic made of its own literal levels.
func FuzzValidateFilter(f *testing.F) {
	for _, s := range []string{"a/b", "#", "+/+", "a/#", "$share/g/a/+", "$share//x", "a#", "a/#/b", "", "\x00", "$share/g/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		err := ValidateFilter(filter, 0, 0)
		if err != nil {
			if !errors.Is(err, packet.TopicFilterInvalid) {
				t.Fatalf("ValidateFilter(%q) = %v, not TopicFilterInvalid", filter, err)
			}
			return
		}
		if err := ValidateFilter(filter, len(filter), 0); err != nil {
			t.Fatalf("ValidateFilter(%q) with maxLen = its length: %v", filter, err)
		}
		if _, _, _, err := ParseShared(filter); err != nil {
			t.Fatalf("ValidateFilter accepted %q but ParseShared rejects it: %v", filter, err)
		}
		if ValidateName(filter, 0, 0) == nil && !MatchFilter(filter, filter) {
			t.Fatalf("filter %q without wildcards does not match itself", filter)
		}
		if ValidateName(filter, 0, 0) != nil && ValidateFilter(filter+"/x", 0, 0) == nil && filter[len(filter)-1] == '#' {
			t.Fatalf("ValidateFilter accepted %q with '#' before the last level", filter+"/x")
		}
	})
}
