package auth

import (
	"strings"
	"testing"

	"github.com/fleetmq/fleetmq/broker/topic"
)

// refMatch is a deliberately naive MQTT matcher, written straight from the
// spec text, that the compiled matcher is checked against.
func refMatch(filter, topic string) bool {
	// [MQTT-4.7.2-1]
	if strings.HasPrefix(topic, "$") && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, fl := range f {
		if fl == "#" {
			return true
		}
		if i >= len(t) || fl != "+" && fl != t[i] {
			return false
		}
	}
	return len(f) == len(t)
}

// universe builds every topic of up to maxLevels levels over the given
// level values, and every valid filter over them plus the wildcards.
func universe(values []string, maxLevels int) (topics, filters []string) {
	var build func(prefix []string, alphabet []string, out *[]string)
	build = func(prefix []string, alphabet []string, out *[]string) {
		if len(prefix) > 0 {
			*out = append(*out, strings.Join(prefix, "/"))
		}
		if len(prefix) == maxLevels {
			return
		}
		for _, v := range alphabet {
			build(append(prefix[:len(prefix):len(prefix)], v), alphabet, out)
		}
	}
	build(nil, values, &topics)
	var all []string
	build(nil, append([]string{"+", "#"}, values...), &all)
	for _, f := range all {
		if f != "" && validateFilter(f) == nil {
			filters = append(filters, f)
		}
	}
	// A topic is at least one character long [MQTT-4.7.3-1].
	topics = deleteEmpty(topics)
	return topics, filters
}

func deleteEmpty(s []string) []string {
	out := s[:0]
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// TestFilterRelationsExhaustive checks matchesTopic, overlaps and covers
// against their definitions (some topic matches both filters; every topic
// the subscription matches, the rule matches too) over every filter and
// topic of up to three levels built from literal, empty, '$' and wildcard
// levels. Four-level topics are included so that "deeper than the filter"
// counterexamples exist.
func TestFilterRelationsExhaustive(t *testing.T) {
	topics, _ := universe([]string{"a", "b", "$x", ""}, 4)
	_, filters := universe([]string{"a", "$x", ""}, 3)
	id := &identity{}
	matches := make([][]bool, len(filters))
	compiled := make([]*filter, len(filters))
	for i, f := range filters {
		compiled[i] = compileFilter(f, false)
		matches[i] = make([]bool, len(topics))
		for j, name := range topics {
			got, want := compiled[i].matchesTopic(name, id), refMatch(f, name)
			if got != want {
				t.Fatalf("matchesTopic(%q, %q) = %v, want %v", f, name, got, want)
			}
			// The router decides what a subscription receives with
			// broker/topic; the ACL must agree with it on every topic.
			if router := topic.MatchFilter(f, name); router != got {
				t.Fatalf("matchesTopic(%q, %q) = %v, but topic.MatchFilter says %v", f, name, got, router)
			}
			matches[i][j] = want
		}
	}
	for i, rule := range filters {
		for k, sub := range filters {
			overlap, cover := false, true
			for j := range topics {
				overlap = overlap || matches[i][j] && matches[k][j]
				cover = cover && (!matches[k][j] || matches[i][j])
			}
			if got := compiled[i].overlaps(sub, id); got != overlap {
				t.Errorf("%q overlaps %q = %v, want %v", rule, sub, got, overlap)
			}
			if got := compiled[i].covers(sub, id); got != cover {
				t.Errorf("%q covers %q = %v, want %v", rule, sub, got, cover)
			}
		}
	}
	t.Logf("%d filters x %d topics", len(filters), len(topics))
}

// TestTemplateLevels checks that a pattern filter behaves exactly like the
// filter with its placeholders written out.
func TestTemplateLevels(t *testing.T) {
	id := newIdentity(Client{ClientID: "c1", Username: "bob"}, true)
	topics, filters := universe([]string{"bob", "c1", "bob-c1", "x", "bobc1"}, 3)
	templates := map[string]string{
		"%u/+":        "bob/+",
		"+/%c/#":      "+/c1/#",
		"%u-%c/x":     "bob-c1/x",
		"%u%c":        "bobc1",
		"x/%u/%c":     "x/bob/c1",
		"%%u/x":       "%bob/x",
		"a%z/%c":      "a%z/c1",
		"%u-%u/%c-%c": "bob-bob/c1-c1",
	}
	for tmpl, literal := range templates {
		ft, fl := compileFilter(tmpl, true), compileFilter(literal, false)
		if ft.stateFor(&id) != patternApplies {
			t.Fatalf("%q does not apply to %+v", tmpl, id)
		}
		for _, name := range topics {
			if got, want := ft.matchesTopic(name, &id), fl.matchesTopic(name, &id); got != want {
				t.Errorf("%q matches %q = %v, %q gives %v", tmpl, name, got, literal, want)
			}
		}
		for _, sub := range filters {
			if got, want := ft.overlaps(sub, &id), fl.overlaps(sub, &id); got != want {
				t.Errorf("%q overlaps %q = %v, %q gives %v", tmpl, sub, got, literal, want)
			}
			if got, want := ft.covers(sub, &id), fl.covers(sub, &id); got != want {
				t.Errorf("%q covers %q = %v, %q gives %v", tmpl, sub, got, literal, want)
			}
		}
	}
}

func TestValidateFilter(t *testing.T) {
	for _, f := range []string{"#", "+", "a", "/", "a//b", "+/+/#", "$SYS/#", "a b/c d", "ü/√", "a/%c"} {
		if err := validateFilter(f); err != nil {
			t.Errorf("validateFilter(%q) = %v, want nil", f, err)
		}
	}
	for _, f := range []string{"", "#/a", "a#", "a/b+", "++", "a\x00", "\xc3", strings.Repeat("a", maxFilterLen+1)} {
		if err := validateFilter(f); err == nil {
			t.Errorf("validateFilter(%q) = nil, want an error", f)
		}
	}
}
