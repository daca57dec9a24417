package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// podWorker runs one pod bound to the node, from its sandbox (network namespace, pod
// directory, volumes) through its containers to its deletion. One goroutine (run) owns the
// pod's lifecycle; container goroutines report to it through notify.
type podWorker struct {
	a         *nodeAgent
	uid       types.UID
	namespace string
	name      string
	dir       string // <cluster>/pods/<namespace>_<name>_<uid>

	// groupOwned lists the writable volumes fsGroup was applied to, once per pod as the
	// kubelet does when it mounts them. Owned by the worker goroutine.
	groupOwned map[string]bool

	notifyCh chan struct{}
	done     chan struct{}

	// ctx ends the pod's containers; cancel is called when the pod terminates.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // container goroutines

	mu          sync.Mutex
	pod         *corev1.Pod // latest seen
	hostIdx     int         // host part of the pod address; 0 before the sandbox exists
	ip          string
	sandboxErr  error
	volumeErr   error
	volumeDirs  map[string]string // volume name -> directory on the host
	launched    bool
	initDone    bool
	startTime   metav1.Time
	initStates  []*containerState
	states      []*containerState
	conditions  map[corev1.PodConditionType]corev1.PodCondition
	tokens      map[string]cachedToken
	terminating bool
}

// cachedToken is a projected service-account token and when to replace it: at 80% of its
// lifetime, as the kubelet does.
type cachedToken struct {
	token     []byte
	refreshAt time.Time
}

func newPodWorker(a *nodeAgent, pod *corev1.Pod) *podWorker {
	// Not a child of the agent's context: when the agent stops, teardown sets the grace
	// period before it cancels, so containers never see the stop before their grace.
	ctx, cancel := context.WithCancel(context.Background())
	w := &podWorker{
		a:          a,
		uid:        pod.UID,
		namespace:  pod.Namespace,
		name:       pod.Name,
		dir:        filepath.Join(a.c.dir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID)),
		notifyCh:   make(chan struct{}, 1),
		done:       make(chan struct{}),
		ctx:        ctx,
		cancel:     cancel,
		pod:        pod,
		volumeDirs: map[string]string{},
		conditions: map[corev1.PodConditionType]corev1.PodCondition{},
		tokens:     map[string]cachedToken{},
	}
	for i := range pod.Spec.InitContainers {
		w.initStates = append(w.initStates, newContainerState(w, pod.Spec.InitContainers[i], true))
	}
	for i := range pod.Spec.Containers {
		w.states = append(w.states, newContainerState(w, pod.Spec.Containers[i], false))
	}
	return w
}

// notify asks the worker to sync; it never blocks.
func (w *podWorker) notify() {
	select {
	case w.notifyCh <- struct{}{}:
	default:
	}
}

func (w *podWorker) key() string { return w.namespace + "/" + w.name }

// run is the worker's goroutine. It returns when the pod is gone from the API (after
// tearing it down) or the node agent stops.
func (w *podWorker) run() {
	defer close(w.done)
	resync := time.NewTicker(podResyncInterval)
	defer resync.Stop()
	for {
		select {
		case <-w.a.ctx.Done():
			w.teardown(w.a.c.opts.StopGrace)
			return
		case <-w.notifyCh:
		case <-resync.C:
		}
		if w.sync() {
			return
		}
	}
}

// podResyncInterval is how often a pod's volumes and status are rechecked without an event:
// it refreshes service-account tokens and repairs a status write that failed.
const podResyncInterval = 5 * time.Second

// currentPod returns the pod from the informer cache, or nil if it is gone or was replaced
// by a new pod of the same name.
func (w *podWorker) currentPod() *corev1.Pod {
	pod, err := w.a.podLister.Pods(w.namespace).Get(w.name)
	if err != nil || pod.UID != w.uid {
		return nil
	}
	return pod
}

