package topic

import (
	"errors"
	"strings"
	"testing"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// specMatches are the matching examples of MQTT 5.0 section 4.7 (and the
// non-normative comments of 4.7.1.2, 4.7.1.3 and 4.7.2), plus the empty
// level cases the section implies.
var specMatches = []struct {
	filter, topic string
	want          bool
}{
	// 4.7.1.2 Multi-level wildcard.
	{"sport/tennis/player1/#", "sport/tennis/player1", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"sport/tennis/player1/#", "sport/tennis/player2", false},
	{"sport/tennis/player1/#", "sport/tennis", false},
	{"sport/#", "sport", true}, // '#' matches the parent level
	{"#", "sport/tennis/player1", true},
	{"#", "/", true},
	// 4.7.1.3 Single-level wildcard.
	{"sport/tennis/+", "sport/tennis/player1", true},
	{"sport/tennis/+", "sport/tennis/player2", true},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true},
	{"+/+", "/finance", true},
	{"/+", "/finance", true},
	{"+", "/finance", false},
	{"sport/+/player1", "sport/tennis/player1", true},
	{"+/tennis/#", "sport/tennis/player1/ranking", true},
	{"+/tennis/#", "sport/tennis", true},
	// 4.7.2 Topics beginning with $.
	{"#", "$SYS/monitor/Clients", false},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"$SYS/#", "$SYS/monitor/Clients", true},
	{"$SYS/#", "$SYS", true},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"+", "$SYS", false},
	{"+/#", "$SYS/x", false},
	{"a/#", "a/$SYS", true}, // the rule is about the first level only
	{"+/$x", "a/$x", true},
	// 4.7.3 Topic semantics: levels are compared exactly, including empty ones.
	{"ACCOUNTS", "Accounts", false},
	{"a/b", "a/b/", false},
	{"a//b", "a//b", true},
	{"a/+/b", "a//b", true},
	{"/a", "/a", true},
	{"/a", "a", false},
	{"a/", "a/", true},
	{"a/", "a", false},
	{"a/#", "a/", true},
	{"a/b/#", "a", false},
	{"sport/tennis", "sport/tennis", true},
	{"sport/tennis", "sport/tennis2", false},
	// Not valid filters: MatchFilter stays safe and matches nothing with a
	// misplaced '#'.
	{"a/#/b", "a/x/b", false},
	{"a/#/b", "a", false},
}

func TestMatchFilter(t *testing.T) {
	for _, tc := range specMatches {
		if got := MatchFilter(tc.filter, tc.topic); got != tc.want {
			t.Errorf("MatchFilter(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name      string
		maxLen    int
		maxLevels int
		ok        bool
	}{
		{"sport/tennis/player1", 0, 0, true},
		{"/", 0, 0, true},
		{"a//b", 0, 0, true},
		{"$SYS/broker", 0, 0, true},
		{"ä/日本", 0, 0, true},
		{"", 0, 0, false},        // [MQTT-4.7.3-1]
		{"sport/+", 0, 0, false}, // [MQTT-3.3.2-2]
		{"sport/#", 0, 0, false}, // [MQTT-3.3.2-2]
		{"sport+", 0, 0, false},  // wildcards are never allowed in names
		{"a\x00b", 0, 0, false},  // [MQTT-4.7.3-2]
		{"a\xffb", 0, 0, false},  // not UTF-8
		{"abcd", 4, 0, true},     // at the length limit
		{"abcde", 4, 0, false},   // over it
		{"a/b/c", 0, 3, true},    // at the level limit
		{"a/b/c/", 0, 3, false},  // the empty fourth level counts
		{strings.Repeat("/", 9), 0, 10, true},
	}
	for _, tc := range tests {
		err := ValidateName(tc.name, tc.maxLen, tc.maxLevels)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q, %d, %d) = %v, want ok=%v", tc.name, tc.maxLen, tc.maxLevels, err, tc.ok)
		}
		if err != nil && !errors.Is(err, packet.TopicNameInvalid) {
			t.Errorf("ValidateName(%q): error %v does not wrap TopicNameInvalid", tc.name, err)
		}
	}
}

