package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// containerState is one container of a pod: its current run, its history and its probes'
// verdicts. Fields are guarded by the pod worker's mutex.
type containerState struct {
	w    *podWorker
	spec corev1.Container
	init bool

	grace         time.Duration // SIGTERM-to-SIGKILL time when the pod stops
	restartCount  int32
	hasRun        bool // a process was started at least once: the next start is a restart
	pid           int
	startedAt     metav1.Time
	ready         bool
	started       bool
	waiting       *corev1.ContainerStateWaiting
	term          *corev1.ContainerStateTerminated // the current state, when not running
	lastTerm      *corev1.ContainerStateTerminated // the latest termination
	prevTerm      *corev1.ContainerStateTerminated // the one before lastTerm
	finished      bool                             // terminated and will not be restarted
	failedForGood bool                             // an init container failed and the pod's restartPolicy is Never
	containerID   string
	imageID       string
	logPath       string
	env           []string // the environment of the current run, for exec probes
	backoff       time.Duration
	killCh        chan string // a failed liveness or startup probe asks for a restart
}

func newContainerState(w *podWorker, c corev1.Container, init bool) *containerState {
	reason := "ContainerCreating"
	if !init && len(w.pod.Spec.InitContainers) > 0 {
		reason = "PodInitializing"
	}
	grace := 30 * time.Second
	if g := w.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	return &containerState{
		w: w, spec: c, init: init, grace: grace,
		waiting: &corev1.ContainerStateWaiting{Reason: reason},
		killCh:  make(chan string, 1),
	}
}

// backoffResetAfter is how long a container must run before a crash counts as a first
// crash again.
const backoffResetAfter = 10 * time.Minute

// nextDelay is the wait before restarting a container that ran for ran: none for the first
// crash, then Options.RestartBackoff doubling up to Options.MaxRestartBackoff, like the
// kubelet's CrashLoopBackOff.
func (cs *containerState) nextDelay(ran time.Duration) time.Duration {
	opts := cs.w.a.c.opts
	if ran >= backoffResetAfter {
		cs.backoff = 0
	}
	d := cs.backoff
	switch {
	case cs.backoff == 0:
		cs.backoff = opts.RestartBackoff
	default:
		cs.backoff = min(2*cs.backoff, opts.MaxRestartBackoff)
	}
	return d
}

