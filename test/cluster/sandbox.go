package cluster

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// A container is started through a re-exec of the current binary (the test binary, or the
// local-cluster command) with sandboxEnv naming a JSON sandboxSpec. The init function below
// notices the variable before main runs, builds the container's view of the machine on its
// own OS thread, and execs the container's binary, which inherits that thread's namespaces:
//
//   - a private mount namespace in which each volume is bind-mounted at its mountPath; a
//     mount point whose directory does not exist on the host (/etc/fleetmq/config) is made
//     inside an overlay of its nearest existing ancestor, whose upper layer is a tmpfs, so
//     the host's filesystem is never written to;
//   - its own UTS namespace with the pod's hostname;
//   - the pod's network namespace;
//   - a read-only view of everything but its writable volumes when the container asks for
//     readOnlyRootFilesystem;
//   - the user, groups and no_new_privs flag of the container's security context
//     (security.go), taken last, after everything that needs root.
//
// No file outside the pod's directory and no mount outside the private namespace is ever
// changed, and everything disappears with the last process of the container.

// sandboxEnv names the spec file; it never reaches the container's environment.
const sandboxEnv = "FLEETMQ_LOCALCLUSTER_SANDBOX"

// sandboxExitCode is the exit status of a helper that failed before exec; the reason is in
// sandboxSpec.ErrorFile.
const sandboxExitCode = 127

// sandboxSpec is how the node agent tells the helper what to build.
type sandboxSpec struct {
	Netns      string           `json:"netns"`    // path of the pod's network namespace (/run/netns/...)
	Hostname   string           `json:"hostname"` // pod hostname
	Scratch    string           `json:"scratch"`  // directory for the tmpfs holding overlay layers
	Mounts     []sandboxMount   `json:"mounts"`
	Path       string           `json:"path"` // binary to exec
	Args       []string         `json:"args"` // argv, argv[0] included
	Env        []string         `json:"env"`
	WorkingDir string           `json:"workingDir,omitempty"`
	Identity   *sandboxIdentity `json:"identity,omitempty"` // nil: run as root
	// ReadOnlyRoot makes every mount read-only except the writable volumes and the
	// kernel's /dev, /dev/shm and /proc (readOnlyRootFilesystem).
	ReadOnlyRoot bool   `json:"readOnlyRoot,omitempty"`
	ErrorFile    string `json:"errorFile"` // where a failure before exec is written
}

// sandboxMount bind-mounts Source at Target.
type sandboxMount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

func init() {
	path := os.Getenv(sandboxEnv)
	if path == "" {
		return
	}
	// Namespaces belong to the OS thread; exec from the same thread carries them over.
	runtime.LockOSThread()
	spec, err := readSandboxSpec(path)
	var errFile *os.File
	if err == nil && spec.ErrorFile != "" {
		// Opened before any mount: an overlay may hide its path later. Close-on-exec, so a
		// started container never holds it.
		errFile, _ = os.OpenFile(spec.ErrorFile, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	}
	if err == nil {
		err = enterSandbox(spec) // returns only on failure
	}
	msg := fmt.Sprintf("fleetmq local node: cannot start the container: %v\n", err)
	os.Stderr.WriteString(msg)
	if errFile != nil {
		_, _ = errFile.WriteString(strings.TrimSpace(msg))
		errFile.Close()
	}
	os.Exit(sandboxExitCode)
}

func readSandboxSpec(path string) (*sandboxSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the sandbox spec: %w", err)
	}
	var spec sandboxSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("parse the sandbox spec %s: %w", path, err)
	}
	return &spec, nil
}

// sandboxBuilder tracks which directories are the pod's own to create mount points in.
type sandboxBuilder struct {
	spec     *sandboxSpec
	owned    []string // overlays and bind mounts made here: creating a directory inside them writes nothing on the host
	overlays int
	scratch  string // the scratch tmpfs, as /proc/self/fd/N: its path may be covered by an overlay
}

