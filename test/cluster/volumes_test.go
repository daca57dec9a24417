package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readVolumeFile(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(data)
}

// TestWriteAtomicLayout checks the kubelet layout the broker's reload relies on: files are
// symlinks through ..data, an update swaps ..data to a new directory and removes the old
// one, removed keys disappear, and an unchanged payload writes nothing.
func TestWriteAtomicLayout(t *testing.T) {
	dir := t.TempDir()
	changed, err := writeAtomic(dir, map[string]volumeFile{
		"broker.yaml": {Data: []byte("v1"), Mode: 0o644},
		"old.txt":     {Data: []byte("gone soon"), Mode: 0o600},
		"sub/a.txt":   {Data: []byte("nested"), Mode: 0o644},
	}, -1)
	if err != nil || !changed {
		t.Fatalf("first write: changed=%v err=%v", changed, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "broker.yaml")); err != nil || target != "..data/broker.yaml" {
		t.Fatalf("broker.yaml links to %q (%v); want ..data/broker.yaml", target, err)
	}
	first, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil || !strings.HasPrefix(first, "..20") {
		t.Fatalf("..data links to %q (%v); want a timestamped directory", first, err)
	}
	if got := readVolumeFile(t, dir, "sub/a.txt"); got != "nested" {
		t.Fatalf("sub/a.txt = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, "old.txt")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("old.txt mode: %v %v; want 0600", fi.Mode(), err)
	}

	changed, err = writeAtomic(dir, map[string]volumeFile{
		"broker.yaml": {Data: []byte("v1"), Mode: 0o644},
		"old.txt":     {Data: []byte("gone soon"), Mode: 0o600},
		"sub/a.txt":   {Data: []byte("nested"), Mode: 0o644},
	}, -1)
	if err != nil || changed {
		t.Fatalf("rewriting the same payload: changed=%v err=%v; want no change", changed, err)
	}

	changed, err = writeAtomic(dir, map[string]volumeFile{"broker.yaml": {Data: []byte("v2"), Mode: 0o644}}, -1)
	if err != nil || !changed {
		t.Fatalf("update: changed=%v err=%v", changed, err)
	}
	second, _ := os.Readlink(filepath.Join(dir, "..data"))
	if second == first {
		t.Fatalf("..data still links to %s after an update", first)
	}
	if got := readVolumeFile(t, dir, "broker.yaml"); got != "v2" {
		t.Fatalf("broker.yaml = %q after the update; want v2", got)
	}
	for _, gone := range []string{"old.txt", "sub", first} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s still exists after the update (%v)", gone, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "..data_tmp")); !os.IsNotExist(err) {
		t.Errorf("..data_tmp left behind")
	}
}

func TestWriteAtomicRejectsEscapingPaths(t *testing.T) {
	for _, p := range []string{"../x", "/etc/passwd", "a/../../b", "..data"} {
		if _, err := writeAtomic(t.TempDir(), map[string]volumeFile{p: {Data: []byte("x"), Mode: 0o644}}, -1); err == nil {
			t.Errorf("path %q accepted; want an error", p)
		}
	}
}
