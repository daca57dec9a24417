package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmq/fleetmq/broker/auth"
)

// runPasswdBin runs `fleetmq-broker passwd FILE USER` with password on
// stdin (not a terminal, as in a script) and returns its exit code and
// output.
func runPasswdBin(t *testing.T, file, user, stdin string) (int, string) {
	t.Helper()
	cmd := exec.Command(brokerBin, "passwd", file, user)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), string(out)
	} else if err != nil {
		t.Fatalf("run passwd: %v", err)
	}
	return 0, string(out)
}

// lineOf returns user's line in a password file.
func lineOf(t *testing.T, data []byte, user string) string {
	t.Helper()
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, user+":") {
			return l
		}
	}
	t.Fatalf("no line for %s in\n%s", user, data)
	return ""
}

func verify(t *testing.T, file, user, password string) bool {
	t.Helper()
	pf, err := auth.LoadPasswordFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return pf.Verify(user, []byte(password))
}

func TestPasswdCreatesAndUpdates(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "passwd")

	if code, out := runPasswdBin(t, file, "alice", "alice pw\n"); code != 0 {
		t.Fatalf("passwd alice: exit %d\n%s", code, out)
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("new password file has mode %v, want 0600", st.Mode().Perm())
	}
	if !verify(t, file, "alice", "alice pw") {
		t.Fatal("alice's password does not verify")
	}
	data, _ := os.ReadFile(file)
	if !strings.HasPrefix(lineOf(t, data, "alice"), "alice:$7$") {
		t.Errorf("alice's entry is not a $7$ hash: %s", data)
	}

	// A second user is added; the first line stays byte for byte.
	aliceLine := lineOf(t, data, "alice")
	if code, out := runPasswdBin(t, file, "bob", "bob pw"); code != 0 { // no newline: EOF ends it
		t.Fatalf("passwd bob: exit %d\n%s", code, out)
	}
	data, _ = os.ReadFile(file)
	if lineOf(t, data, "alice") != aliceLine || !verify(t, file, "bob", "bob pw") {
		t.Fatalf("adding bob changed alice or bob does not verify:\n%s", data)
	}

	// Changing alice's password keeps bob.
	bobLine := lineOf(t, data, "bob")
	if code, out := runPasswdBin(t, file, "alice", "new pw\r\n"); code != 0 {
		t.Fatalf("passwd alice again: exit %d\n%s", code, out)
	}
	data, _ = os.ReadFile(file)
	if lineOf(t, data, "bob") != bobLine || !verify(t, file, "alice", "new pw") || verify(t, file, "alice", "alice pw") {
		t.Fatalf("changing alice's password went wrong:\n%s", data)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("mode after an update %v, want 0600 kept", st.Mode().Perm())
	}

	// Failures change nothing.
	for _, tc := range []struct{ name, user, stdin, want string }{
		{"empty password", "carol", "\n", "empty password"},
		{"bad username", "car:ol", "pw\n", "cannot be stored"},
	} {
		code, out := runPasswdBin(t, file, tc.user, tc.stdin)
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d, output %q; want a failure saying %q", tc.name, code, out, tc.want)
		}
		if now, _ := os.ReadFile(file); !bytes.Equal(now, data) {
			t.Errorf("%s changed the file", tc.name)
		}
	}
}

func TestPasswdKeepsSymlinkAndRefusesBrokenFile(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real-passwd")
	if err := os.WriteFile(real, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "passwd")
	if err := os.Symlink("real-passwd", link); err != nil {
		t.Fatal(err)
	}
	if code, out := runPasswdBin(t, link, "alice", "pw\n"); code != 0 {
		t.Fatalf("passwd through a symlink: exit %d\n%s", code, out)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced: %v", err)
	}
	if st, _ := os.Stat(real); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the file's own 0640 kept", st.Mode().Perm())
	}
	if !verify(t, real, "alice", "pw") {
		t.Fatal("alice does not verify in the symlink's target")
	}

	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, []byte("alice:$7$x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := runPasswdBin(t, broken, "bob", "pw\n")
	if code == 0 || !strings.Contains(out, broken+":1:") {
		t.Errorf("passwd on a broken file: exit %d, output %q; want a failure naming %s:1", code, out, broken)
	}
}

// TestPasswdFileServesMosquittoClients: what `fleetmq-broker passwd`
// writes, the broker (started with --password-file) accepts from Debian's
// mosquitto_pub; a wrong password is refused.
func TestPasswdFileServesMosquittoClients(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwd")
	if code, out := runPasswdBin(t, file, "alice", "s3cret pw\n"); code != 0 {
		t.Fatalf("passwd: exit %d\n%s", code, out)
	}
	port := freePort(t)
	p := startBrokerProc(t, "--listen", "127.0.0.1:"+port, "--password-file", file)
	defer p.stop()
	pubBin := mosquittoTool(t, "mosquitto_pub")
	for _, tc := range []struct {
		password string
		ok       bool
	}{{"s3cret pw", true}, {"wrong", false}} {
		pub := startProc(t, pubBin, "-h", "127.0.0.1", "-p", port, "-u", "alice", "-P", tc.password, "-t", "t", "-m", "x", "-q", "1")
		if code := pub.exitCode(); (code == 0) != tc.ok {
			t.Errorf("mosquitto_pub as alice with %q: exit %d, want success %v\n%s", tc.password, code, tc.ok, pub.out)
		}
	}
	if strings.Contains(p.out.String(), "s3cret") || strings.Contains(p.out.String(), "$7$") {
		t.Errorf("the broker log shows a password or hash:\n%s", p.out)
	}
}