func enterSandbox(spec *sandboxSpec) error {
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_NEWUTS); err != nil {
		return fmt.Errorf("unshare the mount and UTS namespaces: %w", err)
	}
	// Without this, mounts made below would propagate back to the host's namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("set the hostname %q: %w", spec.Hostname, err)
		}
	}
	b := &sandboxBuilder{spec: spec}
	if err := b.mountAll(); err != nil {
		return err
	}
	if spec.ReadOnlyRoot {
		if err := readOnlyRoot(spec.Mounts); err != nil {
			return err
		}
	}
	if spec.Netns != "" {
		fd, err := unix.Open(spec.Netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open the pod network namespace %s: %w", spec.Netns, err)
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter the pod network namespace %s: %w", spec.Netns, err)
		}
		unix.Close(fd)
	}
	wd := spec.WorkingDir
	if wd == "" {
		wd = "/"
	}
	if err := os.Chdir(wd); err != nil {
		return fmt.Errorf("change to the working directory %s: %w", wd, err)
	}
	if len(spec.Args) == 0 {
		return errors.New("no command to run")
	}
	path := spec.Path
	if id := spec.Identity; id != nil {
		// The binary is the host's, and the directories on its path need not be open to
		// the container's user (a checkout under /root): it is opened while still root
		// and executed through the descriptor, as a runtime executes a file of its
		// image. Close-on-exec is fine for a binary, not for a script, whose
		// interpreter would need to open the path after the exec.
		fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		path = fmt.Sprintf("/proc/self/fd/%d", fd)
		if err := dropPrivileges(id); err != nil {
			return err
		}
	}
	if err := unix.Exec(path, spec.Args, spec.Env); err != nil {
		return fmt.Errorf("exec %s: %w", spec.Path, err)
	}
	return nil
}

// readOnlyRoot makes the container's whole view of the filesystem read-only, as a
// readOnlyRootFilesystem container's image is, and then writable again where a container
// runtime leaves it writable: the writable volumes, and /dev, /dev/shm and /proc. Device
// files such as /dev/null stay writable on a read-only mount anyway.
func readOnlyRoot(mounts []sandboxMount) error {
	ro := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(-1, "/", unix.AT_RECURSIVE, &ro); err != nil {
		return fmt.Errorf("make the root filesystem read-only: %w", err)
	}
	rw := unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}
	for _, p := range []string{"/dev", "/dev/shm", "/proc"} {
		// EINVAL: not a mount point on this host; it is then part of the root.
		if err := unix.MountSetattr(-1, p, 0, &rw); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("make %s writable again: %w", p, err)
		}
	}
	for _, m := range mounts {
		if m.ReadOnly {
			continue
		}
		if err := unix.MountSetattr(-1, m.Target, unix.AT_RECURSIVE, &rw); err != nil {
			return fmt.Errorf("make the volume at %s writable again: %w", m.Target, err)
		}
	}
	return nil
}

// dropPrivileges makes the calling thread id's user. The system calls are raw and change
// this thread only (syscall.Setuid changes every thread of the process, and refuses to
// when cgo is linked in): this thread execs next, and the new program inherits only its
// credentials. Groups before the gid before the uid: once the uid is not 0, changing the
// others is no longer allowed. Leaving uid 0 clears the capability sets as well.
func dropPrivileges(id *sandboxIdentity) error {
	groups := make([]int, len(id.Groups))
	for i, g := range id.Groups {
		groups[i] = int(g)
	}
	if err := unix.Setgroups(groups); err != nil {
		return fmt.Errorf("set supplementary groups %v: %w", id.Groups, err)
	}
	g, u := uintptr(id.GID), uintptr(id.UID)
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESGID, g, g, g); errno != 0 {
		return fmt.Errorf("set group %d: %w", id.GID, errno)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, u, u, u); errno != 0 {
		return fmt.Errorf("set user %d: %w", id.UID, errno)
	}
	if id.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	return nil
}

