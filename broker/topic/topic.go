// Package topic holds MQTT topic names and filters: validation, wildcard
// matching, the subscription trie the broker routes every PUBLISH through,
// and the index the retained-message store finds topics with.
//
// The trie follows the shape of nats-server's sublist: each level keeps its
// literal children in a map and the two wildcards ('+' and '#') as separate
// pointers, so a match costs one map lookup per level plus the wildcard
// branches; a bounded cache in front of it, invalidated by a generation
// counter, makes a repeated topic cost one hash and a few loads.
//
// Topics and filters are split into levels by index arithmetic, never by
// strings.Split, so matching allocates nothing and validation allocates only
// the error it returns.
package topic

import (
	"strings"
	"unicode/utf8"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// sharePrefix starts a shared subscription filter: $share/<group>/<filter>.
const sharePrefix = "$share/"

// nextLevel returns the level of s that starts at byte offset start and the
// offset of the level after it. The returned next is len(s)+1 once the last
// level has been returned, which is how callers tell "a/" (two levels, the
// second empty) from "a" (one level).
func nextLevel(s string, start int) (level string, next int) {
	if i := strings.IndexByte(s[start:], '/'); i >= 0 {
		return s[start : start+i], start + i + 1
	}
	return s[start:], len(s) + 1
}

// ValidateName checks a topic name a client publishes to. maxLen limits the
// length in bytes and maxLevels the number of levels; values <= 0 mean no
// limit. Errors wrap packet.TopicNameInvalid.
func ValidateName(name string, maxLen, maxLevels int) error {
	if name == "" {
		// [MQTT-4.7.3-1] Topic Names are at least one character long.
		return packet.Errorf(packet.TopicNameInvalid, "topic name is empty")
	}
	if maxLen > 0 && len(name) > maxLen {
		return packet.Errorf(packet.TopicNameInvalid, "topic name is %d bytes, the limit is %d", len(name), maxLen)
	}
	levels := 1
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '/':
			levels++
		case '+', '#':
			// [MQTT-3.3.2-2] The Topic Name in a PUBLISH MUST NOT contain wildcards.
			return packet.Errorf(packet.TopicNameInvalid, "topic name %q contains the wildcard %q", name, name[i])
		case 0:
			// [MQTT-4.7.3-2] Topic Names MUST NOT include U+0000.
			return packet.Errorf(packet.TopicNameInvalid, "topic name contains the null character U+0000")
		}
	}
	if maxLevels > 0 && levels > maxLevels {
		return packet.Errorf(packet.TopicNameInvalid, "topic name has %d levels, the limit is %d", levels, maxLevels)
	}
	if !utf8.ValidString(name) {
		// [MQTT-1.5.4-1] Topic Names are UTF-8 Encoded Strings.
		return packet.Errorf(packet.TopicNameInvalid, "topic name is not valid UTF-8")
	}
	return nil
}

