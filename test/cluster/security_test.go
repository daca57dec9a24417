package cluster

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"golang.org/x/sys/unix"
)

func TestContainerIdentityFollowsTheSecurityContext(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	yes, no := true, false
	pod := func(psc *corev1.PodSecurityContext, sc *corev1.SecurityContext) (*corev1.Pod, *corev1.Container) {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "broker-0", Namespace: "mqtt", UID: "u1"},
			Spec:       corev1.PodSpec{SecurityContext: psc, Containers: []corev1.Container{{Name: "broker", SecurityContext: sc}}},
		}
		return p, &p.Spec.Containers[0]
	}
	for _, tc := range []struct {
		name    string
		psc     *corev1.PodSecurityContext
		sc      *corev1.SecurityContext
		want    *sandboxIdentity
		wantErr string
	}{
		{name: "nothing asked: root", want: nil},
		{name: "the operator's pods",
			psc:  &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: i64(65532), RunAsGroup: i64(65532), FSGroup: i64(65532)},
			sc:   &corev1.SecurityContext{AllowPrivilegeEscalation: &no},
			want: &sandboxIdentity{UID: 65532, GID: 65532, Groups: []uint32{65532}, NoNewPrivs: true}},
		{name: "container wins over pod",
			psc:  &corev1.PodSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(1000), SupplementalGroups: []int64{5, 6}},
			sc:   &corev1.SecurityContext{RunAsUser: i64(2000)},
			want: &sandboxIdentity{UID: 2000, GID: 1000, Groups: []uint32{5, 6}}},
		{name: "non-root without a user",
			psc:     &corev1.PodSecurityContext{RunAsNonRoot: &yes},
			wantErr: `container has runAsNonRoot and image will run as root (pod: "broker-0_mqtt(u1)", container: broker)`},
		{name: "non-root with user 0",
			psc:     &corev1.PodSecurityContext{RunAsUser: i64(1000)},
			sc:      &corev1.SecurityContext{RunAsNonRoot: &yes, RunAsUser: i64(0)},
			wantErr: "container's runAsUser breaks non-root policy"},
		{name: "runAsNonRoot false allows root",
			psc:  &corev1.PodSecurityContext{RunAsNonRoot: &no, RunAsUser: i64(0)},
			want: &sandboxIdentity{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, c := pod(tc.psc, tc.sc)
			got, err := containerIdentity(p, c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v; want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || got != nil && (got.UID != tc.want.UID || got.GID != tc.want.GID ||
				got.NoNewPrivs != tc.want.NoNewPrivs || !equalGroups(got.Groups, tc.want.Groups)) {
				t.Fatalf("identity %+v; want %+v", got, tc.want)
			}
		})
	}
}

func equalGroups(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSandboxRunsAsTheContainerUser starts a process the way the node agent does for a pod
// with runAsUser, runAsGroup, fsGroup and allowPrivilegeEscalation: false. The process has
// that identity and no capabilities, reads a 0440 Secret file through fsGroup but not a
// root-only one, and its binary lives in a directory the user cannot enter (the host's
// binary is executed through a descriptor opened as root).
func TestSandboxRunsAsTheContainerUser(t *testing.T) {
	requireRoot(t)
	const uid = 65532
	binDir := t.TempDir() // 0700, root's
	shell := filepath.Join(binDir, "sh")
	data, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shell, data, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := t.TempDir()
	if _, err := writeAtomic(secret, map[string]volumeFile{"password": {Data: []byte("s3cret\n"), Mode: 0o440}}, uid); err != nil {
		t.Fatal(err)
	}
	rootOnly := t.TempDir()
	if _, err := writeAtomic(rootOnly, map[string]volumeFile{"key": {Data: []byte("k\n"), Mode: 0o440}}, -1); err != nil {
		t.Fatal(err)
	}
	out, err := runSandbox(t, sandboxSpec{
		Mounts: []sandboxMount{
			{Source: secret, Target: "/etc/fleetmq-sandbox-test/users", ReadOnly: true},
			{Source: rootOnly, Target: "/etc/fleetmq-sandbox-test/other", ReadOnly: true},
		},
		Path: shell,
		Args: []string{"sh", "-c", "id -u; id -g; id -G; grep -E '^(NoNewPrivs|CapEff)' /proc/self/status; " +
			"cat /etc/fleetmq-sandbox-test/users/password; cat /etc/fleetmq-sandbox-test/other/key 2>/dev/null || echo other-denied"},
		Env:      []string{"PATH=" + defaultPath},
		Identity: &sandboxIdentity{UID: uid, GID: uid, Groups: []uint32{uid}, NoNewPrivs: true},
	})
	if err != nil {
		t.Fatalf("sandbox run failed: %v\n%s", err, out)
	}
	lines := strings.Fields(out)
	want := []string{"65532", "65532", "65532", "CapEff:", "0000000000000000", "NoNewPrivs:", "1", "s3cret", "other-denied"}
	if strings.Join(lines, " ") != strings.Join(want, " ") {
		t.Fatalf("output:\n%s\nwant the words %q", out, want)
	}
}

// TestFSGroupOnWritableVolumes: the first application walks the volume; under
// OnRootMismatch a volume whose root is already right is left alone, so a large PVC is not
// walked at every pod start.
func TestFSGroupOnWritableVolumes(t *testing.T) {
	requireRoot(t)
	const gid = 65532
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "store"), 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "store", "segment")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	onMismatch := corev1.FSGroupChangeOnRootMismatch
	if err := applyFSGroup(dir, gid, &onMismatch); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o770 | os.ModeSetgid, filepath.Join(dir, "store"): 0o770 | os.ModeSetgid, file: 0o660} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		g, _ := statGID(fi)
		if g != gid || fi.Mode()&(os.ModePerm|os.ModeSetgid) != want {
			t.Errorf("%s: group %d mode %v; want group %d mode %v", p, g, fi.Mode(), gid, want)
		}
	}
	// Root already right: a file that lost its group stays as it is.
	if err := os.Chown(file, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := applyFSGroup(dir, gid, &onMismatch); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(file); func() int { g, _ := statGID(fi); return g }() != 0 {
		t.Errorf("OnRootMismatch walked a volume whose root was already right")
	}
	if err := applyFSGroup(dir, gid, nil); err != nil { // Always
		t.Fatal(err)
	}
	if fi, _ := os.Stat(file); func() int { g, _ := statGID(fi); return g }() != gid {
		t.Errorf("the Always policy did not walk the volume")
	}
}