// sync brings the pod one step closer to its spec and reports whether the worker is done.
func (w *podWorker) sync() bool {
	pod := w.currentPod()
	if pod == nil {
		// Deleted with grace 0 (kubectl delete --force) or by us: nothing to report to.
		w.teardown(time.Second)
		return true
	}
	w.mu.Lock()
	w.pod = pod
	w.mu.Unlock()

	if pod.DeletionTimestamp != nil {
		grace := 30 * time.Second
		if pod.DeletionGracePeriodSeconds != nil {
			grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
		}
		w.teardown(grace)
		zero := int64(0)
		err := w.a.client.CoreV1().Pods(w.namespace).Delete(context.Background(), w.name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &w.uid},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			w.a.log.Warn("Cannot remove a terminated pod", "pod", w.key(), "err", err)
			return false // the next resync retries; the containers are gone already
		}
		return true
	}
	if w.podFinished() {
		w.writeStatus()
		return false
	}

	if w.hostIdx == 0 || w.sandboxErr != nil {
		w.setupSandbox(pod)
	}
	if w.sandboxErr == nil {
		w.syncVolumes(pod)
	}
	w.mu.Lock()
	ready := w.sandboxErr == nil && w.volumeErr == nil && !w.launched
	if ready {
		w.launched = true
		if w.startTime.IsZero() {
			w.startTime = metav1.NewTime(time.Now().Truncate(time.Second))
		}
	}
	w.mu.Unlock()
	if ready {
		w.wg.Add(1)
		go w.runContainers()
	}
	w.writeStatus()
	return false
}

// setupSandbox creates the pod directory, its network namespace and its hosts file.
func (w *podWorker) setupSandbox(pod *corev1.Pod) {
	h, ip := w.hostIdx, w.ip
	err := func() error {
		if err := os.MkdirAll(filepath.Join(w.dir, "volumes"), 0o755); err != nil {
			return err
		}
		if h == 0 {
			if pod.Spec.HostNetwork {
				h, ip = -1, w.a.c.net.gateway.String()
			} else {
				var err error
				if h, err = w.a.c.net.addPod(); err != nil {
					return err
				}
				ip = w.a.c.net.hostIP(h).String()
			}
		}
		return writeHostsInPlace(filepath.Join(w.dir, "etc-hosts"), hostsFile(pod, ip, w.a.clusterHosts(pod.Namespace)))
	}()
	w.mu.Lock()
	w.hostIdx, w.ip, w.sandboxErr = h, ip, err
	w.mu.Unlock()
	if err != nil {
		w.a.log.Warn("Cannot create the pod sandbox", "pod", w.key(), "err", err)
		w.event(corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
	}
}

// podHostname is the pod's hostname: spec.hostname or its name.
func podHostname(pod *corev1.Pod) string {
	if pod.Spec.Hostname != "" {
		return pod.Spec.Hostname
	}
	if len(pod.Name) > 63 {
		return strings.TrimRight(pod.Name[:63], "-.")
	}
	return pod.Name
}

// syncVolumes materialises every volume of the pod in its directory. ConfigMap, Secret,
// downward API and projected volumes are rewritten (atomically, only when their content
// changed) on every sync, which is how edits reach a running container.
func (w *podWorker) syncVolumes(pod *corev1.Pod) {
	var errs []error
	dirs := map[string]string{}
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		dir, err := w.syncVolume(pod, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("volume %q: %w", v.Name, err))
			continue
		}
		dirs[v.Name] = dir
	}
	err := errors.Join(errs...)
	w.mu.Lock()
	newErr := err != nil && (w.volumeErr == nil || w.volumeErr.Error() != err.Error())
	w.volumeErr = err
	for k, v := range dirs {
		w.volumeDirs[k] = v
	}
	w.mu.Unlock()
	if newErr { // once per distinct failure, not every resync
		w.a.log.Warn("Cannot set up the pod's volumes", "pod", w.key(), "err", err)
		w.event(corev1.EventTypeWarning, "FailedMount", "MountVolume.SetUp failed: %v", err)
	}
}

