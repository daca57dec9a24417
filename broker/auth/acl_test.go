package auth

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type op uint8

const (
	publish op = iota
	read
	subscribe
)

func (o op) String() string {
	return [...]string{"publish", "read", "subscribe"}[o]
}

func check(a *ACL, c Client, o op, topic string) bool {
	switch o {
	case publish:
		return a.CanPublish(c, topic)
	case read:
		return a.CanRead(c, topic)
	default:
		return a.CanSubscribe(c, topic)
	}
}

func anon(clientID string) Client { return Client{ClientID: clientID, Anonymous: true} }

func user(name, clientID string) Client { return Client{ClientID: clientID, Username: name} }

// mainACL exercises sections, access words, defaults and spacing.
const mainACL = `# Mosquitto-style ACL used by the table below.
	# indented comment
topic read public/#
topic read $SYS/broker/uptime
topic deny public/private

user alice
topic readwrite devices/alice/#
topic deny devices/alice/secret
topic sensors/#
  topic   write   logs/alice with spaces   
topic read $SYS/#
topic read
topic	write	tabs/ok

user bob
topic read #
topic write bob/out

user alice
topic read merged/section
`

const patternACL = `pattern write clients/%c/state
pattern read users/%u/inbox/#
pattern readwrite tenants/%u-%c/data
pattern read %c/home/#
pattern read literal/100%/x

user dave
topic read users/dave/inbox/#
topic deny clients/d1/state
`

const patternDenyACL = `pattern write clients/%c/state
pattern deny users/%u/inbox/blocked
user bob
topic write bob/out
`

const subscribeACL = `user lit
topic read a/b

user deny-tree
topic read #
topic deny a/#

user deny-all
topic read #
topic deny +/#

user dollar
topic read $SYS/broker/#

user writer
topic write w/#
`

