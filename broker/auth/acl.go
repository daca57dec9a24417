package auth

import (
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
)

// Access is what an ACL line grants: bit flags, so ReadWrite is both.
type Access uint8

// Access values. A deny line is not an Access: it takes everything away.
const (
	// Read lets a client receive messages published on a topic (and
	// subscribe to filters that reach it).
	Read Access = 1 << iota
	// Write lets a client publish on a topic.
	Write
	// ReadWrite is Read and Write together; it is what an ACL line without
	// an access word grants.
	ReadWrite = Read | Write
)

// String returns the ACL file spelling of the access.
func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case ReadWrite:
		return "readwrite"
	case 0:
		return "none"
	}
	return fmt.Sprintf("Access(%d)", uint8(a))
}

// Client is the identity an ACL check is made for.
type Client struct {
	// ClientID is the MQTT client identifier, the one the broker assigned
	// when the client sent none. Pattern lines substitute it for %c.
	ClientID string
	// Username is the authenticated username; pattern lines substitute it
	// for %u. It is ignored when Anonymous is set.
	Username string
	// Anonymous is true for a client that connected without a username. It
	// gets the lines before the first "user" line, and patterns without %u.
	Anonymous bool
}

// ruleSet is the compiled lines that apply to one section. Grants are kept
// per access so that a check only looks at lines that could grant it.
type ruleSet struct {
	deny  []*filter
	read  []*filter
	write []*filter
}

func (r *ruleSet) add(f *filter, access Access, deny bool) {
	switch {
	case deny:
		r.deny = append(r.deny, f)
	default:
		if access&Read != 0 {
			r.read = append(r.read, f)
		}
		if access&Write != 0 {
			r.write = append(r.write, f)
		}
	}
}

func (r *ruleSet) grants(access Access) []*filter {
	if access == Read {
		return r.read
	}
	return r.write
}

// ACL is a parsed Mosquitto acl_file, compiled per user so that a check
// costs a few filter matches. It is immutable after parsing and safe for
// concurrent use.
type ACL struct {
	anonymous ruleSet
	users     map[string]*ruleSet
	patterns  ruleSet
	// hasPatterns saves the identity safety scan when no pattern exists.
	hasPatterns bool
	revision    string
}

// LoadACL reads and parses the ACL file at path; parse errors name the path.
func LoadACL(path string) (*ACL, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read ACL file: %w", err)
	}
	return ParseACL(path, data)
}

