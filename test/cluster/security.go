package cluster

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	corev1 "k8s.io/api/core/v1"
)

// The node agent applies the identity parts of a pod's security context as the kubelet and
// a container runtime would, so that a broker pod that could not read its own Secrets or
// write its own volume as its non-root user fails here as it would in a cluster:
//
//   - runAsUser, runAsGroup, fsGroup and supplementalGroups: the container process runs with
//     that uid, gid and supplementary groups (container settings win over the pod's);
//   - runAsNonRoot: a container that would run as root is not started
//     (CreateContainerConfigError, with the kubelet's message);
//   - allowPrivilegeEscalation: false sets no_new_privs;
//   - readOnlyRootFilesystem: everything the container sees is read-only except its
//     writable volumes, /dev, /dev/shm and /proc (sandbox.go);
//   - fsGroup: Secret, ConfigMap, downward API, projected, emptyDir and PVC volumes are
//     group-owned by it, with group read (and write, for writable volumes) added to their
//     modes and the setgid bit on their directories, as the kubelet's SetVolumeOwnership
//     does. A PVC under fsGroupChangePolicy OnRootMismatch is walked only when its root
//     directory's group or mode is not yet right.
//
// A container that sets none of these runs as root, as a container whose image names no
// user does. Capabilities (beyond those a non-root user lacks anyway) and seccomp are not
// applied, and the container sees the host's filesystem, not an image.

// sandboxIdentity is who a container's process runs as.
type sandboxIdentity struct {
	UID        uint32   `json:"uid"`
	GID        uint32   `json:"gid"`
	Groups     []uint32 `json:"groups,omitempty"`
	NoNewPrivs bool     `json:"noNewPrivs,omitempty"`
}

// Masks the kubelet adds to the modes of a volume's files under fsGroup.
const (
	fsGroupReadOnlyMask  os.FileMode = 0o440
	fsGroupReadWriteMask os.FileMode = 0o660
	fsGroupExecMask      os.FileMode = 0o110 // directories only
)

// containerIdentity resolves the process identity of container c of pod. It returns nil
// when the pod asks for none (the process runs as root), and an error, worded as the
// kubelet's, when runAsNonRoot forbids what it would run as.
func containerIdentity(pod *corev1.Pod, c *corev1.Container) (*sandboxIdentity, error) {
	var uid, gid *int64
	var nonRoot *bool
	var groups []uint32
	noNewPrivs := false
	if psc := pod.Spec.SecurityContext; psc != nil {
		uid, gid, nonRoot = psc.RunAsUser, psc.RunAsGroup, psc.RunAsNonRoot
		if psc.FSGroup != nil {
			groups = append(groups, uint32(*psc.FSGroup))
		}
		for _, g := range psc.SupplementalGroups {
			groups = append(groups, uint32(g))
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
		if sc.RunAsNonRoot != nil {
			nonRoot = sc.RunAsNonRoot
		}
		noNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
	}
	if nonRoot != nil && *nonRoot {
		where := fmt.Sprintf("(pod: %q, container: %s)", pod.Name+"_"+pod.Namespace+"("+string(pod.UID)+")", c.Name)
		switch {
		case uid == nil:
			// No image here to name a user: its default is root.
			return nil, fmt.Errorf("container has runAsNonRoot and image will run as root %s", where)
		case *uid == 0:
			return nil, fmt.Errorf("container's runAsUser breaks non-root policy %s", where)
		}
	}
	if uid == nil && gid == nil && len(groups) == 0 && !noNewPrivs {
		return nil, nil
	}
	id := &sandboxIdentity{Groups: groups, NoNewPrivs: noNewPrivs}
	if uid != nil {
		id.UID = uint32(*uid)
	}
	if gid != nil {
		id.GID = uint32(*gid)
	}
	return id, nil
}

// podFSGroup is the pod's fsGroup, or -1.
func podFSGroup(pod *corev1.Pod) int {
	if psc := pod.Spec.SecurityContext; psc != nil && psc.FSGroup != nil {
		return int(*psc.FSGroup)
	}
	return -1
}

// applyFSGroup gives everything under dir to group gid as the kubelet does for a writable
// volume. Under OnRootMismatch it does nothing when dir itself is already right.
func applyFSGroup(dir string, gid int, policy *corev1.PodFSGroupChangePolicy) error {
	if gid < 0 {
		return nil
	}
	if policy != nil && *policy == corev1.FSGroupChangeOnRootMismatch {
		info, err := os.Stat(dir)
		if err != nil {
			return err
		}
		want := info.Mode().Perm()|fsGroupReadWriteMask|fsGroupExecMask == info.Mode().Perm() && info.Mode()&os.ModeSetgid != 0
		if st, ok := statGID(info); ok && st == gid && want {
			return nil
		}
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return setGroupOwnership(p, d, gid, fsGroupReadWriteMask)
	})
}

// setGroupOwnership makes p group-owned by gid and adds mask (plus the setgid and search
// bits for a directory) to its mode. Symlinks change owner only. What is already right is
// left untouched: even a chown to the same group is an attribute change that the broker's
// file watcher sees.
func setGroupOwnership(p string, d fs.DirEntry, gid int, mask os.FileMode) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	if g, ok := statGID(info); !ok || g != gid {
		if err := os.Lchown(p, -1, gid); err != nil {
			return err
		}
	}
	if d.Type()&fs.ModeSymlink != 0 {
		return nil
	}
	const bits = os.ModePerm | os.ModeSetgid | os.ModeSetuid | os.ModeSticky
	mode := info.Mode()&bits | mask
	if d.IsDir() {
		mode |= os.ModeSetgid | fsGroupExecMask
	}
	if mode == info.Mode()&bits {
		return nil
	}
	return os.Chmod(p, mode)
}

// statGID is the group owning the file info describes.
func statGID(info os.FileInfo) (int, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Gid), true
}

// groupOwn gives the directory dir itself (not what it holds) to group gid, readable and
// searchable by it. It does nothing for gid < 0.
func groupOwn(dir string, gid int) error {
	if gid < 0 {
		return nil
	}
	info, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	return setGroupOwnership(dir, fs.FileInfoToDirEntry(info), gid, fsGroupReadOnlyMask)
}
