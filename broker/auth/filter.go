package auth

// This file holds the topic-filter logic the ACL needs: validation, matching
// a filter against a topic, and the two filter-against-filter relations a
// SUBSCRIBE check needs (overlap and cover), all over filters compiled once
// at parse time so that a check neither splits strings nor allocates.
//
// What a valid filter is comes from broker/topic, so an ACL file accepts
// exactly the filters a SUBSCRIBE may carry. Matching is done here rather
// than with topic.MatchFilter because pattern levels hold %c/%u templates
// that must be compared without building strings, and because SUBSCRIBE
// needs filter-to-filter relations; the tests check that both matchers
// agree.

import (
	"errors"
	"strings"

	"github.com/fleetmq/fleetmq/broker/packet"
	"github.com/fleetmq/fleetmq/broker/topic"
)

// maxFilterLen is the longest topic filter MQTT can carry: a UTF-8 string
// is prefixed by a two-byte length ([MQTT-1.5.4]).
const maxFilterLen = 65535

type levelKind uint8

const (
	levelLiteral  levelKind = iota // matches exactly its text
	levelPlus                      // '+': any single level
	levelHash                      // '#': the parent level and any number of children
	levelTemplate                  // a pattern level with %c or %u in it
)

// placeholder names the identity value a template part stands for.
type placeholder uint8

const (
	noPlaceholder placeholder = iota
	clientIDPlaceholder
	usernamePlaceholder
)

// templatePart is either literal text or a placeholder.
type templatePart struct {
	text string
	ph   placeholder
}

type level struct {
	kind  levelKind
	text  string         // levelLiteral
	parts []templatePart // levelTemplate
}

// filter is a topic filter from an ACL line, split into levels.
type filter struct {
	levels []level
	// usesClientID and usesUsername say which identity values the filter
	// needs; only pattern lines have them.
	usesClientID, usesUsername bool
	// leading is the placeholder that starts the filter, if any: a value
	// that starts with '$' there would move the rule into the $-topic space.
	leading placeholder
	// wildFirst is true when the first level is '+' or '#' ([MQTT-4.7.2-1]).
	wildFirst bool
	// dollarFirst is true when the first level is literal text starting
	// with '$', so every topic the filter matches does. A pattern never
	// substitutes a '$'-prefixed value at the start (stateFor refuses it),
	// so only literal text counts.
	dollarFirst bool
}

// identity carries the values a pattern substitutes, and whether each is
// safe to substitute (see the package doc).
type identity struct {
	clientID, username string
	hasUsername        bool
	clientSafe         bool
	usernameSafe       bool
	clientDollar       bool
	usernameDollar     bool
}

// newIdentity prepares c for checks. withPatterns says whether any pattern
// line will look at the values; without one the safety scan is skipped.
func newIdentity(c Client, withPatterns bool) identity {
	id := identity{clientID: c.ClientID}
	if !c.Anonymous {
		id.username = c.Username
		id.hasUsername = true
	}
	if !withPatterns {
		return id
	}
	id.clientSafe = safeValue(id.clientID)
	id.clientDollar = id.clientID != "" && id.clientID[0] == '$'
	if id.hasUsername {
		id.usernameSafe = safeValue(id.username)
		id.usernameDollar = id.username != "" && id.username[0] == '$'
	}
	return id
}

// safeValue reports whether v can stand for one topic level without
// reaching any other client's topics: it must be one non-empty level with
// no wildcard and no U+0000 ([MQTT-4.7.3-2]). A byte loop: this runs on
// every check, and strings.ContainsAny costs several times more.
func safeValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '+', '#', '/', 0:
			return false
		}
	}
	return true
}

// patternState says how a pattern line relates to one client.
type patternState uint8

const (
	patternApplies patternState = iota
	patternSkipped              // uses %u and the client has no username
	patternUnsafe               // would substitute an unsafe value
)

func (f *filter) stateFor(id *identity) patternState {
	if f.usesUsername && !id.hasUsername {
		return patternSkipped
	}
	if f.usesClientID && !id.clientSafe || f.usesUsername && !id.usernameSafe {
		return patternUnsafe
	}
	if f.leading == clientIDPlaceholder && id.clientDollar ||
		f.leading == usernamePlaceholder && id.usernameDollar {
		return patternUnsafe
	}
	return patternApplies
}

// validateFilter checks a topic filter with broker/topic's rules and
// returns the reason without the reason-code prefix, for an ACL message.
func validateFilter(s string) error {
	if err := topic.ValidateFilter(s, maxFilterLen, 0); err != nil {
		return filterReason(err)
	}
	return nil
}

// filterReason is split out so that errors.As's target only goes to the
// heap on the error path, keeping CanSubscribe free of allocations.
func filterReason(err error) error {
	var pe *packet.Error
	if errors.As(err, &pe) {
		return errors.New(pe.Reason)
	}
	return err
}

// nextLevel returns the level of s starting at byte offset pos and the
// offset of the level after it; next is len(s)+1 after the last level, so
// "a/" (two levels, the second empty) differs from "a".
func nextLevel(s string, pos int) (seg string, next int) {
	if i := strings.IndexByte(s[pos:], '/'); i >= 0 {
		return s[pos : pos+i], pos + i + 1
	}
	return s[pos:], len(s) + 1
}