// TestSandboxReadOnlyRoot: with readOnlyRootFilesystem a container can write its writable
// volumes, /dev/null and /dev/shm, and nothing else: not /tmp, not a read-only volume.
func TestSandboxReadOnlyRoot(t *testing.T) {
	requireRoot(t)
	data := t.TempDir()
	config := t.TempDir()
	try := func(path string) string {
		return "if ( : > " + path + " ) 2>/dev/null; then echo " + path + "=rw; else echo " + path + "=ro; fi; "
	}
	out, err := runSandbox(t, sandboxSpec{
		Mounts: []sandboxMount{
			{Source: data, Target: "/var/lib/fleetmq-sandbox-test"},
			{Source: config, Target: "/etc/fleetmq-sandbox-test", ReadOnly: true},
		},
		Path: "/bin/sh",
		Args: []string{"sh", "-c", try("/var/lib/fleetmq-sandbox-test/state") + try("/dev/null") + try("/dev/shm/fleetmq-sandbox-test") +
			try("/tmp/fleetmq-sandbox-test") + try("/etc/fleetmq-sandbox-test/x") + "rm -f /dev/shm/fleetmq-sandbox-test"},
		Env:          []string{"PATH=" + defaultPath},
		ReadOnlyRoot: true,
	})
	if err != nil {
		t.Fatalf("sandbox run failed: %v\n%s", err, out)
	}
	want := "/var/lib/fleetmq-sandbox-test/state=rw /dev/null=rw /dev/shm/fleetmq-sandbox-test=rw /tmp/fleetmq-sandbox-test=ro /etc/fleetmq-sandbox-test/x=ro"
	if got := strings.Join(strings.Fields(out), " "); got != want {
		t.Fatalf("writable paths:\n%s\nwant\n%s", got, want)
	}
	if _, err := os.Stat("/tmp/fleetmq-sandbox-test"); !os.IsNotExist(err) {
		t.Errorf("the container wrote to the host's /tmp")
	}
}

// An unchanged payload under fsGroup touches nothing, not even an attribute: the broker's
// file watcher would see a chown to the same group as a change.
func TestWriteAtomicWithFSGroupLeavesAnUnchangedVolumeAlone(t *testing.T) {
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "users")
	payload := map[string]volumeFile{"passwords": {Data: []byte("u:$7$x\n"), Mode: 0o440}}
	if _, err := writeAtomic(dir, payload, 65532); err != nil {
		t.Fatal(err)
	}
	ctimes := func() map[string]unix.Timespec {
		out := map[string]unix.Timespec{}
		_ = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
			var st unix.Stat_t
			if err == nil && unix.Lstat(p, &st) == nil {
				out[p] = st.Ctim
			}
			return err
		})
		return out
	}
	before := ctimes()
	time.Sleep(20 * time.Millisecond) // so that a change would show in the ctime
	changed, err := writeAtomic(dir, payload, 65532)
	if err != nil || changed {
		t.Fatalf("second write: changed=%v err=%v", changed, err)
	}
	for p, c := range ctimes() {
		if before[p] != c {
			t.Errorf("%s was touched by a write of the same payload", p)
		}
	}
}
