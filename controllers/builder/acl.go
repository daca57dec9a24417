package builder

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/broker/auth"
)

// User is one MQTTUser of a broker, resolved by the reconciler.
type User struct {
	// Object is the MQTTUser's metadata.name, for error messages.
	Object string
	// Username is spec.username, or metadata.name.
	Username string
	// PasswordHash is a "$7$..." (or "$6$...") hash; "" for a certificate-only user, who
	// gets ACL lines but no password file line.
	PasswordHash string
	// ACLs are the user's spec.acls.
	ACLs []v1.ACLRule
}

// ACLSource is ACL text from one key of a ConfigMap named in
// spec.authorization.aclConfigMapRefs.
type ACLSource struct {
	// ConfigMap is the ConfigMap's name (in the broker's namespace).
	ConfigMap string
	// Key is the data key that held Content.
	Key string
	// Content is the ACL text in the broker's ACL file syntax.
	Content string
}

// ACLSourceError is a line of a referenced ConfigMap that the broker's ACL parser refuses.
// Line counts within that ConfigMap's key, so a user can go straight to it.
type ACLSourceError struct {
	// ConfigMap and Key name the source.
	ConfigMap, Key string
	// Line is the 1-based line within the ConfigMap's key.
	Line int
	// Err is what is wrong, usually an *auth.ParseError (whose own line is that of the
	// rendered file).
	Err error
	// Namespace of the ConfigMap (the broker's), for the message.
	Namespace string
}

// Error reads "ConfigMap acme/extra key acl line 3: unknown access ...".
func (e *ACLSourceError) Error() string {
	msg := e.Err.Error()
	var pe *auth.ParseError
	if errors.As(e.Err, &pe) {
		msg = pe.Msg // its own file:line is that of the rendered file, not of the ConfigMap
	}
	return fmt.Sprintf("ConfigMap %s/%s key %s line %d: %s", e.Namespace, e.ConfigMap, e.Key, e.Line, msg)
}

// Unwrap returns Err.
func (e *ACLSourceError) Unwrap() error { return e.Err }

// aclWriter builds the ACL file line by line and remembers which output lines came from
// which referenced ConfigMap, so a parse error can be traced back to its source line.
type aclWriter struct {
	buf      bytes.Buffer
	lines    int
	segments []aclSegment
}

// aclSegment maps output lines [first, first+count) to source lines starting at srcFirst.
type aclSegment struct {
	source          int
	first, srcFirst int
	count           int
}

func (w *aclWriter) line(format string, args ...any) {
	fmt.Fprintf(&w.buf, format, args...)
	w.buf.WriteByte('\n')
	w.lines++
}

// source copies lines (numbered from srcFirst in source src) verbatim.
func (w *aclWriter) source(src, srcFirst int, lines []string) {
	if len(lines) == 0 {
		return
	}
	w.segments = append(w.segments, aclSegment{source: src, first: w.lines + 1, srcFirst: srcFirst, count: len(lines)})
	for _, l := range lines {
		w.buf.WriteString(l)
		w.buf.WriteByte('\n')
		w.lines++
	}
}

