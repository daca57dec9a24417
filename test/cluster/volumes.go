package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Volumes appear to a container exactly as the kubelet lays them out, because the broker's
// live reload depends on that layout: a ConfigMap, Secret, downward API or projected volume
// directory holds a timestamped directory with the real files, a ..data symlink to it, and
// one symlink per top-level key through ..data. An update writes a new timestamped
// directory and renames a new ..data symlink over the old one, so a reader sees either all
// old or all new files, never a mix; watchers see ..data change.

// volumeFile is one file of a volume's payload.
type volumeFile struct {
	Data []byte
	Mode os.FileMode
}

const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
	// defaultVolumeMode is the kubelet's default for ConfigMap, Secret, downward API and
	// projected files (defaultMode 0644).
	defaultVolumeMode os.FileMode = 0o644
)

// validatePayloadPath rejects a path that would escape the volume or collide with the
// writer's own names, as the kubelet does.
func validatePayloadPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case filepath.IsAbs(p):
		return fmt.Errorf("path %q is absolute", p)
	case strings.HasPrefix(p, ".."):
		return fmt.Errorf("path %q starts with '..'", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Errorf("path %q contains '..'", p)
		}
	}
	return nil
}

// writeAtomic makes dir hold exactly payload, with the kubelet's ..data layout. It reports
// whether anything changed; an unchanged payload writes nothing, so watchers see no event.
// With fsGroup (>= 0) every file and directory is group-owned by it and group-readable
// before the new data becomes visible, so a non-root reader never sees a file it cannot
// read.
func writeAtomic(dir string, payload map[string]volumeFile, fsGroup int) (bool, error) {
	for p := range payload {
		if err := validatePayloadPath(p); err != nil {
			return false, fmt.Errorf("volume %s: %w", dir, err)
		}
	}
	if fsGroup >= 0 {
		withGroup := make(map[string]volumeFile, len(payload))
		for p, f := range payload {
			f.Mode |= fsGroupReadOnlyMask
			withGroup[p] = f
		}
		payload = withGroup
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	if err := groupOwn(dir, fsGroup); err != nil {
		return false, err
	}
	dataLink := filepath.Join(dir, dataDirName)
	oldTS, err := os.Readlink(dataLink)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("read %s: %w", dataLink, err)
	}
	if oldTS != "" && sameContent(filepath.Join(dir, oldTS), payload) {
		return false, nil
	}

	tsDir, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, fmt.Errorf("create a timestamped directory in %s: %w", dir, err)
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return false, err
	}
	for p, f := range payload {
		full := filepath.Join(tsDir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return false, err
		}
		if err := os.WriteFile(full, f.Data, f.Mode); err != nil {
			return false, err
		}
		// WriteFile applies the umask; the volume's mode is what the pod spec asked for.
		if err := os.Chmod(full, f.Mode); err != nil {
			return false, err
		}
	}
	if fsGroup >= 0 {
		err := filepath.WalkDir(tsDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return setGroupOwnership(p, d, fsGroup, fsGroupReadOnlyMask)
		})
		if err != nil {
			return false, fmt.Errorf("apply fsGroup %d to %s: %w", fsGroup, tsDir, err)
		}
	}
	tmpLink := filepath.Join(dir, newDataDirName)
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		return false, fmt.Errorf("link the new data in %s: %w", dir, err)
	}
	if fsGroup >= 0 {
		if err := os.Lchown(tmpLink, -1, fsGroup); err != nil {
			return false, err
		}
	}
	// The one atomic step: rename(2) replaces the old ..data link in place.
	if err := os.Rename(tmpLink, dataLink); err != nil {
		return false, fmt.Errorf("swap %s: %w", dataLink, err)
	}

	top := map[string]bool{}
	for p := range payload {
		top[strings.SplitN(p, "/", 2)[0]] = true
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join(dataDirName, name) {
			continue
		}
		_ = os.Remove(link)
		if err := os.Symlink(filepath.Join(dataDirName, name), link); err != nil {
			return false, fmt.Errorf("link %s: %w", link, err)
		}
		if fsGroup >= 0 {
			if err := os.Lchown(link, -1, fsGroup); err != nil {
				return false, err
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") || top[name] {
			continue
		}
		// A key that left the payload: its symlink dangles into ..data now.
		if e.Type()&fs.ModeSymlink != 0 {
			_ = os.Remove(filepath.Join(dir, name))
		}
	}
	if oldTS != "" && oldTS != filepath.Base(tsDir) {
		_ = os.RemoveAll(filepath.Join(dir, oldTS))
	}
	return true, nil
}

// sameContent reports whether tsDir holds exactly payload, modes included.
func sameContent(tsDir string, payload map[string]volumeFile) bool {
	seen := 0
	err := filepath.WalkDir(tsDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(tsDir, path)
		f, ok := payload[filepath.ToSlash(rel)]
		if !ok {
			return errors.New("extra file")
		}
		info, err := d.Info()
		if err != nil || info.Mode().Perm() != f.Mode.Perm() {
			return errors.New("mode differs")
		}
		data, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(data, f.Data) {
			return errors.New("content differs")
		}
		seen++
		return nil
	})
	return err == nil && seen == len(payload)
}

