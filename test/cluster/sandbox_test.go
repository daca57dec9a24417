package cluster

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (network namespaces, mounts); run as root, e.g. sudo go test ./test/cluster/")
	}
}

// runSandbox starts spec through the same re-exec path the node agent uses and returns the
// combined output.
func runSandbox(t *testing.T, spec sandboxSpec) (string, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	spec.Scratch = filepath.Join(dir, "scratch")
	if spec.ErrorFile == "" {
		spec.ErrorFile = filepath.Join(dir, "err")
	}
	data, _ := json.Marshal(spec)
	specPath := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(specPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = []string{sandboxEnv + "=" + specPath}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSandboxMountsVolumesWithoutTouchingTheHost runs a command in the container sandbox:
// a volume appears read-only at a mountPath whose directories do not exist on the host, the
// hostname is the pod's, and the host's filesystem is unchanged afterwards.
func TestSandboxMountsVolumesWithoutTouchingTheHost(t *testing.T) {
	requireRoot(t)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "broker.yaml"), []byte("listeners: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := "/etc/fleetmq-sandbox-test/config"
	// A writable volume mounted under /tmp, where the volume's own directory lives too: the
	// overlay that makes the mount point must not cut the container off the real directory.
	data := t.TempDir()
	dataTarget := "/tmp/fleetmq-sandbox-test/data"
	out, err := runSandbox(t, sandboxSpec{
		Hostname: "broker-0",
		Mounts: []sandboxMount{
			{Source: vol, Target: target, ReadOnly: true},
			{Source: data, Target: dataTarget},
		},
		Path: "/bin/sh",
		Args: []string{"sh", "-c", "cat " + target + "/broker.yaml; hostname; " +
			"if touch " + target + "/x 2>/dev/null; then echo writable; else echo read-only; fi; test -f /etc/passwd && echo etc-intact; " +
			"echo persisted > " + dataTarget + "/state"},
		Env: []string{"PATH=" + defaultPath},
	})
	if err != nil {
		t.Fatalf("sandbox run failed: %v\n%s", err, out)
	}
	for _, want := range []string{"listeners: []", "broker-0", "read-only", "etc-intact"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got, err := os.ReadFile(filepath.Join(data, "state")); err != nil || string(got) != "persisted\n" {
		t.Errorf("a file written to the writable volume is not in its host directory: %q %v", got, err)
	}
	if _, err := os.Stat("/tmp/fleetmq-sandbox-test"); !os.IsNotExist(err) {
		t.Errorf("the sandbox created /tmp/fleetmq-sandbox-test on the host (%v)", err)
	}
	if _, err := os.Stat("/etc/fleetmq-sandbox-test"); !os.IsNotExist(err) {
		t.Errorf("the sandbox created /etc/fleetmq-sandbox-test on the host (%v)", err)
	}
	if h, _ := os.Hostname(); h == "broker-0" {
		t.Errorf("the sandbox changed the host's hostname")
	}
}

// TestSandboxReportsStartErrors checks that a container that cannot start says why.
func TestSandboxReportsStartErrors(t *testing.T) {
	requireRoot(t)
	errorFile := filepath.Join(t.TempDir(), "start.err")
	out, err := runSandbox(t, sandboxSpec{Path: "/nonexistent/broker", Args: []string{"broker"}, ErrorFile: errorFile})
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != sandboxExitCode {
		t.Fatalf("exit: %v; want status %d", err, sandboxExitCode)
	}
	if !strings.Contains(out, "/nonexistent/broker") {
		t.Errorf("the error does not name the binary:\n%s", out)
	}
	if msg, _ := os.ReadFile(errorFile); !strings.Contains(string(msg), "/nonexistent/broker") {
		t.Errorf("the error file holds %q; want the reason, for the pod status", msg)
	}
}