func TestACLSemantics(t *testing.T) {
	tests := []struct {
		name   string
		acl    string
		client Client
		op     op
		topic  string
		want   bool
	}{
		// Anonymous section: lines before the first "user" line.
		{"anonymous reads its grant", mainACL, anon("a1"), read, "public/news", true},
		{"anonymous read grant is not write", mainACL, anon("a1"), publish, "public/news", false},
		{"anonymous deny beats earlier grant", mainACL, anon("a1"), read, "public/private", false},
		{"anonymous $SYS explicit grant", mainACL, anon("a1"), read, "$SYS/broker/uptime", true},
		{"anonymous lines do not apply to users", mainACL, user("alice", "c"), read, "public/news", false},
		{"anonymous subscribe to granted tree", mainACL, anon("a1"), subscribe, "public/#", true},
		{"anonymous subscribe to denied topic", mainACL, anon("a1"), subscribe, "public/private", false},
		{"anonymous subscribe outside grants", mainACL, anon("a1"), subscribe, "private/#", false},
		{"anonymous flag wins over username", mainACL, Client{ClientID: "x", Username: "alice", Anonymous: true}, publish, "devices/alice/x", false},

		// User sections, access words and the readwrite default.
		{"user readwrite publish", mainACL, user("alice", "c"), publish, "devices/alice/cmd", true},
		{"user readwrite read", mainACL, user("alice", "c"), read, "devices/alice/deep/er", true},
		{"user readwrite matches parent level", mainACL, user("alice", "c"), read, "devices/alice", true},
		{"user deny publish", mainACL, user("alice", "c"), publish, "devices/alice/secret", false},
		{"user deny read", mainACL, user("alice", "c"), read, "devices/alice/secret", false},
		{"user deny is exact, child allowed", mainACL, user("alice", "c"), read, "devices/alice/secret/x", true},
		{"default access is readwrite (write)", mainACL, user("alice", "c"), publish, "sensors/t1", true},
		{"default access is readwrite (read)", mainACL, user("alice", "c"), read, "sensors/t1", true},
		{"filter with spaces", mainACL, user("alice", "c"), publish, "logs/alice with spaces", true},
		{"filter with spaces is write only", mainACL, user("alice", "c"), read, "logs/alice with spaces", false},
		{"lone word is a readwrite filter", mainACL, user("alice", "c"), publish, "read", true},
		{"tabs separate fields", mainACL, user("alice", "c"), publish, "tabs/ok", true},
		{"repeated user section merges", mainACL, user("alice", "c"), read, "merged/section", true},
		{"first alice section kept after merge", mainACL, user("alice", "c"), read, "sensors/x", true},
		{"other user's tree", mainACL, user("alice", "c"), publish, "devices/bob/cmd", false},
		{"unknown user gets nothing", mainACL, user("mallory", "c"), read, "public/news", false},
		{"username is case sensitive", mainACL, user("Alice", "c"), publish, "devices/alice/cmd", false},

		// $SYS and the [MQTT-4.7.2-1] wildcard rule.
		{"# does not read $SYS", mainACL, user("bob", "c"), read, "$SYS/broker/uptime", false},
		{"# reads everything else", mainACL, user("bob", "c"), read, "any/thing/at/all", true},
		{"# is read only", mainACL, user("bob", "c"), publish, "any/thing", false},
		{"explicit $SYS grant", mainACL, user("alice", "c"), read, "$SYS/broker/load", true},
		{"subscribe # with read #", mainACL, user("bob", "c"), subscribe, "#", true},
		{"subscribe $SYS/# with read #", mainACL, user("bob", "c"), subscribe, "$SYS/#", false},
		{"subscribe +/x with read #", mainACL, user("bob", "c"), subscribe, "+/x", true},
		{"subscribe $SYS/# with $SYS/broker/# grant", subscribeACL, user("dollar", "c"), subscribe, "$SYS/#", true},
		{"subscribe # with only a $SYS grant", subscribeACL, user("dollar", "c"), subscribe, "#", false},
		{"subscribe +/broker/# with only a $SYS grant", subscribeACL, user("dollar", "c"), subscribe, "+/broker/#", false},

		// Subscriptions: overlap with a read grant, no deny covering the filter.
		{"subscribe exact grant", subscribeACL, user("lit", "c"), subscribe, "a/b", true},
		{"subscribe + over literal grant", subscribeACL, user("lit", "c"), subscribe, "a/+", true},
		{"subscribe +/+ over literal grant", subscribeACL, user("lit", "c"), subscribe, "+/+", true},
		{"subscribe # over literal grant", subscribeACL, user("lit", "c"), subscribe, "#", true},
		{"subscribe a/# over literal grant", subscribeACL, user("lit", "c"), subscribe, "a/#", true},
		{"subscribe parent of grant", subscribeACL, user("lit", "c"), subscribe, "a", false},
		{"subscribe child of grant", subscribeACL, user("lit", "c"), subscribe, "a/b/c", false},
		{"subscribe sibling of grant", subscribeACL, user("lit", "c"), subscribe, "a/c", false},
		{"delivery through broad subscription is rechecked", subscribeACL, user("lit", "c"), read, "a/c", false},
		{"deny tree covers literal", subscribeACL, user("deny-tree", "c"), subscribe, "a/b", false},
		{"deny tree covers its parent level", subscribeACL, user("deny-tree", "c"), subscribe, "a", false},
		{"deny tree covers a/+", subscribeACL, user("deny-tree", "c"), subscribe, "a/+/c", false},
		{"deny tree does not cover +/b", subscribeACL, user("deny-tree", "c"), subscribe, "+/b", true},
		{"deny tree does not cover #", subscribeACL, user("deny-tree", "c"), subscribe, "#", true},
		{"deny tree still filters deliveries", subscribeACL, user("deny-tree", "c"), read, "a/b", false},
		{"deny tree lets others through", subscribeACL, user("deny-tree", "c"), read, "x/b", true},
		{"deny +/# covers #", subscribeACL, user("deny-all", "c"), subscribe, "#", false},
		{"deny +/# covers +", subscribeACL, user("deny-all", "c"), subscribe, "+", false},
		{"write grant does not allow subscribe", subscribeACL, user("writer", "c"), subscribe, "w/#", false},
		{"write grant allows publish", subscribeACL, user("writer", "c"), publish, "w/x", true},
		{"invalid subscription filter", subscribeACL, user("deny-tree", "c"), subscribe, "x/#/y", false},
		{"empty subscription filter", subscribeACL, user("deny-tree", "c"), subscribe, "", false},

		// Patterns: %c and %u.
		{"%c pattern own id", patternACL, user("carol", "c1"), publish, "clients/c1/state", true},
		{"%c pattern other id", patternACL, user("carol", "c1"), publish, "clients/c2/state", false},
		{"%c pattern write only", patternACL, user("carol", "c1"), read, "clients/c1/state", false},
		{"%c pattern for anonymous", patternACL, anon("c9"), publish, "clients/c9/state", true},
		{"%u pattern own name", patternACL, user("carol", "c1"), read, "users/carol/inbox/x", true},
		{"%u pattern other name", patternACL, user("carol", "c1"), read, "users/erin/inbox/x", false},
		{"%u pattern skips anonymous", patternACL, anon("carol"), read, "users/carol/inbox/x", false},
		{"%u pattern skips anonymous with username set", patternACL, Client{ClientID: "c", Username: "carol", Anonymous: true}, read, "users/carol/inbox/x", false},
		{"%u and %c in one level", patternACL, user("carol", "c1"), publish, "tenants/carol-c1/data", true},
		{"%u and %c in one level, other id", patternACL, user("carol", "c1"), publish, "tenants/carol-c2/data", false},
		{"%u and %c in one level, prefix only", patternACL, user("carol", "c1"), publish, "tenants/carol-c1x/data", false},
		{"literal % kept", patternACL, user("carol", "c1"), read, "literal/100%/x", true},
		{"subscribe own pattern tree", patternACL, user("carol", "c1"), subscribe, "users/carol/inbox/#", true},
		{"subscribe other pattern tree", patternACL, user("carol", "c1"), subscribe, "users/erin/#", false},
		{"subscribe + over pattern", patternACL, user("carol", "c1"), subscribe, "users/+/inbox/x", true},
		{"leading %c", patternACL, user("carol", "dev1"), read, "dev1/home/t", true},

		// Pattern substitution must not widen access.
		{"client id with / cannot reach another client's tree", patternACL, user("carol", "c1/x"), publish, "clients/c1/x/state", false},
		{"username with / cannot reach another user's tree", patternACL, user("carol/inbox", "c"), read, "users/carol/inbox/inbox/x", false},
		{"client id with + grants nothing", patternACL, user("carol", "+"), subscribe, "clients/+/state", false},
		{"client id # grants nothing", patternACL, user("carol", "#"), subscribe, "#/home/#", false},
		{"username # grants nothing", patternACL, user("#", "c"), subscribe, "users/#", false},
		{"empty client id grants nothing", patternACL, user("carol", ""), publish, "clients//state", false},
		{"empty username grants nothing", patternACL, user("", "c"), read, "users//inbox/x", false},
		{"leading %c cannot reach $SYS", patternACL, user("carol", "$SYS"), read, "$SYS/home/x", false},
		{"$ inside a level is fine", patternACL, user("carol", "c$1"), publish, "clients/c$1/state", true},
		{"unsafe client id keeps safe username patterns", patternACL, user("carol", "c/1"), read, "users/carol/inbox/x", true},
		{"deny pattern with unsafe value denies everything", patternDenyACL, user("bob/x", "c1"), publish, "bob/out", false},
		{"deny pattern with unsafe value denies pattern grants", patternDenyACL, user("x/y", "c1"), publish, "clients/c1/state", false},
		{"deny pattern with unsafe value denies subscribe", patternDenyACL, user("x+", "c1"), subscribe, "bob/out", false},
		{"deny %u pattern skipped for anonymous", patternDenyACL, anon("c1"), publish, "clients/c1/state", true},
		{"deny pattern with safe value", patternDenyACL, user("bob", "c1"), publish, "bob/out", true},

		// Deny wins over grants from any section.
		{"pattern deny beats user grant", patternDenyACL + "topic read users/bob/inbox/#\n", user("bob", "c1"), read, "users/bob/inbox/blocked", false},
		{"pattern deny covers subscribe", patternDenyACL + "topic read users/bob/inbox/#\n", user("bob", "c1"), subscribe, "users/bob/inbox/blocked", false},
		{"user grant near pattern deny", patternDenyACL + "topic read users/bob/inbox/#\n", user("bob", "c1"), read, "users/bob/inbox/ok", true},
		{"user deny beats pattern grant", patternACL, user("dave", "d1"), publish, "clients/d1/state", false},
		{"user grant alongside patterns", patternACL, user("dave", "d1"), read, "users/dave/inbox/x", true},

		// Empty file: access is denied unless some line grants it.
		{"empty ACL denies publish", "", user("alice", "c"), publish, "a", false},
		{"empty ACL denies anonymous read", "", anon("c"), read, "a", false},
		{"empty ACL denies subscribe", "", anon("c"), subscribe, "#", false},
		{"comments only", "# nothing\n\n   \n", anon("c"), read, "a", false},
	}
	parsed := map[string]*ACL{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := parsed[tt.acl]
			if a == nil {
				var err error
				if a, err = ParseACL("acl", []byte(tt.acl)); err != nil {
					t.Fatalf("ParseACL: %v", err)
				}
				parsed[tt.acl] = a
			}
			if got := check(a, tt.client, tt.op, tt.topic); got != tt.want {
				t.Errorf("%s %q by %+v = %v, want %v", tt.op, tt.topic, tt.client, got, tt.want)
			}
		})
	}
}