// ParseACL parses an ACL file in Mosquitto's acl_file syntax (see the
// package doc). name is what errors call the file. Every error is a
// *ParseError with the line it is about.
func ParseACL(name string, data []byte) (*ACL, error) {
	a := &ACL{users: make(map[string]*ruleSet), revision: revisionOf(data)}
	section := &a.anonymous
	err := forEachLine(data, func(n int, line string) error {
		if !utf8.ValidString(line) {
			return parseErrorf(name, n, "line is not valid UTF-8")
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			return nil
		}
		keyword, rest := cutBlank(line)
		switch keyword {
		case "user":
			if rest == "" {
				return parseErrorf(name, n, "missing username after \"user\"")
			}
			// Mosquitto merges repeated sections of one user; so do we.
			rs := a.users[rest]
			if rs == nil {
				rs = &ruleSet{}
				a.users[rest] = rs
			}
			section = rs
		case "topic", "pattern":
			f, access, deny, err := parseRuleLine(keyword, rest)
			if err != nil {
				return parseErrorf(name, n, "%v", err)
			}
			if keyword == "topic" {
				section.add(f, access, deny)
			} else {
				a.patterns.add(f, access, deny)
			}
		default:
			return parseErrorf(name, n, "unknown keyword %q, want user, topic or pattern", keyword)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.hasPatterns = len(a.patterns.deny)+len(a.patterns.read)+len(a.patterns.write) > 0
	return a, nil
}

// parseRuleLine parses what follows "topic" or "pattern": an optional access
// word and a filter that is the rest of the line. As in Mosquitto, a single
// word is the filter and the access is readwrite.
func parseRuleLine(keyword, rest string) (f *filter, access Access, deny bool, err error) {
	if rest == "" {
		return nil, 0, false, fmt.Errorf("missing topic filter after %q", keyword)
	}
	word, filterText := cutBlank(rest)
	if filterText == "" {
		filterText, access = word, ReadWrite
	} else {
		switch word {
		case "read":
			access = Read
		case "write":
			access = Write
		case "readwrite":
			access = ReadWrite
		case "deny":
			deny = true
		default:
			return nil, 0, false, fmt.Errorf("unknown access %q, want read, write, readwrite or deny", word)
		}
	}
	if err := validateFilter(filterText); err != nil {
		return nil, 0, false, err // broker/topic's reason names the filter
	}
	return compileFilter(filterText, keyword == "pattern"), access, deny, nil
}

// cutBlank splits s at its first run of blanks; both halves come back
// without surrounding blanks. Mosquitto splits on spaces only; tabs are
// accepted too because nobody means a tab as part of a keyword.
func cutBlank(s string) (head, tail string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

// Revision identifies the file content the ACL was parsed from: the first
// 16 hex characters of its SHA-256.
func (a *ACL) Revision() string { return a.revision }

// CanPublish reports whether the client may publish on topic.
func (a *ACL) CanPublish(c Client, topic string) bool {
	id := newIdentity(c, a.hasPatterns)
	return a.allowed(&id, a.sectionFor(c), topic, Write)
}

// CanRead reports whether a message published on topic may be delivered to
// the client. The broker calls it for every delivery, so a subscription
// wider than the client's grants only receives what they allow.
func (a *ACL) CanRead(c Client, topic string) bool {
	id := newIdentity(c, a.hasPatterns)
	return a.allowed(&id, a.sectionFor(c), topic, Read)
}

// Check reports whether the client has all of want on topic; Check with
// Write is CanPublish and with Read is CanRead.
func (a *ACL) Check(c Client, topic string, want Access) bool {
	if want == 0 || want&^ReadWrite != 0 {
		return false
	}
	id := newIdentity(c, a.hasPatterns)
	section := a.sectionFor(c)
	for _, bit := range [...]Access{Read, Write} {
		if want&bit != 0 && !a.allowed(&id, section, topic, bit) {
			return false
		}
	}
	return true
}

// CanSubscribe reports whether the client may subscribe to filter, a plain
// topic filter without a $share/<group>/ prefix. It is allowed when some
// read grant overlaps the filter and no deny line covers the whole of it;
// deliveries are still checked one by one with CanRead. An invalid filter
// is refused.
func (a *ACL) CanSubscribe(c Client, sub string) bool {
	if validateFilter(sub) != nil {
		return false
	}
	id := newIdentity(c, a.hasPatterns)
	section := a.sectionFor(c)
	if section != nil {
		for _, f := range section.deny {
			if f.covers(sub, &id) {
				return false
			}
		}
	}
	for _, f := range a.patterns.deny {
		switch f.stateFor(&id) {
		case patternUnsafe:
			return false
		case patternApplies:
			if f.covers(sub, &id) {
				return false
			}
		}
	}
	if section != nil {
		for _, f := range section.read {
			if f.overlaps(sub, &id) {
				return true
			}
		}
	}
	for _, f := range a.patterns.read {
		if f.stateFor(&id) == patternApplies && f.overlaps(sub, &id) {
			return true
		}
	}
	return false
}

// sectionFor returns the lines written for the client: the anonymous
// section, its user section, or nil for a user without one (only patterns
// apply then).
func (a *ACL) sectionFor(c Client) *ruleSet {
	if c.Anonymous {
		return &a.anonymous
	}
	return a.users[c.Username]
}

// allowed checks one access bit on a concrete topic. Every deny is looked
// at before any grant, so a deny wins wherever it is written. (Mosquitto 2
// lets a grant in the user's own section win over a deny pattern; being
// stricter here can only take access away.)
func (a *ACL) allowed(id *identity, section *ruleSet, topic string, access Access) bool {
	if topic == "" {
		return false // [MQTT-4.7.3-1] no such topic; "/#" would match it
	}
	if section != nil {
		for _, f := range section.deny {
			if f.matchesTopic(topic, id) {
				return false
			}
		}
	}
	for _, f := range a.patterns.deny {
		switch f.stateFor(id) {
		case patternUnsafe:
			return false
		case patternApplies:
			if f.matchesTopic(topic, id) {
				return false
			}
		}
	}
	if section != nil {
		for _, f := range section.grants(access) {
			if f.matchesTopic(topic, id) {
				return true
			}
		}
	}
	for _, f := range a.patterns.grants(access) {
		if f.stateFor(id) == patternApplies && f.matchesTopic(topic, id) {
			return true
		}
	}
	return false
}