// sleep waits d or until the pod stops; it reports whether the pod is still running.
func (cs *containerState) sleep(d time.Duration) bool {
	if d <= 0 {
		return cs.w.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-cs.w.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (cs *containerState) setWaiting(reason, msg string) {
	w := cs.w
	w.mu.Lock()
	cs.waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
	w.mu.Unlock()
	w.notify()
}

// restartPolicy is the container's own (sidecars) or the pod's.
func (cs *containerState) restartPolicy() corev1.RestartPolicy {
	if cs.spec.RestartPolicy != nil {
		return corev1.RestartPolicy(*cs.spec.RestartPolicy)
	}
	return cs.w.currentSpec().Spec.RestartPolicy
}

// runLoop runs a regular container until the pod stops, restarting it as its restart
// policy says.
func (cs *containerState) runLoop() {
	for {
		exit, ran, err := cs.runOnce()
		if cs.w.ctx.Err() != nil {
			return
		}
		if err != nil {
			reason := "CreateContainerConfigError"
			if errors.Is(err, errImageNotMapped) {
				reason = "ErrImageNeverPull"
			}
			cs.w.a.log.Warn("Cannot start a container", "pod", cs.w.key(), "container", cs.spec.Name, "err", err)
			cs.w.event(corev1.EventTypeWarning, "Failed", "Error: %v", err)
			cs.setWaiting(reason, err.Error())
			if !cs.sleep(max(cs.w.a.c.opts.RestartBackoff, time.Second)) {
				return
			}
			continue
		}
		policy := cs.restartPolicy()
		if policy == corev1.RestartPolicyNever || (policy == corev1.RestartPolicyOnFailure && exit == 0) {
			cs.w.mu.Lock()
			cs.finished = true
			cs.w.mu.Unlock()
			cs.w.notify()
			return
		}
		cs.w.mu.Lock()
		delay := cs.nextDelay(ran)
		cs.w.mu.Unlock()
		if delay > 0 {
			cs.w.event(corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", cs.spec.Name, cs.w.name, cs.w.namespace, cs.w.uid)
			cs.setWaiting("CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
				delay, cs.spec.Name, cs.w.name, cs.w.namespace, cs.w.uid))
		}
		if !cs.sleep(delay) {
			return
		}
	}
}

// runToCompletion runs an init container until it exits 0. It reports false when the pod
// stops first or the container failed under restartPolicy Never.
func (cs *containerState) runToCompletion() bool {
	for {
		exit, ran, err := cs.runOnce()
		if cs.w.ctx.Err() != nil {
			return false
		}
		if err == nil && exit == 0 {
			cs.w.mu.Lock()
			cs.finished = true
			cs.w.mu.Unlock()
			cs.w.notify()
			return true
		}
		if err != nil {
			cs.setWaiting("CreateContainerConfigError", err.Error())
		} else if cs.w.currentSpec().Spec.RestartPolicy == corev1.RestartPolicyNever {
			cs.w.mu.Lock()
			cs.failedForGood, cs.finished = true, true
			cs.w.mu.Unlock()
			cs.w.notify()
			return false
		}
		cs.w.mu.Lock()
		delay := cs.nextDelay(ran)
		cs.w.mu.Unlock()
		if !cs.sleep(max(delay, time.Second)) {
			return false
		}
	}
}

// runOnce starts the container's process and waits for it to exit, stopping it when the
// pod stops or a probe asks for a restart. It returns the exit code and how long it ran;
// err means the process could not be started at all.
func (cs *containerState) runOnce() (exitCode int32, ran time.Duration, err error) {
	w := cs.w
	spec, err := cs.sandboxSpec()
	if err != nil {
		return 0, 0, err
	}
	w.mu.Lock()
	restart := cs.hasRun
	n := cs.restartCount
	if restart {
		n++
	}
	w.mu.Unlock()

	logDir := filepath.Join(w.dir, "logs", cs.spec.Name)
	sandboxDir := filepath.Join(w.dir, "sandbox")
	for _, d := range []string{logDir, sandboxDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, 0, err
		}
	}
	logPath := filepath.Join(logDir, fmt.Sprintf("%d.log", n))
	spec.ErrorFile = filepath.Join(sandboxDir, cs.spec.Name+".err")
	spec.Scratch = filepath.Join(sandboxDir, cs.spec.Name+".scratch")
	_ = os.Remove(spec.ErrorFile)
	specPath := filepath.Join(sandboxDir, cs.spec.Name+".json")
	data, _ := json.Marshal(spec)
	if err := os.WriteFile(specPath, data, 0o600); err != nil {
		return 0, 0, err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, 0, err
	}
	defer logFile.Close()

	cmd := exec.Command(w.a.c.selfExe)
	cmd.Args = []string{"fleetmq-container"}
	cmd.Env = []string{sandboxEnv + "=" + specPath}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so stopping it reaches anything it forked; SIGKILL when the
	// agent's process dies, so a killed test leaves no broker behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("start the container process: %w", err)
	}
	start := time.Now()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()

	w.mu.Lock()
	cs.hasRun = true
	cs.restartCount = n
	cs.pid = cmd.Process.Pid
	cs.startedAt = metav1.NewTime(start.Truncate(time.Second))
	cs.waiting, cs.term = nil, nil
	cs.ready = false
	cs.started = cs.spec.StartupProbe == nil
	cs.containerID = fmt.Sprintf("fleetmq-local://%s-%s-%d", w.uid, cs.spec.Name, n)
	cs.imageID = "fleetmq-local://" + spec.Path
	cs.logPath = logPath
	cs.env = spec.Env
	// Without a readiness probe a started container is ready, as in the kubelet.
	if cs.spec.ReadinessProbe == nil && cs.started {
		cs.ready = true
	}
	select { // a stale restart request from the previous run must not kill this one
	case <-cs.killCh:
	default:
	}
	w.mu.Unlock()
	w.notify()
	w.event(corev1.EventTypeNormal, "Started", "Started container %s", cs.spec.Name)

	probeCtx, stopProbes := contextWithDone(w.ctx, exited)
	go cs.runProbes(probeCtx)

	var killReason string
	select {
	case <-exited:
	case <-w.ctx.Done():
		w.event(corev1.EventTypeNormal, "Killing", "Stopping container %s", cs.spec.Name)
		cs.stopProcess(cmd.Process.Pid, exited, cs.currentGrace())
	case killReason = <-cs.killCh:
		w.a.log.Info("Restarting a container", "pod", w.key(), "container", cs.spec.Name, "reason", killReason)
		w.event(corev1.EventTypeNormal, "Killing", "Container %s %s, will be restarted", cs.spec.Name, killReason)
		cs.stopProcess(cmd.Process.Pid, exited, cs.probeGrace())
	}
	stopProbes()
	end := time.Now()

	term := &corev1.ContainerStateTerminated{
		StartedAt:   cs.startedAt,
		FinishedAt:  metav1.NewTime(end.Truncate(time.Second)),
		ContainerID: cs.containerID,
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		term.ExitCode = 128 + int32(ws.Signal())
		term.Signal = int32(ws.Signal())
	default:
		term.ExitCode = int32(ws.ExitStatus())
	}
	startErr, _ := os.ReadFile(spec.ErrorFile)
	switch {
	case term.ExitCode == sandboxExitCode && len(startErr) > 0:
		term.Reason = "StartError"
		term.Message = string(startErr)
	case term.ExitCode == 0:
		term.Reason = "Completed"
	default:
		term.Reason = "Error"
	}
	if killReason != "" {
		term.Message = killReason
	}
	w.mu.Lock()
	cs.pid = 0
	cs.ready, cs.started = false, false
	cs.term, cs.prevTerm, cs.lastTerm = term, cs.lastTerm, term
	w.mu.Unlock()
	w.notify()
	return term.ExitCode, end.Sub(start), nil
}