// volumeSources is what building a payload needs from the cluster.
type volumeSources interface {
	configMap(namespace, name string) (*corev1.ConfigMap, error)
	secret(namespace, name string) (*corev1.Secret, error)
	// token returns a service-account token for the pod with the given audience and lifetime.
	token(pod *corev1.Pod, audience string, expirationSeconds int64) ([]byte, error)
	// fieldValue resolves a downward API field path of the pod.
	fieldValue(pod *corev1.Pod, fieldPath string) (string, error)
	// resourceValue resolves a downward API resource field of a container.
	resourceValue(pod *corev1.Pod, ref *corev1.ResourceFieldSelector) (string, error)
}

func fileMode(item *int32, def *int32) os.FileMode {
	switch {
	case item != nil:
		return os.FileMode(*item) & os.ModePerm
	case def != nil:
		return os.FileMode(*def) & os.ModePerm
	}
	return defaultVolumeMode
}

// keyPayload maps keys to files, through items when given. A missing item key is an error
// unless the source is optional, as in the kubelet.
func keyPayload(what string, data map[string][]byte, items []corev1.KeyToPath, def *int32, optional bool, out map[string]volumeFile) error {
	if len(items) == 0 {
		for k, v := range data {
			out[k] = volumeFile{Data: v, Mode: fileMode(nil, def)}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return fmt.Errorf("%s has no key %q", what, it.Key)
		}
		out[it.Path] = volumeFile{Data: v, Mode: fileMode(it.Mode, def)}
	}
	return nil
}

func configMapData(cm *corev1.ConfigMap) map[string][]byte {
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return data
}

// configMapPayload builds the files of a ConfigMap volume or projection. A missing optional
// ConfigMap gives an empty payload; a missing required one is an error the pod waits on.
func configMapPayload(src volumeSources, ns, name string, items []corev1.KeyToPath, def *int32, optional *bool, out map[string]volumeFile) error {
	opt := optional != nil && *optional
	cm, err := src.configMap(ns, name)
	if err != nil {
		if opt && isNotFound(err) {
			return nil
		}
		return fmt.Errorf("configmap %q: %w", name, err)
	}
	return keyPayload("configmap "+name, configMapData(cm), items, def, opt, out)
}

// secretPayload is configMapPayload for a Secret.
func secretPayload(src volumeSources, ns, name string, items []corev1.KeyToPath, def *int32, optional *bool, out map[string]volumeFile) error {
	opt := optional != nil && *optional
	s, err := src.secret(ns, name)
	if err != nil {
		if opt && isNotFound(err) {
			return nil
		}
		return fmt.Errorf("secret %q: %w", name, err)
	}
	return keyPayload("secret "+name, s.Data, items, def, opt, out)
}

// downwardPayload builds downward API files: labels and annotations as sorted key="value"
// lines, as the kubelet writes them.
func downwardPayload(src volumeSources, pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, def *int32, out map[string]volumeFile) error {
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			switch it.FieldRef.FieldPath {
			case "metadata.labels":
				v = formatMap(pod.Labels)
			case "metadata.annotations":
				v = formatMap(pod.Annotations)
			default:
				v, err = src.fieldValue(pod, it.FieldRef.FieldPath)
			}
		case it.ResourceFieldRef != nil:
			v, err = src.resourceValue(pod, it.ResourceFieldRef)
		default:
			err = errors.New("neither fieldRef nor resourceFieldRef is set")
		}
		if err != nil {
			return fmt.Errorf("downward API file %s: %w", it.Path, err)
		}
		out[it.Path] = volumeFile{Data: []byte(v), Mode: fileMode(it.Mode, def)}
	}
	return nil
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

// projectedPayload merges the sources of a projected volume, the service-account token
// (with ca.crt and namespace from the other sources of kube-api-access-*) included.
func projectedPayload(src volumeSources, pod *corev1.Pod, p *corev1.ProjectedVolumeSource) (map[string]volumeFile, error) {
	out := map[string]volumeFile{}
	for _, s := range p.Sources {
		var err error
		switch {
		case s.ConfigMap != nil:
			err = configMapPayload(src, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, p.DefaultMode, s.ConfigMap.Optional, out)
		case s.Secret != nil:
			err = secretPayload(src, pod.Namespace, s.Secret.Name, s.Secret.Items, p.DefaultMode, s.Secret.Optional, out)
		case s.DownwardAPI != nil:
			err = downwardPayload(src, pod, s.DownwardAPI.Items, p.DefaultMode, out)
		case s.ServiceAccountToken != nil:
			t := s.ServiceAccountToken
			exp := int64(3600)
			if t.ExpirationSeconds != nil {
				exp = *t.ExpirationSeconds
			}
			var tok []byte
			if tok, err = src.token(pod, t.Audience, exp); err == nil {
				// The kubelet writes tokens 0600 unless defaultMode says otherwise.
				mode := os.FileMode(0o600)
				if p.DefaultMode != nil {
					mode = os.FileMode(*p.DefaultMode) & os.ModePerm
				}
				out[t.Path] = volumeFile{Data: tok, Mode: mode}
			}
		default:
			err = errors.New("unsupported projection source (only configMap, secret, downwardAPI and serviceAccountToken are)")
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