func (b *sandboxBuilder) mountAll() error {
	mounts := append([]sandboxMount(nil), b.spec.Mounts...)
	// Parents before children: "/a" sorts before "/a/b".
	sort.SliceStable(mounts, func(i, j int) bool { return mounts[i].Target < mounts[j].Target })
	// Every path the host gave is opened first and used through /proc/self/fd from then on:
	// an overlay made for a mount point may cover the pod directory itself (a mountPath
	// under /tmp when the cluster lives in /tmp), and a bind of the overlay's copy of a
	// volume would not see updates, nor share writes with the other containers.
	sources := make([]string, len(mounts))
	dirs := make([]bool, len(mounts))
	for i, m := range mounts {
		fd, err := unix.Open(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("volume source for %s: open %s: %w", m.Target, m.Source, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fmt.Errorf("volume source for %s: %w", m.Target, err)
		}
		sources[i] = fmt.Sprintf("/proc/self/fd/%d", fd)
		dirs[i] = st.Mode&unix.S_IFMT == unix.S_IFDIR
	}
	if len(mounts) > 0 && b.spec.Scratch != "" {
		if err := os.MkdirAll(b.spec.Scratch, 0o700); err != nil {
			return fmt.Errorf("create the sandbox scratch directory: %w", err)
		}
		// Overlay layers live on a tmpfs: overlayfs cannot use every filesystem as an upper
		// layer (not another overlay, for one), and a tmpfs vanishes with the namespace.
		if err := unix.Mount("tmpfs", b.spec.Scratch, "tmpfs", 0, "mode=0700,size=64m"); err != nil {
			return fmt.Errorf("mount the sandbox scratch tmpfs: %w", err)
		}
		fd, err := unix.Open(b.spec.Scratch, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open the sandbox scratch tmpfs: %w", err)
		}
		b.scratch = fmt.Sprintf("/proc/self/fd/%d", fd)
	}
	for i, m := range mounts {
		if err := b.ensureMountPoint(m.Target, dirs[i]); err != nil {
			return err
		}
		if err := unix.Mount(sources[i], m.Target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s at %s: %w", m.Source, m.Target, err)
		}
		if m.ReadOnly {
			if err := unix.Mount("", m.Target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("make %s read-only: %w", m.Target, err)
			}
		}
		b.owned = append(b.owned, m.Target)
	}
	return nil
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// ensureMountPoint makes target exist as a directory (or a file, for a file bind-mount)
// without writing to the host's filesystem.
func (b *sandboxBuilder) ensureMountPoint(target string, dir bool) error {
	if !filepath.IsAbs(target) {
		return fmt.Errorf("mountPath %q is not absolute", target)
	}
	target = filepath.Clean(target)
	if fi, err := os.Stat(target); err == nil {
		if fi.IsDir() != dir {
			return fmt.Errorf("cannot mount a %s at %s: it is a %s on this machine", kind(dir), target, kind(fi.IsDir()))
		}
		return nil
	}
	ancestor := filepath.Dir(target)
	for {
		if fi, err := os.Stat(ancestor); err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("cannot create the mount point %s: %s is not a directory", target, ancestor)
			}
			break
		}
		ancestor = filepath.Dir(ancestor)
	}
	// /var/run is a symlink to /run on most systems: overlay (and look for mounts below) the
	// real directory, or the mounts under /run (the network namespaces among them) would be
	// hidden.
	if real, err := filepath.EvalSymlinks(ancestor); err == nil {
		ancestor = real
	}
	owned := false
	for _, o := range b.owned {
		if under(ancestor, o) {
			owned = true
			break
		}
	}
	if !owned {
		if err := b.overlay(ancestor); err != nil {
			return fmt.Errorf("create the mount point %s: %w", target, err)
		}
	}
	if dir {
		return os.MkdirAll(target, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

func kind(dir bool) string {
	if dir {
		return "directory"
	}
	return "file"
}

// overlay covers dir with an overlay whose upper layer is on the scratch tmpfs, so that
// mount points can be created in it. Mounts below dir (a bind-mounted /etc/hosts, say) would
// be hidden by the overlay; they are bind-mounted again from a staging copy.
func (b *sandboxBuilder) overlay(dir string) error {
	if dir == "/" {
		return errors.New("the nearest existing directory is /, which cannot be overlaid for a single process; use a mountPath under an existing directory such as /etc, /var or /opt")
	}
	if b.scratch == "" {
		return errors.New("no scratch directory for overlays")
	}
	if strings.ContainsAny(dir, ",:") {
		return fmt.Errorf("overlay paths may not contain ',' or ':' (%s)", dir)
	}
	b.overlays++
	base := filepath.Join(b.scratch, fmt.Sprintf("ov%d", b.overlays))
	upper, work, stage := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "stage")
	for _, d := range []string{upper, work, stage} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	subs, err := submounts(dir)
	if err != nil {
		return err
	}
	if len(subs) > 0 {
		if err := unix.Mount(dir, stage, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("stage %s: %w", dir, err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", dir, upper, work)
	if err := unix.Mount("overlay", dir, "overlay", 0, opts); err != nil {
		return fmt.Errorf("overlay %s: %w", dir, err)
	}
	for _, rel := range subs {
		if err := unix.Mount(filepath.Join(stage, rel), filepath.Join(dir, rel), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("restore the mount %s under the overlay: %w", filepath.Join(dir, rel), err)
		}
	}
	if len(subs) > 0 {
		_ = unix.Unmount(stage, unix.MNT_DETACH)
	}
	b.owned = append(b.owned, dir)
	return nil
}

// submounts returns the mount points strictly below dir, relative to it, leaving out those
// below another one in the list (a recursive bind of the outer one brings them along).
func submounts(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp != dir && under(mp, dir) {
			points = append(points, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.Strings(points)
	var rels []string
	for i, p := range points {
		nested := false
		for _, q := range points[:i] {
			if p != q && under(p, q) {
				nested = true
				break
			}
		}
		if !nested && (len(rels) == 0 || rels[len(rels)-1] != strings.TrimPrefix(p, dir+"/")) {
			rels = append(rels, strings.TrimPrefix(p, strings.TrimSuffix(dir, "/")+"/"))
		}
	}
	return rels, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				sb.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}
