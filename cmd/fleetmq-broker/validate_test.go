package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runBin runs the broker binary to completion and returns its exit code
// and output.
func runBin(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(brokerBin, args...).CombinedOutput()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), string(out)
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return 0, string(out)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A $7$ entry made by mosquitto_passwd (password "pw"), so the tests need
// no hashing.
const alicePasswd = "alice:$7$101$ek/SWY2w9qByUG0i$b/PDgxRMj0YvTCky6aXx2vO8gIwAML+hvwhf4KKf8vS7xzVWhgmJ5vCBrcmBgZy6fd/+AlhUhwDFBds69s4P+g==\n"

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	acl := writeFile(t, dir, "acl", "user alice\ntopic readwrite a/#\n")
	passwd := writeFile(t, dir, "passwd", alicePasswd)
	conf := writeFile(t, dir, "broker.yaml", "passwordFile: "+passwd+"\naclFile: "+acl+"\n")
	brokenACL := writeFile(t, dir, "broken-acl", "user alice\ntopic sometimes a/#\n")
	brokenPasswd := writeFile(t, dir, "broken-passwd", "# users\nalice\n")
	brokenConf := writeFile(t, dir, "broken.yaml", "aclFile: "+acl+"\nallowAnonymus: true\n")

	for _, tc := range []struct {
		name string
		args []string
		ok   bool
		want []string
	}{
		{"good config and the files it names", []string{"--config", conf}, true, []string{conf + ": ok", acl + ": ok", passwd + ": ok"}},
		{"ACL file alone", []string{"--acl-file", acl}, true, []string{acl + ": ok"}},
		{"broken ACL overrides the config's", []string{"--config", conf, "--acl-file", brokenACL}, false, []string{brokenACL + ":2:"}},
		{"broken password file", []string{"--password-file", brokenPasswd}, false, []string{brokenPasswd + ":2:"}},
		{"broken config", []string{"--config", brokenConf}, false, []string{brokenConf, "line 2", "allowAnonymus"}},
		{"both broken: every error", []string{"--acl-file", brokenACL, "--password-file", brokenPasswd}, false,
			[]string{brokenACL + ":2:", brokenPasswd + ":2:"}},
		{"nothing to check", nil, false, []string{"nothing to validate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runBin(t, append([]string{"validate"}, tc.args...)...)
			if (code == 0) != tc.ok {
				t.Errorf("exit %d, want success %v:\n%s", code, tc.ok, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestStartupFailsOnBrokenFiles(t *testing.T) {
	dir := t.TempDir()
	brokenACL := writeFile(t, dir, "acl", "user alice\n\ntopic readwrite a/#/b\n")
	code, out := runBin(t, "--listen", "127.0.0.1:"+freePort(t), "--acl-file", brokenACL)
	if code == 0 || !strings.Contains(out, brokenACL+":3:") {
		t.Errorf("start with a broken ACL: exit %d, want non-zero with %s:3:\n%s", code, brokenACL, out)
	}
	missingCert := filepath.Join(dir, "missing.crt")
	code, out = runBin(t, "--listen", "127.0.0.1:"+freePort(t), "--tls-cert", missingCert, "--tls-key", missingCert,
		"--tls-listen", "127.0.0.1:"+freePort(t))
	if code == 0 || !strings.Contains(out, missingCert) {
		t.Errorf("start with a missing certificate: exit %d, want non-zero naming %s:\n%s", code, missingCert, out)
	}
}
