package builder

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/broker/auth"
)

// loadACL renders and parses the ACL the way a broker pod loads it.
func loadACL(t *testing.T, b *v1.MQTTBroker, users []User, sources []ACLSource) *auth.ACL {
	t.Helper()
	data, err := RenderACL(b, users, sources)
	if err != nil {
		t.Fatalf("RenderACL: %v", err)
	}
	acl, err := auth.ParseACL("acl", data)
	if err != nil {
		t.Fatalf("the broker refuses the rendered ACL: %v\n%s", err, data)
	}
	if got, want := acl.Revision(), Revision(data); got != want {
		t.Errorf("broker revision %s, builder Revision %s: status could never match the pods", got, want)
	}
	return acl
}

func TestRenderACLGrantsWhatTheSpecSays(t *testing.T) {
	b := newBroker(withRules(rule("clients/%c/#", v1.ACLReadWrite), rule("users/%u/inbox/#", v1.ACLRead)))
	acl := loadACL(t, b, sensorUsers(t), []ACLSource{{ConfigMap: "extra", Key: "acl", Content: extraACL}})

	sensor := auth.Client{ClientID: "s1", Username: "sensor-1"}
	dashboard := auth.Client{ClientID: "dash", Username: "dashboard"}
	ops := auth.Client{ClientID: "ops-1", Username: "ops"}
	anonymous := auth.Client{ClientID: "anon-1", Anonymous: true}
	stranger := auth.Client{ClientID: "x", Username: "stranger"}

	tests := []struct {
		name   string
		client auth.Client
		topic  string
		access auth.Access
		want   bool
	}{
		{"user writes its telemetry", sensor, "telemetry/sensor-1/temp", auth.Write, true},
		{"user cannot read its telemetry (write only)", sensor, "telemetry/sensor-1/temp", auth.Read, false},
		{"user reads its commands", sensor, "commands/sensor-1/reboot", auth.Read, true},
		{"user cannot write another sensor's telemetry", sensor, "telemetry/sensor-2/temp", auth.Write, false},
		{"dashboard reads all telemetry", dashboard, "telemetry/sensor-2/temp", auth.Read, true},
		{"dashboard deny wins over its read", dashboard, "telemetry/sensor-2/diagnostics/raw", auth.Read, false},
		{"dashboard sends commands", dashboard, "commands/sensor-1/reboot", auth.Write, true},
		{"rule %c: own client subtree", sensor, "clients/s1/state", auth.ReadWrite, true},
		{"rule %c: not another client's subtree", sensor, "clients/s2/state", auth.Read, false},
		{"rule %u: own inbox", dashboard, "users/dashboard/inbox/1", auth.Read, true},
		{"rule %u: not another user's inbox", dashboard, "users/sensor-1/inbox/1", auth.Read, false},
		{"rule %u: inbox is read only", dashboard, "users/dashboard/inbox/1", auth.Write, false},
		{"ConfigMap user section", ops, "ops/deploy", auth.ReadWrite, true},
		{"ConfigMap anonymous line reaches anonymous clients", anonymous, "public/weather", auth.Read, true},
		{"ConfigMap anonymous line does not leak to the user rendered before it", sensor, "public/weather", auth.Read, false},
		{"ConfigMap anonymous line does not reach the ConfigMap's own user", ops, "public/weather", auth.Read, false},
		{"default deny: unknown user gets only the rules", stranger, "telemetry/sensor-1/temp", auth.Read, false},
		{"default deny: topic nobody grants", sensor, "elsewhere", auth.Write, false},
		{"rule applies to users without a section", stranger, "clients/x/a", auth.Write, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := acl.Check(tc.client, tc.topic, tc.access); got != tc.want {
				t.Errorf("Check(%+v, %q, %s) = %v, want %v", tc.client, tc.topic, tc.access, got, tc.want)
			}
		})
	}
}