func (w *podWorker) syncVolume(pod *corev1.Pod, v *corev1.Volume) (string, error) {
	dir := filepath.Join(w.dir, "volumes", v.Name)
	src := podSources{w}
	var payload map[string]volumeFile
	var err error
	switch {
	case v.ConfigMap != nil:
		payload = map[string]volumeFile{}
		err = configMapPayload(src, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.DefaultMode, v.ConfigMap.Optional, payload)
	case v.Secret != nil:
		payload = map[string]volumeFile{}
		err = secretPayload(src, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode, v.Secret.Optional, payload)
	case v.DownwardAPI != nil:
		payload = map[string]volumeFile{}
		err = downwardPayload(src, w.podWithStatus(pod), v.DownwardAPI.Items, v.DownwardAPI.DefaultMode, payload)
	case v.Projected != nil:
		payload, err = projectedPayload(src, w.podWithStatus(pod), v.Projected)
	case v.EmptyDir != nil:
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return "", err
		}
		return dir, w.groupOwnWritable(pod, v.Name, dir)
	case v.HostPath != nil:
		if v.HostPath.Type != nil && (*v.HostPath.Type == corev1.HostPathDirectoryOrCreate) {
			if err := os.MkdirAll(v.HostPath.Path, 0o755); err != nil {
				return "", err
			}
		}
		if _, err := os.Stat(v.HostPath.Path); err != nil {
			return "", err
		}
		return v.HostPath.Path, nil
	case v.PersistentVolumeClaim != nil:
		dir, err := w.a.claimDir(pod.Namespace, v.PersistentVolumeClaim.ClaimName)
		if err != nil {
			return "", err
		}
		return dir, w.groupOwnWritable(pod, v.Name, dir)
	default:
		return "", errors.New("unsupported volume type (the local node supports configMap, secret, downwardAPI, projected, emptyDir, hostPath and persistentVolumeClaim)")
	}
	if err != nil {
		return "", err
	}
	if _, err := writeAtomic(dir, payload, podFSGroup(pod)); err != nil {
		return "", err
	}
	return dir, nil
}

// groupOwnWritable applies the pod's fsGroup to a writable volume the first time the pod
// uses it.
func (w *podWorker) groupOwnWritable(pod *corev1.Pod, name, dir string) error {
	gid := podFSGroup(pod)
	if gid < 0 || w.groupOwned[name] {
		return nil
	}
	if err := applyFSGroup(dir, gid, pod.Spec.SecurityContext.FSGroupChangePolicy); err != nil {
		return fmt.Errorf("apply fsGroup %d: %w", gid, err)
	}
	if w.groupOwned == nil {
		w.groupOwned = map[string]bool{}
	}
	w.groupOwned[name] = true
	return nil
}

// podWithStatus is pod with the addresses this node gave it, which downward API files and
// env vars read before the status write has round-tripped through the API.
func (w *podWorker) podWithStatus(pod *corev1.Pod) *corev1.Pod {
	p := pod.DeepCopy()
	w.mu.Lock()
	ip := w.ip
	w.mu.Unlock()
	if ip != "" {
		p.Status.PodIP = ip
		p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	gw := w.a.c.net.gateway.String()
	p.Status.HostIP = gw
	p.Status.HostIPs = []corev1.HostIP{{IP: gw}}
	return p
}

// podSources gives volume and env builders access to the cluster on behalf of a pod.
type podSources struct{ w *podWorker }

func (s podSources) configMap(ns, name string) (*corev1.ConfigMap, error) {
	return s.w.a.cmLister.ConfigMaps(ns).Get(name)
}

func (s podSources) secret(ns, name string) (*corev1.Secret, error) {
	return s.w.a.secretLister.Secrets(ns).Get(name)
}

func (s podSources) fieldValue(pod *corev1.Pod, path string) (string, error) {
	return podFieldValue(pod, path)
}

func (s podSources) resourceValue(pod *corev1.Pod, ref *corev1.ResourceFieldSelector) (string, error) {
	return containerResourceValue(pod, ref.ContainerName, ref)
}

func (s podSources) token(pod *corev1.Pod, audience string, exp int64) ([]byte, error) {
	w := s.w
	key := fmt.Sprintf("%s|%d", audience, exp)
	w.mu.Lock()
	t, ok := w.tokens[key]
	w.mu.Unlock()
	if ok && time.Now().Before(t.refreshAt) {
		return t.token, nil
	}
	tok, expires, err := w.a.requestPodToken(pod, audience, exp)
	if err != nil {
		return nil, err
	}
	lifetime := time.Until(expires)
	t = cachedToken{token: tok, refreshAt: time.Now().Add(lifetime * 8 / 10)}
	w.mu.Lock()
	w.tokens[key] = t
	w.mu.Unlock()
	return tok, nil
}

// runContainers runs the init containers one after another to completion, then starts every
// container. It is the pod's one launch; restarts happen inside each container's loop.
func (w *podWorker) runContainers() {
	defer w.wg.Done()
	for _, cs := range w.initStates {
		if !cs.runToCompletion() {
			return // the pod is terminating, or failed with restartPolicy Never
		}
	}
	w.mu.Lock()
	w.initDone = true
	w.mu.Unlock()
	w.notify()
	for _, cs := range w.states {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			cs.runLoop()
		}()
	}
}

