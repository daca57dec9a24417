package cluster

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// expandVars replaces $(NAME) with the value of NAME, as the kubelet does in env values,
// command and args: an undefined reference stays as written, and $$ is a literal $ (so
// $$(NAME) gives "$(NAME)").
func expandVars(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok && name != "" {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// envList is an ordered environment in which a later definition replaces an earlier one.
type envList struct {
	names  []string
	values map[string]string
}

func newEnvList() *envList { return &envList{values: map[string]string{}} }

func (e *envList) set(name, value string) {
	if _, ok := e.values[name]; !ok {
		e.names = append(e.names, name)
	}
	e.values[name] = value
}

func (e *envList) lookup(name string) (string, bool) {
	v, ok := e.values[name]
	return v, ok
}

func (e *envList) environ() []string {
	out := make([]string, 0, len(e.names))
	for _, n := range e.names {
		out = append(out, n+"="+e.values[n])
	}
	return out
}

// podFieldValue resolves a downward API field path, the subset the kubelet supports.
func podFieldValue(pod *corev1.Pod, path string) (string, error) {
	if key, ok := subscriptKey(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscriptKey(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	case "status.hostIPs":
		return joinIPs(pod.Status.HostIPs), nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.podIPs":
		var ips []string
		for _, ip := range pod.Status.PodIPs {
			ips = append(ips, ip.IP)
		}
		return strings.Join(ips, ","), nil
	}
	return "", fmt.Errorf("unsupported downward API field %q", path)
}

func joinIPs(ips []corev1.HostIP) string {
	var s []string
	for _, ip := range ips {
		s = append(s, ip.IP)
	}
	return strings.Join(s, ",")
}

// subscriptKey parses prefix['key'].
func subscriptKey(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	key, ok := strings.CutSuffix(rest, "']")
	return key, ok
}

// nodeCapacity is what the node offers: every CPU and the machine's memory. A container
// without a limit sees these through resourceFieldRef, as on a real node.
func nodeCapacity() corev1.ResourceList {
	mem := int64(8 << 30)
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64); err == nil {
					mem = kb << 10
				}
			}
		}
	}
	return corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(mem, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(maxPods, resource.DecimalSI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(100<<30, resource.BinarySI),
	}
}

// maxPods is the node's pod capacity: the pod network has room for 253 addresses.
const maxPods = lastPodHost - firstPodHost + 1

// containerResourceValue resolves a resourceFieldRef: the container's own request or limit,
// or the node's capacity for an unset limit, divided by the divisor and rounded up.
func containerResourceValue(pod *corev1.Pod, containerName string, ref *corev1.ResourceFieldSelector) (string, error) {
	name := ref.ContainerName
	if name == "" {
		name = containerName
	}
	var c *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			c = &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			c = &pod.Spec.InitContainers[i]
		}
	}
	if c == nil {
		return "", fmt.Errorf("resourceFieldRef names container %q, which the pod does not have", name)
	}
	kind, resName, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	var q resource.Quantity
	var have bool
	switch kind {
	case "limits":
		q, have = c.Resources.Limits[corev1.ResourceName(resName)]
		if !have {
			q, have = nodeCapacity()[corev1.ResourceName(resName)]
		}
	case "requests":
		q, have = c.Resources.Requests[corev1.ResourceName(resName)]
		if !have {
			q = resource.Quantity{}
			have = true
		}
	}
	if !have {
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	v := math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue()))
	return strconv.FormatInt(int64(v), 10), nil
}

// errImageNotMapped marks a container whose image has no local binary.
var errImageNotMapped = errors.New("image has no local binary")

// resolveCommand finds what to exec for a container: the binary its image maps to in
// images (Options.Images), or a file in the directory it maps to, and the argv. An image
// is looked up as written, then without its digest, then without its tag.
//
// A binary entry stands for an image whose entrypoint is that binary: an empty command runs
// it with args, and a command whose first word has the binary's base name runs it too. A
// directory entry stands for an image's PATH: command[0] is looked up there by base name. A
// command naming an absolute path that exists on the host (/bin/sh) runs that, as a
// convenience for scripted test containers.
func resolveCommand(images map[string]string, c *corev1.Container) (path string, argv []string, err error) {
	entry, ok := lookupImage(images, c.Image)
	if !ok {
		return "", nil, fmt.Errorf("%w: image %q is not in cluster.Options.Images (image name -> path of a locally built binary or a directory of binaries)", errImageNotMapped, c.Image)
	}
	fi, err := os.Stat(entry)
	if err != nil {
		return "", nil, fmt.Errorf("%w: image %q maps to %s: %v", errImageNotMapped, c.Image, entry, err)
	}
	if len(c.Command) == 0 {
		if fi.IsDir() {
			return "", nil, fmt.Errorf("image %q maps to the directory %s and the container has no command to look up in it", c.Image, entry)
		}
		return entry, append([]string{entry}, c.Args...), nil
	}
	cmd0 := c.Command[0]
	argv = append(append([]string{cmd0}, c.Command[1:]...), c.Args...)
	if fi.IsDir() {
		p := filepath.Join(entry, filepath.Base(cmd0))
		if isExecutable(p) {
			return p, argv, nil
		}
	} else if filepath.Base(cmd0) == filepath.Base(entry) {
		return entry, argv, nil
	}
	if filepath.IsAbs(cmd0) && isExecutable(cmd0) {
		return cmd0, argv, nil
	}
	return "", nil, fmt.Errorf("command %q is not in image %q (mapped to %s); map the image to a directory holding %s",
		cmd0, c.Image, entry, filepath.Base(cmd0))
}

func lookupImage(images map[string]string, image string) (string, bool) {
	if p, ok := images[image]; ok {
		return p, true
	}
	name := image
	if i := strings.Index(name, "@"); i >= 0 {
		name = name[:i]
		if p, ok := images[name]; ok {
			return p, true
		}
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		if p, ok := images[name[:i]]; ok {
			return p, true
		}
	}
	return "", false
}
