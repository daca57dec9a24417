package auth

import (
	"bytes"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkParseError asserts the contract both parsers share: every error is a
// *ParseError pointing at a line that exists.
func checkParseError(t *testing.T, err error, name string, data []byte) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ParseError", err, err)
	}
	lines := bytes.Count(data, []byte("\n")) + 1
	if pe.File != name || pe.Line < 1 || pe.Line > lines {
		t.Fatalf("error %q points at %s:%d; the input has %d lines", err, pe.File, pe.Line, lines)
	}
}

// passwordMessages is every message the password parser can produce, with
// the username written "U" and each run of digits N.
var passwordMessages = map[string]bool{
	`want username:hash, found no ':'`:                                           true,
	`user "U" has no password hash`:                                              true,
	`username is empty`:                                                          true,
	`username is N bytes, the limit is N`:                                        true,
	`username is not valid UTF-N`:                                                true,
	`username "U" contains ':', a line break or U+N`:                             true,
	`username "U" starts with '#', which makes the line a comment`:               true,
	`username "U" starts or ends with a blank`:                                   true,
	`user "U" is already defined on line N`:                                      true,
	`user "U": password is not hashed; hash the file with mosquitto_passwd -U`:   true,
	`user "U": invalid $N$ password hash, want $N$<salt>$<hash>`:                 true,
	`user "U": invalid $N$ password hash, want $N$<iterations>$<salt>$<hash>`:    true,
	`user "U": invalid $N$ password hash: the iteration count is not a number`:   true,
	`user "U": invalid $N$ password hash: iteration count N is outside N..N`:     true,
	`user "U": unknown password hash type, want $N$ (shaN) or $N$ (shaN-pbkdfN)`: true,
	`user "U": invalid password salt: not valid baseN`:                           true,
	`user "U": invalid password salt: decodes to N bytes, want N`:                true,
	`user "U": invalid password hash: not valid baseN`:                           true,
	`user "U": invalid password hash: decodes to N bytes, want N`:                true,
}

var digitRuns = regexp.MustCompile(`[0-9]+`)

// checkNoSecret asserts that a password file error is one of the known
// messages: apart from the username and numbers, nothing of the line can
// reach a log.
func checkNoSecret(t *testing.T, err error, data []byte) {
	t.Helper()
	var pe *ParseError
	errors.As(err, &pe)
	lines := strings.Split(string(data), "\n")
	line := strings.TrimSuffix(lines[pe.Line-1], "\r")
	user, _, _ := strings.Cut(strings.TrimSpace(line), ":")
	msg := strings.ReplaceAll(pe.Msg, strconv.Quote(strings.TrimSpace(user)), `"U"`)
	msg = digitRuns.ReplaceAllString(msg, "N")
	if !passwordMessages[msg] {
		t.Fatalf("error %q (normalised %q) is not a known message; it may quote the line %q", err, msg, line)
	}
}

// validTopicName reports whether s could be the topic of a PUBLISH.
func validTopicName(s string) bool {
	return s != "" && utf8.ValidString(s) && !strings.ContainsAny(s, "+#\x00")
}

func FuzzParseACL(f *testing.F) {
	for _, seed := range []string{
		mainACL, patternACL, patternDenyACL, subscribeACL,
		"", "user", "topic", "topic read", "topic rw a", "pattern deny %c#", "topic read a/#/b",
		"user a\r\ntopic read $SYS/#\r\n", "\xff", "pattern read %u%c%/%%c/+/#\n",
	} {
		for _, topic := range []string{"devices/alice/x", "$SYS/broker/uptime", "clients/c1/state", "a//b", "users/bob/inbox/blocked"} {
			f.Add([]byte(seed), topic)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, topic string) {
		a, err := ParseACL("acl", data)
		if err != nil {
			checkParseError(t, err, "acl", data)
			return
		}
		if len(a.Revision()) != 16 {
			t.Fatalf("Revision() = %q", a.Revision())
		}
		for _, c := range []Client{
			{ClientID: "c1", Username: "alice"},
			{ClientID: "c1", Username: "bob"},
			{ClientID: "c1", Anonymous: true},
			{ClientID: "a/+", Username: "#"},
			{ClientID: topic, Username: topic},
		} {
			canRead, canWrite := a.CanRead(c, topic), a.CanPublish(c, topic)
			canSub := a.CanSubscribe(c, topic)
			if a.Check(c, topic, ReadWrite) != (canRead && canWrite) {
				t.Fatalf("Check(ReadWrite) disagrees with CanRead/CanPublish for %+v on %q", c, topic)
			}
			// A subscription to a plain topic name is exactly a read of it.
			if validTopicName(topic) && canSub != canRead {
				t.Fatalf("%+v on %q: CanSubscribe = %v but CanRead = %v", c, topic, canSub, canRead)
			}
		}
	})
}

func FuzzParsePasswordFile(f *testing.F) {
	h, err := HashPassword([]byte("fuzz"))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		"", "\n", "# c\nalice:" + pbkdf2Entry + "\nbob:" + sha512Entry,
		"a:" + pbkdf2Entry + "\r\n a :" + sha512Entry, "alice:hunter2", "alice", ":", "a:$7$", "a:$6$$",
		"a:$7$0$" + pbkdf2Salt + "$" + pbkdf2Hash, "a:$7$101$" + pbkdf2Salt + "$" + pbkdf2Hash[:40],
		"a:" + pbkdf2Entry + "\na:" + pbkdf2Entry, "\xff:" + pbkdf2Entry,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePasswordFile("passwd", data)
		if err != nil {
			checkParseError(t, err, "passwd", data)
			checkNoSecret(t, err, data)
			return
		}
		users := p.Users()
		if !slices.IsSorted(users) {
			t.Fatalf("Users() = %q is not sorted", users)
		}
		for _, u := range users {
			if !p.Has(u) || len(p.Fingerprint(u)) != 16 {
				t.Fatalf("user %q: Has = %v, Fingerprint = %q", u, p.Has(u), p.Fingerprint(u))
			}
		}
		// Setting a password, new user or existing, keeps the file valid and
		// leaves every other entry alone.
		targets := []string{"fuzz-new-user"}
		if len(users) > 0 {
			targets = append(targets, users[0])
		}
		for _, target := range targets {
			updated, err := UpdatePasswordFile(data, target, h)
			if err != nil {
				t.Fatalf("UpdatePasswordFile(%q): %v", target, err)
			}
			q, err := ParsePasswordFile("passwd", updated)
			if err != nil {
				t.Fatalf("after UpdatePasswordFile(%q): %v", target, err)
			}
			for _, u := range users {
				if u != target && q.Fingerprint(u) != p.Fingerprint(u) {
					t.Fatalf("UpdatePasswordFile(%q) changed the entry of %q", target, u)
				}
			}
			if !q.Has(target) || q.Fingerprint(target) != fingerprintOf(target, h) {
				t.Fatalf("UpdatePasswordFile(%q) did not store the new hash", target)
			}
		}
	})
}