// RenderACL renders the ACL file of b:
//
//   - a header comment;
//   - spec.authorization.rules as "pattern" lines, which apply to every client (a "topic"
//     line before the first "user" line would apply to anonymous clients only);
//   - the lines of each referenced ConfigMap that come before its first "user" line, which
//     in the ACL file syntax belong to anonymous clients: they must come before any "user"
//     section here too, or they would silently extend the access of the user before them;
//   - one "user" section per user, sorted by username, with its acls as "topic" lines;
//   - the rest of each referenced ConfigMap, in spec order;
//   - for defaultAction allow, a final "pattern readwrite #" (deny lines still win).
//
// Users' and rules' topics are checked one by one, so errors name the MQTTUser or the spec
// field; the whole file is then parsed with broker/auth, and a line of a ConfigMap that fails
// is returned as *ACLSourceError with its line within that ConfigMap.
func RenderACL(b *v1.MQTTBroker, users []User, sources []ACLSource) ([]byte, error) {
	if a := DefaultAction(b); a != v1.ACLDefaultAllow && a != v1.ACLDefaultDeny {
		return nil, fmt.Errorf("MQTTBroker %s/%s spec.authorization.defaultAction: %q must be allow or deny", b.Namespace, b.Name, a)
	}
	for i, r := range b.Spec.Authorization.Rules {
		if err := checkACLRule("pattern", r); err != nil {
			return nil, fmt.Errorf("MQTTBroker %s/%s spec.authorization.rules[%d]: %w", b.Namespace, b.Name, i, err)
		}
	}
	users = sortedUsers(users)
	for i, u := range users {
		if err := checkUsername(u); err != nil {
			return nil, err
		}
		if i > 0 && users[i-1].Username == u.Username {
			return nil, fmt.Errorf("MQTTUsers %s and %s both have username %q; a username can belong to one MQTTUser only",
				users[i-1].Object, u.Object, u.Username)
		}
		if err := checkUserACLs(u); err != nil {
			return nil, err
		}
	}

	w := &aclWriter{}
	w.line("# ACL of MQTTBroker %s/%s, rendered by fleetmq-operator from spec.authorization,", b.Namespace, b.Name)
	w.line("# the broker's MQTTUsers and the ConfigMaps in spec.authorization.aclConfigMapRefs.")
	w.line("# Edits here are overwritten: change those sources instead.")
	w.line("# defaultAction: %s", DefaultAction(b))
	if rules := b.Spec.Authorization.Rules; len(rules) > 0 {
		w.line("")
		w.line("# spec.authorization.rules: every client (%%c is its client ID, %%u its username)")
		for _, r := range rules {
			w.line("pattern %s %s", r.Access, r.Topic)
		}
	}

	// Split every source at its first "user" line, as the parser reads it.
	type split struct{ anon, rest []string }
	parts := make([]split, len(sources))
	for i, s := range sources {
		lines := sourceLines(s.Content)
		k := slices.IndexFunc(lines, isUserLine)
		if k < 0 {
			k = len(lines)
		}
		parts[i] = split{anon: lines[:k], rest: lines[k:]}
	}
	for i, s := range sources {
		if hasRules(parts[i].anon) {
			w.line("")
			w.line("# from ConfigMap %s/%s: lines before its first user line (anonymous clients and patterns)", s.ConfigMap, s.Key)
			anon := parts[i].anon
			for strings.TrimSpace(anon[len(anon)-1]) == "" {
				anon = anon[:len(anon)-1] // the blank lines that separated them from "user"
			}
			w.source(i, 1, anon)
		}
	}
	for _, u := range users {
		w.line("")
		w.line("# MQTTUser %s", u.Object)
		w.line("user %s", u.Username)
		for _, r := range u.ACLs {
			w.line("topic %s %s", r.Access, r.Topic)
		}
	}
	for i, s := range sources {
		if len(parts[i].rest) == 0 && hasRules(parts[i].anon) {
			continue // all of it went above
		}
		w.line("")
		w.line("# from ConfigMap %s/%s", s.ConfigMap, s.Key)
		w.source(i, len(parts[i].anon)+1, parts[i].rest)
	}
	if DefaultAction(b) == v1.ACLDefaultAllow {
		w.line("")
		w.line("# spec.authorization.defaultAction: allow (deny lines above still win)")
		w.line("pattern readwrite #")
	}

	data := w.buf.Bytes()
	if _, err := auth.ParseACL(ACLKey, data); err != nil {
		var pe *auth.ParseError
		if errors.As(err, &pe) {
			for _, seg := range w.segments {
				if pe.Line >= seg.first && pe.Line < seg.first+seg.count {
					s := sources[seg.source]
					return nil, &ACLSourceError{Namespace: b.Namespace, ConfigMap: s.ConfigMap, Key: s.Key,
						Line: seg.srcFirst + pe.Line - seg.first, Err: err}
				}
			}
		}
		// Every other line was checked above; reaching here is a builder bug.
		return nil, fmt.Errorf("rendered ACL of MQTTBroker %s/%s is refused by the broker: %w", b.Namespace, b.Name, err)
	}
	return data, nil
}