// teardown stops every container (SIGTERM, then SIGKILL after grace), removes the network
// namespace and the pod's volumes, and keeps the logs. It is idempotent.
func (w *podWorker) teardown(grace time.Duration) {
	w.mu.Lock()
	w.terminating = true
	for _, cs := range append(append([]*containerState(nil), w.initStates...), w.states...) {
		cs.grace = grace
	}
	w.mu.Unlock()
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	h := w.hostIdx
	w.hostIdx = 0
	w.mu.Unlock()
	if h > 0 {
		w.a.c.net.removePod(h)
	}
	// Volumes may hold secrets and tokens; the logs stay for whoever debugs a failure.
	_ = os.RemoveAll(filepath.Join(w.dir, "volumes"))
	_ = os.RemoveAll(filepath.Join(w.dir, "sandbox"))
}

// podFinished reports whether every container has terminated for good (restartPolicy Never
// or OnFailure after success).
func (w *podWorker) podFinished() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.launched || len(w.states) == 0 {
		return false
	}
	for _, cs := range w.initStates {
		if cs.failedForGood {
			return true
		}
	}
	for _, cs := range w.states {
		if !cs.finished {
			return false
		}
	}
	return true
}

// setCondition records a condition, keeping its transition time while the status holds.
func (w *podWorker) setCondition(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
	status := corev1.ConditionFalse
	if ok {
		status = corev1.ConditionTrue
	}
	prev, had := w.conditions[t]
	if had && prev.Status == status && prev.Reason == reason {
		return prev
	}
	c := corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second))}
	w.conditions[t] = c
	return c
}

// buildStatus is the pod status as the kubelet would report it. Call with w.mu held.
func (w *podWorker) buildStatus(pod *corev1.Pod) corev1.PodStatus {
	st := corev1.PodStatus{
		QOSClass:           pod.Status.QOSClass,
		ObservedGeneration: pod.Generation,
	}
	gw := w.a.c.net.gateway.String()
	st.HostIP, st.HostIPs = gw, []corev1.HostIP{{IP: gw}}
	if w.ip != "" && w.hostIdx != 0 {
		st.PodIP, st.PodIPs = w.ip, []corev1.PodIP{{IP: w.ip}}
	}
	if !w.startTime.IsZero() {
		st.StartTime = &w.startTime
	}
	allReady, anyRunning, allDone, anyFailed := true, false, true, false
	for _, cs := range w.states {
		s := cs.status()
		st.ContainerStatuses = append(st.ContainerStatuses, s)
		allReady = allReady && s.Ready
		anyRunning = anyRunning || s.State.Running != nil
		allDone = allDone && cs.finished
		anyFailed = anyFailed || (cs.finished && s.State.Terminated != nil && s.State.Terminated.ExitCode != 0)
	}
	initFailed := false
	for _, cs := range w.initStates {
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs.status())
		initFailed = initFailed || cs.failedForGood
	}
	switch {
	case initFailed || (allDone && anyFailed && w.launched):
		st.Phase = corev1.PodFailed
	case allDone && w.launched && len(w.states) > 0:
		st.Phase = corev1.PodSucceeded
	case w.initDone && (anyRunning || w.restartingAny()):
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	sandboxOK := w.sandboxErr == nil && w.hostIdx != 0
	conds := []corev1.PodCondition{
		w.setCondition(corev1.PodReadyToStartContainers, sandboxOK, ""),
		w.setCondition(corev1.PodInitialized, w.initDone, reasonIf(!w.initDone, "ContainersNotInitialized")),
		w.setCondition(corev1.ContainersReady, w.initDone && allReady, reasonIf(!(w.initDone && allReady), "ContainersNotReady")),
		w.setCondition(corev1.PodReady, w.initDone && allReady && !w.terminating, reasonIf(!(w.initDone && allReady), "ContainersNotReady")),
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			conds = append(conds, c) // set by the binding; the node never changes it
		}
	}
	for i := range conds {
		conds[i].ObservedGeneration = pod.Generation
	}
	sort.Slice(conds, func(i, j int) bool { return conds[i].Type < conds[j].Type })
	st.Conditions = conds
	return st
}