// ValidateFilter checks a topic filter a client subscribes or unsubscribes
// with, including the $share/<group>/<filter> form. maxLen limits the length
// of the whole filter in bytes and maxLevels the number of levels of the
// filter proper (without a $share prefix); values <= 0 mean no limit. Errors
// wrap packet.TopicFilterInvalid.
func ValidateFilter(filter string, maxLen, maxLevels int) error {
	if filter == "" {
		// [MQTT-4.7.3-1] Topic Filters are at least one character long.
		return packet.Errorf(packet.TopicFilterInvalid, "topic filter is empty")
	}
	if maxLen > 0 && len(filter) > maxLen {
		return packet.Errorf(packet.TopicFilterInvalid, "topic filter is %d bytes, the limit is %d", len(filter), maxLen)
	}
	if strings.IndexByte(filter, 0) >= 0 {
		// [MQTT-4.7.3-2] Topic Filters MUST NOT include U+0000.
		return packet.Errorf(packet.TopicFilterInvalid, "topic filter contains the null character U+0000")
	}
	if !utf8.ValidString(filter) {
		// [MQTT-1.5.4-1] Topic Filters are UTF-8 Encoded Strings.
		return packet.Errorf(packet.TopicFilterInvalid, "topic filter is not valid UTF-8")
	}
	_, inner, shared, err := ParseShared(filter)
	if err != nil {
		return err
	}
	if !shared {
		inner = filter
	}
	levels := 0
	for start := 0; start <= len(inner); {
		level, next := nextLevel(inner, start)
		levels++
		switch {
		case level == "#":
			if next <= len(inner) {
				// [MQTT-4.7.1-1] '#' MUST be the last character of the filter.
				return packet.Errorf(packet.TopicFilterInvalid, "topic filter %q has '#' before its last level", filter)
			}
		case level == "+":
		case strings.ContainsAny(level, "+#"):
			// [MQTT-4.7.1-1] '#' alone in its level; [MQTT-4.7.1-2] '+' fills its whole level.
			return packet.Errorf(packet.TopicFilterInvalid, "topic filter %q has a wildcard that is not alone in its level %q", filter, level)
		}
		start = next
	}
	if maxLevels > 0 && levels > maxLevels {
		return packet.Errorf(packet.TopicFilterInvalid, "topic filter %q has %d levels, the limit is %d", filter, levels, maxLevels)
	}
	return nil
}

// ParseShared splits a shared subscription filter "$share/<group>/<filter>"
// into its group name and inner filter. For any other filter shared is false
// and group and inner are empty. It checks the structure of the prefix only;
// ValidateFilter also checks the inner filter. Errors wrap
// packet.TopicFilterInvalid.
func ParseShared(filter string) (group, inner string, shared bool, err error) {
	if !strings.HasPrefix(filter, sharePrefix) {
		return "", "", false, nil
	}
	rest := filter[len(sharePrefix):]
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		// [MQTT-4.8.2-2] The ShareName MUST be followed by a '/' and a Topic Filter.
		return "", "", true, packet.Errorf(packet.TopicFilterInvalid, "shared subscription %q has no topic filter after the share name", filter)
	}
	group, inner = rest[:slash], rest[slash+1:]
	if group == "" {
		// [MQTT-4.8.2-1] A ShareName MUST be at least one character long.
		return "", "", true, packet.Errorf(packet.TopicFilterInvalid, "shared subscription %q has an empty share name", filter)
	}
	if strings.ContainsAny(group, "+#") {
		// [MQTT-4.8.2-1] A ShareName MUST NOT contain '/', '+' or '#'.
		return "", "", true, packet.Errorf(packet.TopicFilterInvalid, "shared subscription %q has a wildcard in its share name", filter)
	}
	if inner == "" {
		// [MQTT-4.8.2-2] ... followed by a '/' and a Topic Filter (at least one character).
		return "", "", true, packet.Errorf(packet.TopicFilterInvalid, "shared subscription %q has an empty topic filter", filter)
	}
	return group, inner, true, nil
}

// MatchFilter reports whether a plain topic filter (no $share prefix)
// matches a topic name. It is the reference the trie and the index are
// tested against, and what ACL checks use. A filter with '#' anywhere but
// alone in its last level matches nothing; '+' inside a level is taken
// literally, as the trie does.
func MatchFilter(filter, topic string) bool {
	// [MQTT-4.7.2-1] Filters starting with a wildcard do not match topics starting with '$'.
	if topic != "" && topic[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	fi, ti := 0, 0
	for {
		flevel, fnext := nextLevel(filter, fi)
		if flevel == "#" {
			// '#' matches the parent level and any number of child levels,
			// but only as the last level of the filter.
			return fnext > len(filter)
		}
		if ti > len(topic) {
			return false // the topic has fewer levels than the filter
		}
		tlevel, tnext := nextLevel(topic, ti)
		if flevel != "+" && flevel != tlevel {
			return false
		}
		fi, ti = fnext, tnext
		if fi > len(filter) {
			return ti > len(topic)
		}
	}
}
