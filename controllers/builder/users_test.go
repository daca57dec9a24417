package builder

import (
	"strings"
	"testing"

	"github.com/fleetmq/fleetmq/broker/auth"
)

func TestPasswordFileLoadsAndVerifies(t *testing.T) {
	users := sensorUsers(t)
	data := PasswordFile(users)
	pf, err := auth.ParsePasswordFile(PasswdKey, data)
	if err != nil {
		t.Fatalf("the broker refuses the password file: %v", err)
	}
	if got := strings.Join(pf.Users(), ","); got != "dashboard,sensor-1" {
		t.Errorf("users in file = %s, want dashboard,sensor-1 (the certificate-only gateway has no line)", got)
	}
	if !pf.Verify("sensor-1", []byte("s1-secret")) || !pf.Verify("dashboard", []byte("dash-secret")) {
		t.Error("a user's password does not verify against the rendered file")
	}
	if pf.Verify("sensor-1", []byte("dash-secret")) {
		t.Error("another user's password verifies")
	}
	if want := "dashboard:" + hashOf(t, "dash-secret") + "\nsensor-1:" + hashOf(t, "s1-secret") + "\n"; string(data) != want {
		t.Errorf("password file =\n%s\nwant lines sorted by username:\n%s", data, want)
	}
}

func TestPasswordFileLeavesOutBadUsers(t *testing.T) {
	good := sensorUsers(t)[0]
	users := []User{
		good,
		{Object: "colon", Username: "a:b", PasswordHash: hashOf(t, "x")},
		{Object: "inject", Username: "eve\nroot", PasswordHash: hashOf(t, "x")},
		{Object: "plain", Username: "plain", PasswordHash: "not-a-hash"},
		{Object: "sensor-1-copy", Username: "sensor-1", PasswordHash: hashOf(t, "other")},
	}
	data := PasswordFile(users)
	pf, err := auth.ParsePasswordFile(PasswdKey, data)
	if err != nil {
		t.Fatalf("one bad user made the whole file unloadable: %v", err)
	}
	if got := strings.Join(pf.Users(), ","); got != "sensor-1" {
		t.Errorf("users = %s, want only sensor-1", got)
	}
	if !pf.Verify("sensor-1", []byte("s1-secret")) {
		t.Error("of two MQTTUsers with one username, the first by object name must keep it")
	}
	for _, u := range users[1:4] {
		if err := ValidateUser(u); err == nil || !strings.Contains(err.Error(), "MQTTUser "+u.Object) {
			t.Errorf("ValidateUser(%s) = %v, want an error naming the MQTTUser", u.Object, err)
		}
	}
	if strings.Contains(ValidateUser(users[3]).Error(), "not-a-hash") {
		t.Error("an error must never quote the password field")
	}
	if err := ValidateUser(good); err != nil {
		t.Errorf("ValidateUser(good) = %v", err)
	}
}

func TestUsersSecret(t *testing.T) {
	b := newBroker()
	users := sensorUsers(t)
	data := PasswordFile(users)
	s := UsersSecret(b, data)
	if s.Name != "fleet-users" || s.Namespace != "acme" {
		t.Errorf("Secret %s/%s, want acme/fleet-users", s.Namespace, s.Name)
	}
	pf, err := auth.ParsePasswordFile(PasswdKey, s.Data[PasswdKey])
	if err != nil {
		t.Fatal(err)
	}
	if s.Annotations[RevisionAnnotation] != pf.Revision() {
		t.Errorf("revision annotation %q, the broker will report %q", s.Annotations[RevisionAnnotation], pf.Revision())
	}
	for _, plain := range []string{"s1-secret", "dash-secret"} {
		if strings.Contains(string(s.Data[PasswdKey]), plain) {
			t.Errorf("the Secret holds the plain password %q", plain)
		}
	}
	if empty := UsersSecret(b, PasswordFile(nil)); empty.Data[PasswdKey] == nil {
		t.Error("a broker without users must still get a (empty) password file, not a null key")
	}
}