func TestRenderACLDefaultAction(t *testing.T) {
	user := auth.Client{ClientID: "c", Username: "sensor-1"}
	for _, tc := range []struct {
		action        v1.ACLDefaultAction
		wantUnmatched bool
	}{
		{"", false}, // unset is deny
		{v1.ACLDefaultDeny, false},
		{v1.ACLDefaultAllow, true},
	} {
		t.Run(string(tc.action), func(t *testing.T) {
			b := newBroker(withDefaultAction(tc.action), withRules(rule("secrets/#", v1.ACLDeny)))
			acl := loadACL(t, b, sensorUsers(t)[:1], nil)
			if got := acl.Check(user, "anything/else", auth.ReadWrite); got != tc.wantUnmatched {
				t.Errorf("unmatched topic allowed = %v, want %v", got, tc.wantUnmatched)
			}
			if acl.Check(user, "secrets/key", auth.Read) {
				t.Error("a deny rule must win even with defaultAction allow")
			}
			if acl.Check(user, "$SYS/broker/uptime", auth.Read) {
				t.Error("defaultAction allow must not open $SYS (a '#' filter does not match $ topics)")
			}
		})
	}
}

func TestRenderACLIsDeterministic(t *testing.T) {
	b := newBroker(withRules(rule("clients/%c/#", v1.ACLReadWrite)))
	users := sensorUsers(t)
	sources := []ACLSource{{ConfigMap: "extra", Key: "acl", Content: extraACL}}
	first, err := RenderACL(b, users, sources)
	if err != nil {
		t.Fatal(err)
	}
	reversed := slices.Clone(users)
	slices.Reverse(reversed)
	for _, order := range [][]User{users, reversed, {users[1], users[2], users[0]}} {
		got, err := RenderACL(b, order, sources)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, first) {
			t.Errorf("users in another order render another ACL:\n%s\nvs\n%s", got, first)
		}
		if pf1, pf2 := PasswordFile(order), PasswordFile(users); !bytes.Equal(pf1, pf2) {
			t.Errorf("users in another order render another password file")
		}
	}
	if !reflect.DeepEqual(users, sensorUsers(t)) {
		t.Error("RenderACL reordered the caller's slice")
	}
}

func TestRenderACLSourceErrorNamesConfigMapAndLine(t *testing.T) {
	b := newBroker(withRules(rule("clients/%c/#", v1.ACLReadWrite)))
	good := ACLSource{ConfigMap: "extra", Key: "acl", Content: extraACL}
	tests := []struct {
		name     string
		source   ACLSource
		wantLine int
		wantMsg  string
	}{
		{"bad access before any user line", ACLSource{ConfigMap: "bad", Key: "acl",
			Content: "# comment\n\ntopic sometimes public/#\n"}, 3, "unknown access"},
		{"bad keyword inside a user section", ACLSource{ConfigMap: "bad", Key: "rules",
			Content: "topic read a/#\nuser bob\ntopic read b/#\n\nsubscribe b/#\n"}, 5, "unknown keyword"},
		{"invalid filter, CRLF line endings", ACLSource{ConfigMap: "bad", Key: "acl",
			Content: "user bob\r\ntopic read b/#\r\ntopic read b/#/c\r\n"}, 3, "#"},
		{"user line without a name", ACLSource{ConfigMap: "bad", Key: "acl",
			Content: "topic read a\nuser\n"}, 2, "missing username"},
		{"no final newline", ACLSource{ConfigMap: "bad", Key: "acl",
			Content: "user bob\ntopic"}, 2, "missing topic filter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The good source comes first, so the line must be counted within the bad one.
			_, err := RenderACL(b, sensorUsers(t), []ACLSource{good, tc.source})
			var se *ACLSourceError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *ACLSourceError", err)
			}
			if se.ConfigMap != tc.source.ConfigMap || se.Key != tc.source.Key || se.Line != tc.wantLine {
				t.Errorf("error at ConfigMap %s key %s line %d, want %s key %s line %d (%v)",
					se.ConfigMap, se.Key, se.Line, tc.source.ConfigMap, tc.source.Key, tc.wantLine, err)
			}
			wantPrefix := "ConfigMap acme/" + tc.source.ConfigMap + " key " + tc.source.Key + " line "
			if msg := err.Error(); !strings.HasPrefix(msg, wantPrefix) || !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("Error() = %q, want prefix %q and %q in it", msg, wantPrefix, tc.wantMsg)
			}
			var pe *auth.ParseError
			if !errors.As(err, &pe) {
				t.Error("the broker's *auth.ParseError should be reachable with errors.As")
			}
		})
	}
}

