package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Probes run from the host against the pod's address, as the kubelet runs them from the
// node: httpGet and tcpSocket connect to the pod IP, exec runs the command inside the
// container's namespaces with nsenter.

// contextWithDone is a child of parent that also ends when done is closed.
func contextWithDone(parent context.Context, done <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// probeTiming is a probe's timing with the API defaults filled in.
type probeTiming struct {
	initialDelay, period, timeout time.Duration
	successThreshold, failureThr  int
}

func timingOf(p *corev1.Probe) probeTiming {
	orDefault := func(v, def int32) int32 {
		if v <= 0 {
			return def
		}
		return v
	}
	return probeTiming{
		initialDelay:     time.Duration(p.InitialDelaySeconds) * time.Second,
		period:           time.Duration(orDefault(p.PeriodSeconds, 10)) * time.Second,
		timeout:          time.Duration(orDefault(p.TimeoutSeconds, 1)) * time.Second,
		successThreshold: int(orDefault(p.SuccessThreshold, 1)),
		failureThr:       int(orDefault(p.FailureThreshold, 3)),
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runProbes runs the container's probes for one run of it: the startup probe first, then
// readiness and liveness side by side. It returns when ctx ends.
func (cs *containerState) runProbes(ctx context.Context) {
	if p := cs.spec.StartupProbe; p != nil {
		if !cs.probeLoop(ctx, "Startup", p, func(successes, failures int, msg string, t probeTiming) bool {
			if successes >= 1 {
				cs.w.mu.Lock()
				cs.started = true
				if cs.spec.ReadinessProbe == nil {
					cs.ready = true
				}
				cs.w.mu.Unlock()
				cs.w.notify()
				return true
			}
			if failures >= t.failureThr {
				cs.requestRestart("failed startup probe: " + msg)
				return true
			}
			return false
		}) {
			return
		}
		cs.w.mu.Lock()
		started := cs.started
		cs.w.mu.Unlock()
		if !started {
			return
		}
	}
	if p := cs.spec.LivenessProbe; p != nil {
		go cs.probeLoop(ctx, "Liveness", p, func(_, failures int, msg string, t probeTiming) bool {
			if failures >= t.failureThr {
				cs.requestRestart("failed liveness probe: " + msg)
				return true
			}
			return false
		})
	}
	if p := cs.spec.ReadinessProbe; p != nil {
		cs.probeLoop(ctx, "Readiness", p, func(successes, failures int, _ string, t probeTiming) bool {
			var ready bool
			switch {
			case successes >= t.successThreshold:
				ready = true
			case failures >= t.failureThr:
				ready = false
			default:
				return false
			}
			cs.w.mu.Lock()
			changed := cs.ready != ready
			cs.ready = ready
			cs.w.mu.Unlock()
			if changed {
				cs.w.notify()
			}
			return false
		})
	}
}

func (cs *containerState) requestRestart(reason string) {
	select {
	case cs.killCh <- reason:
	default:
	}
}

// probeLoop probes every period and hands the counts of consecutive successes and failures
// to decide, until decide says stop (returns true) or ctx ends (returns false).
func (cs *containerState) probeLoop(ctx context.Context, kind string, p *corev1.Probe, decide func(successes, failures int, msg string, t probeTiming) bool) bool {
	t := timingOf(p)
	if !sleepCtx(ctx, t.initialDelay) {
		return false
	}
	successes, failures := 0, 0
	for {
		ok, msg := cs.probeOnce(ctx, p, t.timeout)
		if ctx.Err() != nil {
			return false
		}
		if ok {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
			cs.w.event(corev1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", kind, msg)
		}
		if decide(successes, failures, msg, t) {
			return true
		}
		if !sleepCtx(ctx, t.period) {
			return false
		}
	}
}

// probeOnce runs one probe and says whether it passed, and if not, why.
func (cs *containerState) probeOnce(ctx context.Context, p *corev1.Probe, timeout time.Duration) (bool, string) {
	cs.w.mu.Lock()
	podIP, pid, env := cs.w.ip, cs.pid, cs.env
	cs.w.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.HTTPGet != nil:
		return cs.probeHTTP(ctx, p.HTTPGet, podIP)
	case p.TCPSocket != nil:
		host := p.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		port, err := cs.resolvePort(p.TCPSocket.Port)
		if err != nil {
			return false, err.Error()
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	case p.Exec != nil:
		if pid == 0 || len(p.Exec.Command) == 0 {
			return false, "no running process to exec in"
		}
		args := append([]string{"--target", strconv.Itoa(pid), "--mount", "--uts", "--net", "--"}, p.Exec.Command...)
		cmd := exec.CommandContext(ctx, "nsenter", args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return false, fmt.Sprintf("%v: %s", err, strings.TrimSpace(string(out)))
		}
		return true, ""
	case p.GRPC != nil:
		return false, "grpc probes are not supported by the local node agent; use httpGet, tcpSocket or exec"
	}
	return false, "the probe has no handler"
}

func (cs *containerState) probeHTTP(ctx context.Context, g *corev1.HTTPGetAction, podIP string) (bool, string) {
	host := g.Host
	if host == "" {
		host = podIP
	}
	port, err := cs.resolvePort(g.Port)
	if err != nil {
		return false, err.Error()
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "kube-probe/fleetmq-local")
	for _, h := range g.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	client := &http.Client{
		Transport: &http.Transport{
			DisableKeepAlives: true,
			// The kubelet does not verify the certificates of HTTPS probes either.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return true, ""
	}
	return false, fmt.Sprintf("HTTP probe failed with statuscode: %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
}

// resolvePort turns a probe port (a number or a container port name) into a number.
func (cs *containerState) resolvePort(p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range cs.spec.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("container %s has no port named %q", cs.spec.Name, p.StrVal)
}