func TestValidateFilter(t *testing.T) {
	tests := []struct {
		filter    string
		maxLen    int
		maxLevels int
		ok        bool
	}{
		// 4.7.1.2 examples.
		{"sport/tennis/player1/#", 0, 0, true},
		{"#", 0, 0, true},
		{"sport/tennis/#", 0, 0, true},
		{"sport/tennis#", 0, 0, false},
		{"sport/tennis/#/ranking", 0, 0, false},
		// 4.7.1.3 examples.
		{"+", 0, 0, true},
		{"+/tennis/#", 0, 0, true},
		{"sport+", 0, 0, false},
		{"sport/+/player1", 0, 0, true},
		{"/+", 0, 0, true},
		{"+/+", 0, 0, true},
		// Other shapes.
		{"$SYS/#", 0, 0, true},
		{"/", 0, 0, true},
		{"a//b", 0, 0, true},
		{"++", 0, 0, false},
		{"+#", 0, 0, false},
		{"##", 0, 0, false},
		{"#/", 0, 0, false},
		{"a/b+/c", 0, 0, false},
		{"", 0, 0, false},      // [MQTT-4.7.3-1]
		{"a\x00", 0, 0, false}, // [MQTT-4.7.3-2]
		{"\xc3", 0, 0, false},  // truncated UTF-8
		{"abcd", 4, 0, true},
		{"abcde", 4, 0, false},
		{"a/b/#", 0, 3, true},
		{"a/b/c/#", 0, 3, false},
		// 4.8.2 Shared subscriptions.
		{"$share/g/sport/#", 0, 0, true},
		{"$share/consumer1/sport/tennis/+", 0, 0, true},
		{"$share/g/#", 0, 0, true},
		{"$share/g//", 0, 0, true},
		{"$share/g/a/b", 0, 2, true}, // the prefix does not count as levels
		{"$share/g/a/b/c", 0, 2, false},
		{"$share//sport", 0, 0, false},   // [MQTT-4.8.2-1] empty share name
		{"$share/g+/sport", 0, 0, false}, // [MQTT-4.8.2-1]
		{"$share/#/sport", 0, 0, false},  // [MQTT-4.8.2-1]
		{"$share/g", 0, 0, false},        // [MQTT-4.8.2-2]
		{"$share/g/", 0, 0, false},       // [MQTT-4.8.2-2]
		{"$share/g/a#", 0, 0, false},     // the inner filter is checked
		{"$share", 0, 0, true},           // an ordinary filter
		{"$sharex/g/a", 0, 0, true},      // an ordinary filter
	}
	for _, tc := range tests {
		err := ValidateFilter(tc.filter, tc.maxLen, tc.maxLevels)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateFilter(%q, %d, %d) = %v, want ok=%v", tc.filter, tc.maxLen, tc.maxLevels, err, tc.ok)
		}
		if err != nil && !errors.Is(err, packet.TopicFilterInvalid) {
			t.Errorf("ValidateFilter(%q): error %v does not wrap TopicFilterInvalid", tc.filter, err)
		}
	}
}

func TestParseShared(t *testing.T) {
	tests := []struct {
		filter       string
		group, inner string
		shared, ok   bool
	}{
		{"sport/#", "", "", false, true},
		{"$SYS/#", "", "", false, true},
		{"$share", "", "", false, true},
		{"$shared/g/a", "", "", false, true},
		{"$share/g/sport/#", "g", "sport/#", true, true},
		{"$share/g//", "g", "/", true, true},
		{"$share/g/$share/h/x", "g", "$share/h/x", true, true},
		{"$share/g", "", "", true, false},
		{"$share/", "", "", true, false},
		{"$share//a", "", "", true, false},
		{"$share/g/", "", "", true, false},
		{"$share/+/a", "", "", true, false},
	}
	for _, tc := range tests {
		group, inner, shared, err := ParseShared(tc.filter)
		if group != tc.group || inner != tc.inner || shared != tc.shared || (err == nil) != tc.ok {
			t.Errorf("ParseShared(%q) = %q, %q, %v, %v; want %q, %q, %v, ok=%v",
				tc.filter, group, inner, shared, err, tc.group, tc.inner, tc.shared, tc.ok)
		}
		if err != nil && !errors.Is(err, packet.TopicFilterInvalid) {
			t.Errorf("ParseShared(%q): error %v does not wrap TopicFilterInvalid", tc.filter, err)
		}
	}
}