func (cs *containerState) currentGrace() time.Duration {
	cs.w.mu.Lock()
	defer cs.w.mu.Unlock()
	return cs.grace
}

// probeGrace is the grace period of a restart asked for by a probe: the probe's own, or the
// pod's.
func (cs *containerState) probeGrace() time.Duration {
	for _, p := range []*corev1.Probe{cs.spec.LivenessProbe, cs.spec.StartupProbe} {
		if p != nil && p.TerminationGracePeriodSeconds != nil {
			return time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
		}
	}
	return cs.currentGrace()
}

// stopProcess sends SIGTERM to the container's process group, waits up to grace for the
// process to exit, then SIGKILLs the group.
func (cs *containerState) stopProcess(pid int, exited <-chan struct{}, grace time.Duration) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	agentDone := cs.w.a.ctx.Done()
wait:
	for {
		select {
		case <-exited:
			// Children the container forked into its group go with it.
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			return
		case <-t.C:
			break wait
		case <-agentDone:
			// The cluster is stopping: a pod's own grace period (30s by default) must not
			// hold Stop up, so what is left of it shrinks to Options.StopGrace.
			agentDone = nil
			if stop := cs.w.a.c.opts.StopGrace; stop < grace {
				t.Reset(stop)
			}
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-exited
}

// defaultPath is the PATH of a container whose image sets none, as in most base images.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// sandboxSpec resolves everything a start needs: the binary, the environment, the mounts.
func (cs *containerState) sandboxSpec() (*sandboxSpec, error) {
	w := cs.w
	w.mu.Lock()
	pod := w.pod
	hostIdx := w.hostIdx
	dirs := make(map[string]string, len(w.volumeDirs))
	for k, v := range w.volumeDirs {
		dirs[k] = v
	}
	w.mu.Unlock()
	pod = w.podWithStatus(pod)

	env, err := cs.buildEnv(pod)
	if err != nil {
		return nil, err
	}
	c := cs.spec
	identity, err := containerIdentity(pod, &c)
	if err != nil {
		return nil, err
	}
	path, argv, err := resolveCommand(w.a.c.opts.Images, &c)
	if err != nil {
		return nil, err
	}
	for i := range argv {
		argv[i] = expandVars(argv[i], env.lookup)
	}
	spec := &sandboxSpec{
		Hostname:   podHostname(pod),
		Path:       path,
		Args:       argv,
		Env:        env.environ(),
		WorkingDir: c.WorkingDir,
		Identity:   identity,
	}
	if sc := c.SecurityContext; sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		spec.ReadOnlyRoot = true
	}
	if hostIdx > 0 {
		spec.Netns = filepath.Join("/run/netns", w.a.c.net.netnsName(hostIdx))
	}
	readOnlyKind := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		readOnlyKind[v.Name] = v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil
	}
	ownHosts := false
	for _, vm := range c.VolumeMounts {
		dir, ok := dirs[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volume mount %q names no ready volume of the pod", vm.Name)
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expandVars(vm.SubPathExpr, env.lookup)
		}
		if sub != "" {
			if err := validatePayloadPath(sub); err != nil {
				return nil, fmt.Errorf("volume mount %q subPath: %w", vm.Name, err)
			}
			dir = filepath.Join(dir, sub)
			if _, err := os.Stat(dir); err != nil {
				// The kubelet creates a missing subPath directory in writable volumes.
				if readOnlyKind[vm.Name] {
					return nil, fmt.Errorf("volume mount %q subPath %q: %w", vm.Name, sub, err)
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return nil, err
				}
			}
		}
		spec.Mounts = append(spec.Mounts, sandboxMount{Source: dir, Target: vm.MountPath, ReadOnly: vm.ReadOnly || readOnlyKind[vm.Name]})
		ownHosts = ownHosts || filepath.Clean(vm.MountPath) == "/etc/hosts"
	}
	if !pod.Spec.HostNetwork && !ownHosts {
		spec.Mounts = append(spec.Mounts, sandboxMount{Source: filepath.Join(w.dir, "etc-hosts"), Target: "/etc/hosts", ReadOnly: true})
	}
	return spec, nil
}