func reasonIf(cond bool, reason string) string {
	if cond {
		return reason
	}
	return ""
}

func (w *podWorker) restartingAny() bool {
	for _, cs := range w.states {
		if cs.restartCount > 0 && !cs.finished {
			return true
		}
	}
	return false
}

// writeStatus sends the pod's status to the API when it differs from what is there.
func (w *podWorker) writeStatus() {
	pod := w.currentPod()
	if pod == nil {
		return
	}
	w.mu.Lock()
	st := w.buildStatus(pod)
	w.mu.Unlock()
	if statusEqual(&pod.Status, &st) {
		return
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := pod.DeepCopy()
		p.Status = st
		_, err := w.a.client.CoreV1().Pods(w.namespace).UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			if fresh, gerr := w.a.client.CoreV1().Pods(w.namespace).Get(context.Background(), w.name, metav1.GetOptions{}); gerr == nil && fresh.UID == w.uid {
				pod = fresh
			}
		}
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) {
		w.a.log.Warn("Cannot update the pod status", "pod", w.key(), "err", err)
	}
}

// statusEqual compares statuses the way the API round-trips them (times at second
// precision, empty and nil slices alike).
func statusEqual(a, b *corev1.PodStatus) bool {
	return apiequality.Semantic.DeepEqual(normaliseStatus(a), normaliseStatus(b))
}

func normaliseStatus(s *corev1.PodStatus) *corev1.PodStatus {
	c := s.DeepCopy()
	if len(c.Conditions) == 0 {
		c.Conditions = nil
	}
	sort.Slice(c.Conditions, func(i, j int) bool { return c.Conditions[i].Type < c.Conditions[j].Type })
	if len(c.ContainerStatuses) == 0 {
		c.ContainerStatuses = nil
	}
	if len(c.InitContainerStatuses) == 0 {
		c.InitContainerStatuses = nil
	}
	return c
}

// currentSpec returns the latest pod; the spec fields a container reads are immutable, but the
// pointer is replaced on every sync.
func (w *podWorker) currentSpec() *corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod
}

// event records an event about the pod, as the kubelet would.
func (w *podWorker) event(eventType, reason, format string, args ...any) {
	w.a.events.Eventf(w.currentSpec(), eventType, reason, format, args...)
}

// info is the worker's public view, for Cluster.Pod.
func (w *podWorker) info() PodInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	pi := PodInfo{
		Namespace: w.namespace, Name: w.name, UID: w.uid, IP: w.ip, Dir: w.dir,
		Volumes: map[string]string{},
	}
	if w.hostIdx > 0 {
		pi.NetNS = w.a.c.net.netnsName(w.hostIdx)
	}
	for k, v := range w.volumeDirs {
		pi.Volumes[k] = v
	}
	for _, cs := range append(append([]*containerState(nil), w.initStates...), w.states...) {
		pi.Containers = append(pi.Containers, ContainerInfo{
			Name: cs.spec.Name, Init: cs.init, PID: cs.pid, RestartCount: cs.restartCount,
			Ready: cs.ready, LogPath: cs.logPath,
		})
	}
	return pi
}

// PodInfo is the node agent's view of a pod it runs: what the API does not show, such as
// the process of each container and where its files are.
type PodInfo struct {
	Namespace, Name string
	UID             types.UID
	// IP is the pod's address on the cluster's bridge, reachable from the host.
	IP string
	// NetNS is the network namespace under /run/netns ("" for hostNetwork pods), for
	// `ip netns exec` in a test.
	NetNS string
	// Dir is the pod's directory: volumes/<name>, logs/<container>/<restart>.log.
	Dir string
	// Volumes maps each volume's name to the directory that holds it on the host.
	Volumes    map[string]string
	Containers []ContainerInfo
}

// ContainerInfo is one container of a PodInfo.
type ContainerInfo struct {
	Name string
	Init bool
	// PID is the container's process (0 when it is not running); signalling it is how a test
	// simulates a crash.
	PID          int
	RestartCount int32
	Ready        bool
	// LogPath is the log of the current (or last) run of the container.
	LogPath string
}