// sourceLines splits ConfigMap content into lines the way the broker's parser does ("\n"
// or "\r\n" terminated, a last line without terminator included).
func sourceLines(content string) []string {
	if content == "" {
		return nil
	}
	lines := strings.Split(strings.TrimSuffix(content, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// isUserLine reports whether the parser reads line as a "user" line.
func isUserLine(line string) bool {
	line = strings.TrimSpace(line)
	if i := strings.IndexAny(line, " \t"); i >= 0 {
		line = line[:i]
	}
	return line == "user"
}

// hasRules reports whether lines hold anything but blanks and comments.
func hasRules(lines []string) bool {
	return slices.ContainsFunc(lines, func(l string) bool {
		l = strings.TrimSpace(l)
		return l != "" && l[0] != '#'
	})
}

// sortedUsers returns a copy of users sorted by username (then object, so duplicates are
// reported the same way whatever the input order).
func sortedUsers(users []User) []User {
	users = slices.Clone(users)
	slices.SortFunc(users, func(a, b User) int {
		if c := strings.Compare(a.Username, b.Username); c != 0 {
			return c
		}
		return strings.Compare(a.Object, b.Object)
	})
	return users
}

// checkUsername refuses usernames that the password file or the ACL file cannot hold. A line
// break in one would let a username inject lines into either file.
func checkUsername(u User) error {
	if err := validateUsername(u.Username); err != nil {
		return fmt.Errorf("MQTTUser %s: %w; set spec.username to a name without ':', blanks at either end or control characters", u.Object, err)
	}
	return nil
}

// validateUsername is the broker's password file rule plus no control characters at all.
func validateUsername(name string) error {
	if err := auth.ValidateUsername(name); err != nil {
		return err
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return fmt.Errorf("username %q contains a control character", name)
	}
	return nil
}

// checkUserACLs checks each of u's acls as the broker would parse its line.
func checkUserACLs(u User) error {
	for i, r := range u.ACLs {
		if err := checkACLRule("topic", r); err != nil {
			return fmt.Errorf("MQTTUser %s spec.acls[%d]: %w", u.Object, i, err)
		}
	}
	return nil
}

// checkACLRule checks one rule as a "topic" or "pattern" line of the broker's parser. The
// access word is checked here first: an empty one would make the parser read the topic as
// the whole rule and grant readwrite.
func checkACLRule(keyword string, r v1.ACLRule) error {
	switch r.Access {
	case v1.ACLRead, v1.ACLWrite, v1.ACLReadWrite, v1.ACLDeny:
	default:
		return fmt.Errorf("access %q must be read, write, readwrite or deny", r.Access)
	}
	switch {
	case r.Topic == "":
		return errors.New("topic is empty")
	case strings.ContainsFunc(r.Topic, unicode.IsControl):
		return fmt.Errorf("topic %q contains a control character", r.Topic)
	case strings.TrimSpace(r.Topic) != r.Topic:
		return fmt.Errorf("topic %q starts or ends with a blank, which the ACL file cannot hold", r.Topic)
	}
	line := fmt.Sprintf("%s %s %s\n", keyword, r.Access, r.Topic)
	if _, err := auth.ParseACL("rule", []byte(line)); err != nil {
		var pe *auth.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("topic %q: %s", r.Topic, pe.Msg)
		}
		return fmt.Errorf("topic %q: %w", r.Topic, err)
	}
	return nil
}

// ACLConfigMap is the <name>-acl ConfigMap holding the ACL that RenderACL returned. The
// broker reloads it live; RevisionAnnotation lets status compare it with what pods report.
func ACLConfigMap(b *v1.MQTTBroker, acl []byte) *corev1.ConfigMap {
	meta := objectMeta(b, ACLName(b))
	meta.Annotations = map[string]string{RevisionAnnotation: Revision(acl)}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: meta,
		Data:       map[string]string{ACLKey: string(acl)},
	}
}