// buildEnv is the container's environment in the kubelet's order: the apiserver's address,
// then envFrom, then env, each env value expanded against what came before.
func (cs *containerState) buildEnv(pod *corev1.Pod) (*envList, error) {
	a := cs.w.a
	env := newEnvList()
	env.set("PATH", defaultPath)
	env.set("HOSTNAME", podHostname(pod))
	// There is no kube-proxy, so the kubernetes Service's cluster IP leads nowhere: in-cluster
	// clients are pointed at the apiserver itself, which listens on the bridge address.
	host, port := a.c.net.gateway.String(), strconv.Itoa(a.c.apiPort())
	env.set("KUBERNETES_SERVICE_HOST", host)
	env.set("KUBERNETES_SERVICE_PORT", port)
	env.set("KUBERNETES_SERVICE_PORT_HTTPS", port)
	env.set("KUBERNETES_PORT", "tcp://"+host+":"+port)
	src := podSources{cs.w}
	for _, ef := range cs.spec.EnvFrom {
		var data map[string][]byte
		switch {
		case ef.ConfigMapRef != nil:
			cm, err := src.configMap(pod.Namespace, ef.ConfigMapRef.Name)
			if err != nil {
				if isNotFound(err) && ef.ConfigMapRef.Optional != nil && *ef.ConfigMapRef.Optional {
					continue
				}
				return nil, fmt.Errorf("envFrom configmap %q: %w", ef.ConfigMapRef.Name, err)
			}
			data = configMapData(cm)
		case ef.SecretRef != nil:
			s, err := src.secret(pod.Namespace, ef.SecretRef.Name)
			if err != nil {
				if isNotFound(err) && ef.SecretRef.Optional != nil && *ef.SecretRef.Optional {
					continue
				}
				return nil, fmt.Errorf("envFrom secret %q: %w", ef.SecretRef.Name, err)
			}
			data = s.Data
		}
		for _, k := range sortedKeys(data) {
			name := ef.Prefix + k
			if len(validation.IsEnvVarName(name)) == 0 {
				env.set(name, string(data[k]))
			}
		}
	}
	for _, e := range cs.spec.Env {
		if e.ValueFrom == nil {
			env.set(e.Name, expandVars(e.Value, env.lookup))
			continue
		}
		v, skip, err := cs.envValueFrom(pod, e.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if !skip {
			env.set(e.Name, v)
		}
	}
	return env, nil
}

func (cs *containerState) envValueFrom(pod *corev1.Pod, vf *corev1.EnvVarSource) (value string, skip bool, err error) {
	src := podSources{cs.w}
	switch {
	case vf.FieldRef != nil:
		v, err := podFieldValue(pod, vf.FieldRef.FieldPath)
		return v, false, err
	case vf.ResourceFieldRef != nil:
		v, err := containerResourceValue(pod, cs.spec.Name, vf.ResourceFieldRef)
		return v, false, err
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm, err := src.configMap(pod.Namespace, ref.Name)
		if err != nil {
			if optional && isNotFound(err) {
				return "", true, nil
			}
			return "", false, fmt.Errorf("configmap %q: %w", ref.Name, err)
		}
		v, ok := configMapData(cm)[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("configmap %q has no key %q", ref.Name, ref.Key)
		}
		return string(v), false, nil
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		s, err := src.secret(pod.Namespace, ref.Name)
		if err != nil {
			if optional && isNotFound(err) {
				return "", true, nil
			}
			return "", false, fmt.Errorf("secret %q: %w", ref.Name, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("secret %q has no key %q", ref.Name, ref.Key)
		}
		return string(v), false, nil
	}
	return "", false, errors.New("unsupported valueFrom")
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// status is the container's status as the kubelet reports it. Call with w.mu held.
func (cs *containerState) status() corev1.ContainerStatus {
	st := corev1.ContainerStatus{
		Name:         cs.spec.Name,
		Image:        cs.spec.Image,
		ImageID:      cs.imageID,
		ContainerID:  cs.containerID,
		RestartCount: cs.restartCount,
		Ready:        cs.ready,
	}
	started := cs.started
	st.Started = &started
	switch {
	case cs.pid != 0:
		st.State.Running = &corev1.ContainerStateRunning{StartedAt: cs.startedAt}
	case cs.waiting != nil:
		st.State.Waiting = cs.waiting.DeepCopy()
	case cs.term != nil:
		st.State.Terminated = cs.term.DeepCopy()
	}
	if cs.init {
		st.Ready = cs.finished && cs.term != nil && cs.term.ExitCode == 0
	}
	// lastState is the run before the current one: while the container runs or waits to
	// restart that is the latest termination; once it has terminated for good, the one
	// before that.
	last := cs.lastTerm
	if st.State.Terminated != nil {
		last = cs.prevTerm
	}
	if last != nil {
		st.LastTerminationState.Terminated = last.DeepCopy()
	}
	return st
}