// TestACLDenyOrderIndependent checks that where a deny line sits in the
// file does not matter.
func TestACLDenyOrderIndependent(t *testing.T) {
	for _, text := range []string{
		"user u\ntopic deny a/b\ntopic read a/#\n",
		"user u\ntopic read a/#\ntopic deny a/b\n",
		"user u\ntopic read a/#\nuser v\nuser u\ntopic deny a/b\n",
		"pattern deny a/%u\nuser b\ntopic read a/#\n",
		"user b\ntopic read a/#\npattern deny a/%u\n",
		"pattern deny a/%c\npattern read a/#\n",
		"pattern read a/#\npattern deny a/%c\n",
	} {
		a, err := ParseACL("acl", []byte(text))
		if err != nil {
			t.Fatalf("ParseACL(%q): %v", text, err)
		}
		// Username and client ID both substitute to "b" in the patterns.
		c := user("u", "b")
		if strings.Contains(text, "%u") {
			c = user("b", "x")
		}
		if a.CanRead(c, "a/b") {
			t.Errorf("%q: read a/b allowed despite the deny", text)
		}
		if !a.CanRead(c, "a/c") {
			t.Errorf("%q: read a/c denied, want the grant to apply", text)
		}
	}
}

func TestACLCheck(t *testing.T) {
	a, err := ParseACL("acl", []byte("user u\ntopic read r\ntopic write w\ntopic rw\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := user("u", "c")
	tests := []struct {
		topic string
		want  Access
		ok    bool
	}{
		{"r", Read, true}, {"r", Write, false}, {"r", ReadWrite, false},
		{"w", Write, true}, {"w", Read, false},
		{"rw", ReadWrite, true},
		{"rw", 0, false}, {"rw", 4, false},
	}
	for _, tt := range tests {
		if got := a.Check(c, tt.topic, tt.want); got != tt.ok {
			t.Errorf("Check(%q, %v) = %v, want %v", tt.topic, tt.want, got, tt.ok)
		}
	}
}

func TestParseACLErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string // the whole Error(), or its start when it ends in a blank
		line int
	}{
		{"unknown access", "user a\n\n# c\ntopic rw a/b\n", `acl:4: unknown access "rw", want read, write, readwrite or deny`, 4},
		{"filter with space needs access", "topic a b\n", `acl:1: unknown access "a", want read, write, readwrite or deny`, 1},
		{"missing username", "topic read x\n   user   \n", `acl:2: missing username after "user"`, 2},
		{"missing filter", "user a\ntopic\n", `acl:2: missing topic filter after "topic"`, 2},
		{"missing pattern filter", "pattern  \t \n", `acl:1: missing topic filter after "pattern"`, 1},
		{"hash not last", "topic read a/#/b", `acl:1: topic filter "a/#/b" `, 1},
		{"plus inside level", "\r\ntopic read a+/b\r\n", `acl:2: topic filter "a+/b" `, 2},
		{"hash inside level", "pattern deny %c#", `acl:1: topic filter "%c#" `, 1},
		{"unknown keyword", "user a\nsubscribe a/b\n", `acl:2: unknown keyword "subscribe", want user, topic or pattern`, 2},
		{"null character", "topic read a\x00b\n", `acl:1: topic filter contains the null character `, 1},
		{"invalid UTF-8", "topic read ok\ntopic read \xff\n", `acl:2: line is not valid UTF-8`, 2},
		{"inline comment is not a comment", "topic read a/b # note\n", `acl:1: topic filter "a/b # note" `, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseACL("acl", []byte(tt.text))
			if err == nil {
				t.Fatalf("ParseACL succeeded (%+v), want %q", a, tt.want)
			}
			if err.Error() != tt.want && !(strings.HasSuffix(tt.want, " ") && strings.HasPrefix(err.Error(), tt.want)) {
				t.Errorf("error = %q\nwant    %q", err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line != tt.line || pe.File != "acl" {
				t.Errorf("error %#v is not a *ParseError at acl:%d", err, tt.line)
			}
		})
	}
}

func TestACLRevision(t *testing.T) {
	parse := func(s string) *ACL {
		a, err := ParseACL("acl", []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a, b, c := parse("user a\ntopic x\n"), parse("user a\ntopic x\n"), parse("user a\ntopic y\n")
	if len(a.Revision()) != 16 || strings.Trim(a.Revision(), "0123456789abcdef") != "" {
		t.Errorf("Revision() = %q, want 16 hex characters", a.Revision())
	}
	if a.Revision() != b.Revision() {
		t.Errorf("same content, revisions %q and %q differ", a.Revision(), b.Revision())
	}
	if a.Revision() == c.Revision() {
		t.Errorf("different content, same revision %q", a.Revision())
	}
}

func TestLoadACL(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "acl")
	if err := os.WriteFile(good, []byte("user a\ntopic read x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := LoadACL(good)
	if err != nil {
		t.Fatalf("LoadACL: %v", err)
	}
	if !a.CanRead(user("a", "c"), "x") {
		t.Error("loaded ACL does not grant read on x")
	}

	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("user a\ntopic rw x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadACL(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":2: ") {
		t.Errorf("LoadACL(bad) error = %v, want it to start with %q", err, bad+":2: ")
	}
	if _, err := LoadACL(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadACL(missing) error = %v, want fs.ErrNotExist", err)
	}
}

// TestACLConcurrentChecks runs checks from many goroutines; with -race it
// proves the parsed ACL is safe to share.
func TestACLConcurrentChecks(t *testing.T) {
	a, err := ParseACL("acl", []byte(mainACL+patternACL))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			c := user("alice", "c1")
			if g%2 == 0 {
				c = anon("c1")
			}
			for range 200 {
				a.CanPublish(c, "clients/c1/state")
				a.CanRead(c, "devices/alice/x")
				a.CanSubscribe(c, "devices/+/x")
			}
		})
	}
	wg.Wait()
}