// compileFilter splits a validated filter into levels. With templates set,
// %c and %u become placeholders, as on Mosquitto pattern lines; a '%'
// followed by anything else is literal.
func compileFilter(s string, templates bool) *filter {
	f := &filter{}
	for pos := 0; pos <= len(s); {
		seg, next := nextLevel(s, pos)
		var l level
		switch {
		case seg == "+":
			l.kind = levelPlus
		case seg == "#":
			l.kind = levelHash
		case templates && (strings.Contains(seg, "%c") || strings.Contains(seg, "%u")):
			l.kind = levelTemplate
			l.parts = splitTemplate(seg)
			for _, p := range l.parts {
				switch p.ph {
				case clientIDPlaceholder:
					f.usesClientID = true
				case usernamePlaceholder:
					f.usesUsername = true
				}
			}
		default:
			l.kind = levelLiteral
			l.text = seg
		}
		f.levels = append(f.levels, l)
		pos = next
	}
	first := f.levels[0]
	f.wildFirst = first.kind == levelPlus || first.kind == levelHash
	switch first.kind {
	case levelLiteral:
		f.dollarFirst = strings.HasPrefix(first.text, "$")
	case levelTemplate:
		if p := first.parts[0]; p.ph != noPlaceholder {
			f.leading = p.ph
		} else {
			f.dollarFirst = strings.HasPrefix(p.text, "$")
		}
	}
	return f
}

func splitTemplate(seg string) []templatePart {
	var parts []templatePart
	lit := 0
	for i := 0; i+1 < len(seg); i++ {
		if seg[i] != '%' {
			continue
		}
		var ph placeholder
		switch seg[i+1] {
		case 'c':
			ph = clientIDPlaceholder
		case 'u':
			ph = usernamePlaceholder
		default:
			continue
		}
		if lit < i {
			parts = append(parts, templatePart{text: seg[lit:i]})
		}
		parts = append(parts, templatePart{ph: ph})
		i++
		lit = i + 1
	}
	if lit < len(seg) {
		parts = append(parts, templatePart{text: seg[lit:]})
	}
	return parts
}

// equals reports whether the level, with its placeholders substituted from
// id, is exactly seg. For a literal level that is plain string equality.
func (l *level) equals(seg string, id *identity) bool {
	if l.kind == levelLiteral {
		return l.text == seg
	}
	for _, p := range l.parts {
		v := p.text
		switch p.ph {
		case clientIDPlaceholder:
			v = id.clientID
		case usernamePlaceholder:
			v = id.username
		}
		if !strings.HasPrefix(seg, v) {
			return false
		}
		seg = seg[len(v):]
	}
	return seg == ""
}

// matchesTopic reports whether the filter matches a concrete topic name.
func (f *filter) matchesTopic(topic string, id *identity) bool {
	// [MQTT-4.7.2-1] A filter starting with a wildcard does not match a
	// topic starting with '$'.
	if f.wildFirst && strings.HasPrefix(topic, "$") {
		return false
	}
	pos := 0
	for i := range f.levels {
		l := &f.levels[i]
		if l.kind == levelHash {
			// '#' matches the parent level and any number of children.
			return true
		}
		if pos > len(topic) {
			return false // the topic has fewer levels than the filter
		}
		seg, next := nextLevel(topic, pos)
		if l.kind != levelPlus && !l.equals(seg, id) {
			return false
		}
		pos = next
	}
	return pos > len(topic)
}

// overlaps reports whether some topic name matches both the compiled filter
// and the subscription filter sub (a valid plain filter).
func (f *filter) overlaps(sub string, id *identity) bool {
	subWild := sub[0] == '+' || sub[0] == '#'
	// [MQTT-4.7.2-1] on either side: a wildcard first level only reaches
	// topics not starting with '$'.
	if f.wildFirst && sub[0] == '$' || subWild && f.dollarFirst {
		return false
	}
	// A one-level witness whose level is empty would be the empty topic,
	// which does not exist [MQTT-4.7.3-1].
	emptyFirst := sub[0] == '/' || f.levels[0].kind == levelLiteral && f.levels[0].text == ""
	pos := 0
	for i := range f.levels {
		l := &f.levels[i]
		if l.kind == levelHash {
			// '#' takes whatever sub has left; if sub is done, the witness
			// is the parent level.
			return pos <= len(sub) || i != 1 || !emptyFirst
		}
		if pos > len(sub) {
			return false // sub is done, f wants another level
		}
		seg, next := nextLevel(sub, pos)
		switch {
		case seg == "#":
			return true // sub takes anything f has left, with a level to spare
		case seg == "+" || l.kind == levelPlus:
		case !l.equals(seg, id):
			return false
		}
		pos = next
	}
	if pos > len(sub) {
		return true
	}
	// f is done; sub still has levels, which only '#' can leave empty.
	seg, _ := nextLevel(sub, pos)
	return seg == "#" && (len(f.levels) != 1 || !emptyFirst)
}

// covers reports whether the compiled filter matches every topic name that
// the subscription filter sub (a valid plain filter) matches.
func (f *filter) covers(sub string, id *identity) bool {
	subWild := sub[0] == '+' || sub[0] == '#'
	if !subWild && sub[0] == '$' && f.wildFirst {
		// [MQTT-4.7.2-1] f cannot reach the $-topics sub asks for.
		return false
	}
	pos := 0
	for i := range f.levels {
		l := &f.levels[i]
		if l.kind == levelHash {
			return true
		}
		if pos > len(sub) {
			return false // sub matches topics shorter than f accepts
		}
		seg, next := nextLevel(sub, pos)
		switch seg {
		case "#":
			// sub matches everything below this level, and the parent
			// level itself unless that would be the empty topic (or no
			// topic at all, at the top). f's '#' was handled above; "+/#"
			// covers the rest when there is no parent to cover.
			noParent := i == 0 || i == 1 && sub[0] == '/'
			return noParent && l.kind == levelPlus && len(f.levels) == i+2 && f.levels[i+1].kind == levelHash
		case "+":
			if l.kind != levelPlus {
				return false
			}
		default:
			if l.kind != levelPlus && !l.equals(seg, id) {
				return false
			}
		}
		pos = next
	}
	return pos > len(sub)
}