func TestRenderACLRejectsBadUsersAndRules(t *testing.T) {
	user := func(object, username string, acls ...v1.ACLRule) User {
		return User{Object: object, Username: username, ACLs: acls}
	}
	ok := rule("a/b", v1.ACLRead)
	tests := []struct {
		name    string
		broker  *v1.MQTTBroker
		users   []User
		wantMsg []string
	}{
		{"colon in username", newBroker(), []User{user("u1", "a:b", ok)}, []string{"MQTTUser u1", "':'"}},
		{"newline in username would inject ACL lines", newBroker(),
			[]User{user("u2", "eve\nuser admin", ok)}, []string{"MQTTUser u2"}},
		{"tab in username", newBroker(), []User{user("u3", "ev\te", ok)}, []string{"MQTTUser u3", "control"}},
		{"username starting with #", newBroker(), []User{user("u4", "#eve", ok)}, []string{"MQTTUser u4", "comment"}},
		{"empty username", newBroker(), []User{user("u5", "", ok)}, []string{"MQTTUser u5", "empty"}},
		{"duplicate username", newBroker(), []User{user("old", "same", ok), user("new", "same", ok)},
			[]string{"MQTTUsers new and old", `"same"`}},
		{"user topic with misplaced #", newBroker(), []User{user("u6", "bob", ok, rule("a/#/b", v1.ACLRead))},
			[]string{"MQTTUser u6 spec.acls[1]", `"a/#/b"`}},
		{"user topic with a line break", newBroker(), []User{user("u7", "bob", rule("a\nuser admin\ntopic #", v1.ACLRead))},
			[]string{"MQTTUser u7 spec.acls[0]", "control character"}},
		{"user acl without access would grant readwrite", newBroker(), []User{user("u8", "bob", rule("a/b", ""))},
			[]string{"MQTTUser u8 spec.acls[0]", "access"}},
		{"user topic with surrounding blank", newBroker(), []User{user("u9", "bob", rule("a/b ", v1.ACLRead))},
			[]string{"MQTTUser u9", "blank"}},
		{"broker rule with a+ level", newBroker(withRules(ok, rule("a+/b", v1.ACLRead))), nil,
			[]string{"MQTTBroker acme/fleet spec.authorization.rules[1]", `"a+/b"`}},
		{"unknown default action", newBroker(withDefaultAction("maybe")), nil, []string{"defaultAction", `"maybe"`}},
		{"broker rule with unknown access", newBroker(withRules(rule("a/b", "all"))), nil,
			[]string{"spec.authorization.rules[0]", `"all"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := RenderACL(tc.broker, tc.users, nil)
			if err == nil {
				t.Fatalf("RenderACL accepted it:\n%s", data)
			}
			for _, want := range tc.wantMsg {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			var se *ACLSourceError
			if errors.As(err, &se) {
				t.Errorf("a user or spec error must not be reported as a ConfigMap error: %v", err)
			}
		})
	}
}

func TestACLConfigMap(t *testing.T) {
	b := newBroker()
	acl, err := RenderACL(b, sensorUsers(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	cm := ACLConfigMap(b, acl)
	if cm.Name != "fleet-acl" || cm.Namespace != "acme" {
		t.Errorf("ConfigMap %s/%s, want acme/fleet-acl", cm.Namespace, cm.Name)
	}
	if cm.Data[ACLKey] != string(acl) {
		t.Error("ConfigMap does not hold the rendered ACL under key acl")
	}
	parsed, _ := auth.ParseACL("acl", acl)
	if got := cm.Annotations[RevisionAnnotation]; got != parsed.Revision() {
		t.Errorf("revision annotation %q, the broker will report %q", got, parsed.Revision())
	}
}
