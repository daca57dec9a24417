package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeBinDir returns the control-plane binaries: $KUBEBUILDER_ASSETS, or built (or found
// in the cache) by hack/kube-binaries.sh.
func kubeBinDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		if _, err := resolveBinDir(dir); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	root, err := FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, err := BuildKubeBinaries(ctx, root, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// testWriter sends a component's progress to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// buildBroker builds cmd/fleetmq-broker into dir.
func buildBroker(t *testing.T, dir string) string {
	t.Helper()
	root, err := FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "fleetmq-broker")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/fleetmq-broker")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build fleetmq-broker: %v\n%s", err, b)
	}
	return out
}

// eventually polls cond every 200ms until it holds or timeout passes; the failure shows the
// last state cond described.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last state: %s", what, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

const (
	testNamespace = "mqtt"
	brokerImage   = "ghcr.io/fleetmq/fleetmq:dev"
)

func brokerConfig(logLevel string) string {
	return fmt.Sprintf(`listeners:
  - name: mqtt
    address: 0.0.0.0:1883
allowAnonymous: true
metrics:
  address: 0.0.0.0:9090
log:
  level: %s
`, logLevel)
}

func brokerStatefulSet(replicas int32) *appsv1.StatefulSet {
	labels := map[string]string{"app": "broker"}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "broker", Namespace: testNamespace},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: "broker-peers",
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr(int64(10)),
					// What the operator's pods ask for: a non-root user whose group owns
					// the volumes.
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: ptr(true),
						RunAsUser:    ptr(int64(brokerUID)),
						RunAsGroup:   ptr(int64(brokerUID)),
						FSGroup:      ptr(int64(brokerUID)),
					},
					Containers: []corev1.Container{{
						Name:            "broker",
						Image:           brokerImage,
						SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true)},
						Command:         []string{"fleetmq-broker", "--config", "/etc/fleetmq/config/broker.yaml"},
						Env: []corev1.EnvVar{{
							Name:      "POD_NAME",
							ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
						}},
						Ports: []corev1.ContainerPort{{Name: "mqtt", ContainerPort: 1883}, {Name: "metrics", ContainerPort: 9090}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("metrics")}},
							PeriodSeconds: 1,
						},
						LivenessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(1883)}},
							PeriodSeconds: 2,
							// Lenient: the disconnect test cuts a pod off for a few seconds
							// and expects NotReady, not a restart.
							FailureThreshold: 10,
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "config", MountPath: "/etc/fleetmq/config"},
							{Name: "data", MountPath: "/var/lib/fleetmq"},
						},
					}},
					Volumes: []corev1.Volume{{
						Name: "config",
						VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: "broker-config"},
						}},
					}},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceStorage: resource.MustParse("64Mi"),
					}},
				},
			}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// brokerUID is the user the test StatefulSet's pods run as (distroless "nonroot").
const brokerUID = 65532

// podReady reports whether the pod is Running and Ready, with a description for failures.
func podReady(pod *corev1.Pod) (bool, string) {
	ready := false
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	var cs []string
	for _, s := range pod.Status.ContainerStatuses {
		state := "?"
		switch {
		case s.State.Running != nil:
			state = "running"
		case s.State.Waiting != nil:
			state = "waiting " + s.State.Waiting.Reason + " " + s.State.Waiting.Message
		case s.State.Terminated != nil:
			state = fmt.Sprintf("terminated %d %s", s.State.Terminated.ExitCode, s.State.Terminated.Reason)
		}
		cs = append(cs, fmt.Sprintf("%s ready=%v restarts=%d %s", s.Name, s.Ready, s.RestartCount, state))
	}
	return pod.Status.Phase == corev1.PodRunning && ready, fmt.Sprintf("%s phase=%s ip=%s [%s]", pod.Name, pod.Status.Phase, pod.Status.PodIP, strings.Join(cs, "; "))
}

func waitPodReady(t *testing.T, ctx context.Context, client kubernetes.Interface, name string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, timeout, "pod "+name+" Running and Ready", func() (bool, string) {
		p, err := client.CoreV1().Pods(testNamespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pod = p
		return podReady(p)
	})
	return pod
}

// mqttRoundTrip connects an MQTT 5 client to addr, subscribes, publishes and receives its
// own message: the broker in the pod really serves MQTT at the pod's address.
func mqttRoundTrip(t *testing.T, ctx context.Context, addr, clientID string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	msgs := make(chan *paho.Publish, 1)
	cli := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			select {
			case msgs <- pr.Packet:
			default:
			}
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ca, err := cli.Connect(ctx, &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("MQTT connect to %s: %v %+v", addr, err, ca)
	}
	defer cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
	topic := "fleetmq/localcluster/" + clientID
	if _, err := cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		t.Fatalf("subscribe at %s: %v", addr, err)
	}
	if _, err := cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("hello " + addr)}); err != nil {
		t.Fatalf("publish at %s: %v", addr, err)
	}
	select {
	case m := <-msgs:
		if string(m.Payload) != "hello "+addr {
			t.Fatalf("received %q at %s", m.Payload, addr)
		}
	case <-ctx.Done():
		t.Fatalf("no message came back from the broker at %s", addr)
	}
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil {
		return false
	}
	// A zombie is dead for our purposes; its parent reaps it.
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(data), ") Z ")
}

// leftovers lists what a stopped cluster must not leave: the given processes, any process
// whose command line names the cluster directory dir, namespaces and interfaces.
func leftovers(prefix, dir string, pids []int) []string {
	var left []string
	for _, pid := range pids {
		if processAlive(pid) {
			left = append(left, fmt.Sprintf("process %d", pid))
		}
	}
	if dir != "" {
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			data, err := os.ReadFile(p)
			if err == nil && strings.Contains(string(data), dir) {
				var pid int
				fmt.Sscanf(p, "/proc/%d/cmdline", &pid)
				if processAlive(pid) {
					left = append(left, fmt.Sprintf("process %d (%s)", pid, strings.ReplaceAll(string(data), "\x00", " ")))
				}
			}
		}
	}
	if names, err := os.ReadDir("/run/netns"); err == nil {
		for _, n := range names {
			if strings.HasPrefix(n.Name(), prefix) {
				left = append(left, "network namespace "+n.Name())
			}
		}
	}
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if strings.HasPrefix(ifc.Name, prefix) {
			left = append(left, "interface "+ifc.Name)
		}
	}
	return left
}

// TestLocalClusterRunsBrokers runs the real broker as a StatefulSet on the local cluster
// and checks what the operator and the e2e suite will rely on: pods Ready on their own
// addresses serving MQTT, EndpointSlices, PVCs, ConfigMap updates through the ..data swap,
// crash recovery, scale-down, ServiceAccount kubeconfigs under RBAC, kubectl logs, and a
// Stop that leaves nothing behind.
func TestLocalClusterRunsBrokers(t *testing.T) {
	requireRoot(t)
	binDir := kubeBinDir(t)
	brokerBin := buildBroker(t, t.TempDir())

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	begin := time.Now()
	c := StartT(t, Options{
		BinDir:         binDir,
		Images:         map[string]string{"ghcr.io/fleetmq/fleetmq": brokerBin},
		RestartBackoff: time.Second,
		Logger:         slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	t.Logf("cluster started in %s", time.Since(begin).Round(time.Millisecond))
	var pids []int // every process the cluster ran, checked after Stop
	for _, p := range []*process{c.etcd, c.apiserver, c.kcm} {
		pids = append(pids, p.cmd.Process.Pid)
	}
	prefix := c.NetworkPrefix()
	client := c.Client()

	if err := c.CreateNamespace(ctx, testNamespace); err != nil {
		t.Fatal(err)
	}
	_, err := client.CoreV1().ConfigMaps(testNamespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "broker-config"},
		Data:       map[string]string{"broker.yaml": brokerConfig("info")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.CoreV1().Services(testNamespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "broker-peers"},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  map[string]string{"app": "broker"},
			Ports:     []corev1.ServicePort{{Name: "mqtt", Port: 1883}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.AppsV1().StatefulSets(testNamespace).Create(ctx, brokerStatefulSet(2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var pod0, pod1 *corev1.Pod
	t.Run("pods Ready on their own addresses", func(t *testing.T) {
		start := time.Now()
		pod0 = waitPodReady(t, ctx, client, "broker-0", 60*time.Second)
		pod1 = waitPodReady(t, ctx, client, "broker-1", 60*time.Second)
		t.Logf("2 broker pods Ready in %s", time.Since(start).Round(time.Millisecond))
		if pod0.Status.PodIP == "" || pod0.Status.PodIP == pod1.Status.PodIP {
			t.Fatalf("pod IPs %q and %q; want two distinct addresses", pod0.Status.PodIP, pod1.Status.PodIP)
		}
		for _, p := range []*corev1.Pod{pod0, pod1} {
			if p.Spec.NodeName != c.NodeName() || p.Status.HostIP != c.HostIP() {
				t.Errorf("%s: node %q host IP %q; want %q %q", p.Name, p.Spec.NodeName, p.Status.HostIP, c.NodeName(), c.HostIP())
			}
			info, ok := c.Pod(testNamespace, p.Name)
			if !ok || info.IP != p.Status.PodIP || len(info.Containers) != 1 || info.Containers[0].PID == 0 {
				t.Errorf("%s: node view %+v does not match the API (IP %s)", p.Name, info, p.Status.PodIP)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("containers run as their security context's user, who can read their volumes", func(t *testing.T) {
		info, _ := c.Pod(testNamespace, "broker-0")
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", info.Containers[0].PID))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"Uid":        fmt.Sprintf("%d\t%d\t%d\t%d", brokerUID, brokerUID, brokerUID, brokerUID),
			"Gid":        fmt.Sprintf("%d\t%d\t%d\t%d", brokerUID, brokerUID, brokerUID, brokerUID),
			"Groups":     fmt.Sprint(brokerUID),
			"NoNewPrivs": "1",
			"CapEff":     "0000000000000000",
		}
		for _, line := range strings.Split(string(status), "\n") {
			k, v, _ := strings.Cut(line, ":")
			if w, ok := want[k]; ok {
				if got := strings.TrimSpace(v); got != w {
					t.Errorf("broker-0's process: %s %q; want %q", k, got, w)
				}
				delete(want, k)
			}
		}
		if len(want) > 0 {
			t.Errorf("no %v in /proc/%d/status", want, info.Containers[0].PID)
		}
		// readOnlyRootFilesystem: / is read-only in the container's view, its PVC is not.
		mountinfo, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", info.Containers[0].PID))
		if err != nil {
			t.Fatal(err)
		}
		opts := map[string]string{}
		for _, line := range strings.Split(string(mountinfo), "\n") {
			if f := strings.Fields(line); len(f) > 5 {
				opts[f[4]] = f[5] // mount point -> per-mount options; the last mount wins
			}
		}
		for mp, want := range map[string]string{"/": "ro", "/etc/fleetmq/config": "ro", "/var/lib/fleetmq": "rw"} {
			if got, _, _ := strings.Cut(opts[mp], ","); got != want {
				t.Errorf("broker-0 sees %s mounted %q; want %s", mp, opts[mp], want)
			}
		}
		// fsGroup: the ConfigMap's files and the PVC belong to the pod's group, and the
		// PVC's directories pass the group on to what the broker creates in them.
		for _, p := range []string{
			filepath.Join(info.Volumes["config"], "..data", "broker.yaml"),
			info.Volumes["data"],
		} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if gid, _ := statGID(fi); gid != brokerUID || fi.Mode().Perm()&0o040 == 0 {
				t.Errorf("%s: group %d, mode %v; want group %d with read access", p, gid, fi.Mode(), brokerUID)
			}
		}
		if fi, err := os.Stat(info.Volumes["data"]); err == nil && (fi.Mode()&os.ModeSetgid == 0 || fi.Mode().Perm()&0o020 == 0) {
			t.Errorf("PVC directory mode %v; want group-writable with the setgid bit", fi.Mode())
		}
	})

	t.Run("MQTT clients reach each pod", func(t *testing.T) {
		for _, p := range []*corev1.Pod{pod0, pod1} {
			mqttRoundTrip(t, ctx, net.JoinHostPort(p.Status.PodIP, "1883"), "probe-"+p.Name)
		}
	})

	t.Run("EndpointSlice lists both pods ready", func(t *testing.T) {
		eventually(t, 30*time.Second, "EndpointSlice of broker-peers with both pod IPs", func() (bool, string) {
			slices, err := client.DiscoveryV1().EndpointSlices(testNamespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=broker-peers"})
			if err != nil {
				return false, err.Error()
			}
			ready := map[string]bool{}
			for _, s := range slices.Items {
				for _, e := range s.Endpoints {
					if e.Conditions.Ready != nil && *e.Conditions.Ready {
						for _, a := range e.Addresses {
							ready[a] = true
						}
					}
				}
			}
			return ready[pod0.Status.PodIP] && ready[pod1.Status.PodIP], fmt.Sprintf("ready addresses %v", ready)
		})
	})

	t.Run("peer names resolve inside the pods", func(t *testing.T) {
		info, _ := c.Pod(testNamespace, "broker-0")
		eventually(t, 10*time.Second, "broker-1.broker-peers resolves to broker-1's IP inside broker-0", func() (bool, string) {
			out, err := exec.Command("nsenter", "--target", fmt.Sprint(info.Containers[0].PID), "--mount",
				"getent", "hosts", "broker-1.broker-peers.mqtt.svc.cluster.local").CombinedOutput()
			return err == nil && strings.HasPrefix(string(out), pod1.Status.PodIP+" "), string(out)
		})
	})

	t.Run("PVCs bound to local volumes", func(t *testing.T) {
		for _, name := range []string{"data-broker-0", "data-broker-1"} {
			pvc, err := client.CoreV1().PersistentVolumeClaims(testNamespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
				t.Errorf("%s: phase %s volume %q; want Bound", name, pvc.Status.Phase, pvc.Spec.VolumeName)
			}
		}
	})

	t.Run("ConfigMap update reaches the pod through the ..data swap", func(t *testing.T) {
		info, _ := c.Pod(testNamespace, "broker-0")
		volDir := info.Volumes["config"]
		before, err := os.Readlink(filepath.Join(volDir, "..data"))
		if err != nil {
			t.Fatalf("the config volume has no ..data link: %v", err)
		}
		cm, err := client.CoreV1().ConfigMaps(testNamespace).Get(ctx, "broker-config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["broker.yaml"] = brokerConfig("debug")
		if _, err := client.CoreV1().ConfigMaps(testNamespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		updated := time.Now()
		eventually(t, 10*time.Second, "new broker.yaml inside broker-0's mount namespace", func() (bool, string) {
			info, _ := c.Pod(testNamespace, "broker-0")
			// Read the file as the container sees it, through its own mount namespace.
			out, err := exec.Command("nsenter", "--target", fmt.Sprint(info.Containers[0].PID), "--mount",
				"cat", "/etc/fleetmq/config/broker.yaml").CombinedOutput()
			return err == nil && strings.Contains(string(out), "level: debug"), string(out)
		})
		t.Logf("ConfigMap edit visible in the pod after %s", time.Since(updated).Round(time.Millisecond))
		after, _ := os.Readlink(filepath.Join(volDir, "..data"))
		if after == before {
			t.Errorf("..data still links to %s; the update did not swap it", before)
		}
		if target, _ := os.Readlink(filepath.Join(volDir, "broker.yaml")); target != "..data/broker.yaml" {
			t.Errorf("broker.yaml links to %q; want ..data/broker.yaml", target)
		}
		info, _ = c.Pod(testNamespace, "broker-0")
		if info.Containers[0].RestartCount != 0 {
			t.Errorf("the ConfigMap edit restarted the broker (restarts %d)", info.Containers[0].RestartCount)
		}
	})

	t.Run("kill -9 restarts the broker", func(t *testing.T) {
		info, _ := c.Pod(testNamespace, "broker-1")
		oldPID := info.Containers[0].PID
		pids = append(pids, oldPID)
		if err := c.Signal(testNamespace, "broker-1", "broker", syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		eventually(t, 30*time.Second, "broker-1 restarted and Ready", func() (bool, string) {
			p, err := client.CoreV1().Pods(testNamespace).Get(ctx, "broker-1", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			ready, desc := podReady(p)
			s := p.Status.ContainerStatuses
			restarted := len(s) == 1 && s[0].RestartCount == 1 && s[0].LastTerminationState.Terminated != nil &&
				s[0].LastTerminationState.Terminated.ExitCode == 137
			return ready && restarted, desc
		})
		t.Logf("broker-1 Ready again %s after kill -9", time.Since(killed).Round(time.Millisecond))
		info, _ = c.Pod(testNamespace, "broker-1")
		if info.Containers[0].PID == oldPID || processAlive(oldPID) {
			t.Errorf("the old broker process %d still runs (new %d)", oldPID, info.Containers[0].PID)
		}
		pod1, _ = client.CoreV1().Pods(testNamespace).Get(ctx, "broker-1", metav1.GetOptions{})
		mqttRoundTrip(t, ctx, net.JoinHostPort(pod1.Status.PodIP, "1883"), "after-restart")
	})

	t.Run("a disconnected pod is unreachable and turns NotReady", func(t *testing.T) {
		addr := net.JoinHostPort(pod0.Status.PodIP, "1883")
		if err := c.Disconnect(testNamespace, "broker-0"); err != nil {
			t.Fatal(err)
		}
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("connected to %s while broker-0 was disconnected", addr)
		}
		eventually(t, 15*time.Second, "broker-0 NotReady while cut off", func() (bool, string) {
			p, err := client.CoreV1().Pods(testNamespace).Get(ctx, "broker-0", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			ready, desc := podReady(p)
			return !ready, desc
		})
		if err := c.Reconnect(testNamespace, "broker-0"); err != nil {
			t.Fatal(err)
		}
		waitPodReady(t, ctx, client, "broker-0", 15*time.Second)
		mqttRoundTrip(t, ctx, addr, "after-reconnect")
	})

	t.Run("kubectl get and logs", func(t *testing.T) {
		out, err := c.Kubectl(ctx, "-n", testNamespace, "get", "pods", "-o", "wide")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "broker-0") || !strings.Contains(string(out), "Running") {
			t.Errorf("kubectl get pods:\n%s", out)
		}
		out, err = c.Kubectl(ctx, "-n", testNamespace, "logs", "broker-1", "--previous")
		if err != nil {
			t.Fatal(err)
		}
		if len(out) == 0 {
			t.Errorf("kubectl logs --previous printed nothing")
		}
	})

	t.Run("ServiceAccount kubeconfig has only its RBAC", func(t *testing.T) {
		_, err := client.CoreV1().ServiceAccounts(testNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "operator"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.RbacV1().Roles(testNamespace).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.RbacV1().RoleBindings(testNamespace).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "operator-pod-reader"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "operator", Namespace: testNamespace}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		path, err := c.KubeconfigFor(ctx, testNamespace, "operator")
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatal(err)
		}
		sa := kubernetes.NewForConfigOrDie(cfg)
		eventually(t, 10*time.Second, "the operator account lists pods", func() (bool, string) {
			pods, err := sa.CoreV1().Pods(testNamespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			return len(pods.Items) == 2, fmt.Sprintf("%d pods", len(pods.Items))
		})
		if _, err := sa.CoreV1().Secrets(testNamespace).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("listing secrets as the operator account: %v; want Forbidden", err)
		}
		if _, err := c.KubeconfigFor(ctx, testNamespace, "nobody"); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("kubeconfig for a missing account: %v; want an error saying it does not exist", err)
		}

		// A host process with that kubeconfig, as the operator will run: it lives until Stop.
		watcher, err := c.StartProcess("pod-watcher", []string{filepath.Join(binDir, "kubectl"), "--kubeconfig", path,
			"-n", testNamespace, "get", "pods", "--watch"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, watcher.PID())
		eventually(t, 10*time.Second, "the watcher lists broker-0", func() (bool, string) {
			data, _ := os.ReadFile(watcher.LogPath())
			return strings.Contains(string(data), "broker-0"), string(data)
		})
		select {
		case <-watcher.Done():
			data, _ := os.ReadFile(watcher.LogPath())
			t.Fatalf("the watcher exited: %v\n%s", watcher.Err(), data)
		default:
		}
	})

	t.Run("scale to 1 removes the pod and its process", func(t *testing.T) {
		info, _ := c.Pod(testNamespace, "broker-1")
		pid, netns := info.Containers[0].PID, info.NetNS
		pids = append(pids, pid)
		sts, err := client.AppsV1().StatefulSets(testNamespace).Get(ctx, "broker", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sts.Spec.Replicas = ptr(int32(1))
		if _, err := client.AppsV1().StatefulSets(testNamespace).Update(ctx, sts, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		scaled := time.Now()
		eventually(t, 30*time.Second, "broker-1 gone from the API", func() (bool, string) {
			_, err := client.CoreV1().Pods(testNamespace).Get(ctx, "broker-1", metav1.GetOptions{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
		t.Logf("broker-1 deleted %s after scaling down", time.Since(scaled).Round(time.Millisecond))
		if processAlive(pid) {
			t.Errorf("the broker-1 process %d still runs", pid)
		}
		if _, err := os.Stat(filepath.Join("/run/netns", netns)); !os.IsNotExist(err) {
			t.Errorf("the network namespace %s of broker-1 still exists", netns)
		}
		if _, ok := c.Pod(testNamespace, "broker-1"); ok {
			t.Errorf("the node agent still runs broker-1")
		}
		if p := waitPodReady(t, ctx, client, "broker-0", 5*time.Second); p.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Errorf("broker-0 restarted during the scale-down")
		}
	})

	t.Run("pod lifecycle: grace period, completion, unmapped image", func(t *testing.T) {
		mkPod := func(name, image string, policy corev1.RestartPolicy, grace int64, command ...string) {
			t.Helper()
			_, err := client.CoreV1().Pods(testNamespace).Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: corev1.PodSpec{
					RestartPolicy:                 policy,
					TerminationGracePeriodSeconds: &grace,
					Containers:                    []corev1.Container{{Name: "main", Image: image, Command: command}},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
		}
		// Ignores SIGTERM and has a child in its process group: deletion must wait the grace
		// period, then SIGKILL both.
		mkPod("stubborn", brokerImage, corev1.RestartPolicyAlways, 2, "/bin/sh", "-c", "trap '' TERM; sleep 600 & wait; sleep 600")
		// An init container writes a file into an emptyDir that the main container checks:
		// init containers run first, volumes are shared, and $(VAR) is expanded by the node
		// agent (the shell would run $(GREETING) as a command instead).
		shared := []corev1.VolumeMount{{Name: "shared", MountPath: "/tmp/fleetmq-shared"}}
		_, err := client.CoreV1().Pods(testNamespace).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "job"},
			Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Volumes:       []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				InitContainers: []corev1.Container{{Name: "init", Image: brokerImage, VolumeMounts: shared,
					Env:     []corev1.EnvVar{{Name: "GREETING", Value: "hello-$(POD_NAME)"}, {Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
					Command: []string{"/bin/sh", "-c", "echo '$(GREETING)' > /tmp/fleetmq-shared/x"}}},
				Containers: []corev1.Container{{Name: "main", Image: brokerImage, VolumeMounts: shared,
					Command: []string{"/bin/sh", "-c", "grep -qx 'hello-$(POD_NAME)' /tmp/fleetmq-shared/x"}}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mkPod("unmapped", "docker.io/library/nginx:1.27", corev1.RestartPolicyAlways, 30)
		// runAsNonRoot with user 0: refused before anything runs, as the kubelet does.
		_, err = client.CoreV1().Pods(testNamespace).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "rootful"},
			Spec: corev1.PodSpec{
				SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr(true)},
				Containers: []corev1.Container{{Name: "main", Image: brokerImage, Command: []string{"/bin/sh", "-c", "sleep 600"},
					SecurityContext: &corev1.SecurityContext{RunAsUser: ptr(int64(0))}}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}

		waitPodReady(t, ctx, client, "stubborn", 30*time.Second)
		eventually(t, 30*time.Second, "job Succeeded", func() (bool, string) {
			p, err := client.CoreV1().Pods(testNamespace).Get(ctx, "job", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			ok, desc := podReady(p)
			_ = ok
			return p.Status.Phase == corev1.PodSucceeded, desc
		})
		// waitingFor waits until the pod's container waits with reason and a message
		// containing msg.
		waitingFor := func(pod, reason, msg string) {
			t.Helper()
			eventually(t, 30*time.Second, pod+" waiting: "+reason, func() (bool, string) {
				p, err := client.CoreV1().Pods(testNamespace).Get(ctx, pod, metav1.GetOptions{})
				if err != nil || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil {
					return false, fmt.Sprint(err)
				}
				w := p.Status.ContainerStatuses[0].State.Waiting
				return w.Reason == reason && strings.Contains(w.Message, msg), w.Reason + ": " + w.Message
			})
		}
		waitingFor("unmapped", "ErrImageNeverPull", "Options.Images")
		waitingFor("rootful", "CreateContainerConfigError", "runAsUser breaks non-root policy")

		// kubectl describe shows why: the events of the scheduler and the node.
		eventually(t, 10*time.Second, "Scheduled and Failed events for the unmapped pod", func() (bool, string) {
			evs, err := client.CoreV1().Events(testNamespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=unmapped"})
			if err != nil {
				return false, err.Error()
			}
			reasons := map[string]bool{}
			var all []string
			for _, e := range evs.Items {
				reasons[e.Reason] = reasons[e.Reason] || e.Reason != "Failed" || strings.Contains(e.Message, "Options.Images")
				all = append(all, e.Reason+": "+e.Message)
			}
			return reasons["Scheduled"] && reasons["Failed"], strings.Join(all, "; ")
		})

		info, _ := c.Pod(testNamespace, "stubborn")
		deleted := time.Now()
		if err := client.CoreV1().Pods(testNamespace).Delete(ctx, "stubborn", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "stubborn gone from the API", func() (bool, string) {
			_, err := client.CoreV1().Pods(testNamespace).Get(ctx, "stubborn", metav1.GetOptions{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
		took := time.Since(deleted)
		t.Logf("a pod ignoring SIGTERM with a 2s grace period was gone after %s", took.Round(time.Millisecond))
		if took < 2*time.Second {
			t.Errorf("the pod was removed after %s, before its 2s grace period ended", took)
		}
		if processAlive(info.Containers[0].PID) {
			t.Errorf("the stubborn process %d survived its deletion", info.Containers[0].PID)
		}
		if out, _ := exec.Command("ip", "netns", "pids", info.NetNS).CombinedOutput(); strings.TrimSpace(string(out)) != "" && !strings.Contains(string(out), "No such file") {
			t.Errorf("processes left in the pod's network namespace: %s", out)
		}
		for _, name := range []string{"job", "unmapped", "rootful"} {
			_ = client.CoreV1().Pods(testNamespace).Delete(ctx, name, metav1.DeleteOptions{})
		}
	})

	t.Run("Stop leaves nothing behind", func(t *testing.T) {
		info, _ := c.Pod(testNamespace, "broker-0")
		pids = append(pids, info.Containers[0].PID)
		stopStart := time.Now()
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
		t.Logf("Stop took %s", time.Since(stopStart).Round(time.Millisecond))
		if left := leftovers(prefix, c.Dir(), pids); len(left) > 0 {
			t.Fatalf("after Stop: %s", strings.Join(left, ", "))
		}
	})
}

// TestStartErrors checks that bad input fails with a message that says what to do.
func TestStartErrors(t *testing.T) {
	requireRoot(t)
	empty := t.TempDir()
	_, err := Start(context.Background(), Options{Dir: t.TempDir(), BinDir: empty})
	t.Logf("Start said: %v", err)
	if err == nil || !strings.Contains(err.Error(), "kube-apiserver") || !strings.Contains(err.Error(), "hack/kube-binaries.sh") {
		t.Errorf("Start with an empty BinDir: %v; want the missing binaries and hack/kube-binaries.sh named", err)
	}
}

// TestStartFailsOnATakenPort occupies the apiserver port on every address: Start must say
// which port is taken and clean up what it had started.
func TestStartFailsOnATakenPort(t *testing.T) {
	requireRoot(t)
	binDir := kubeBinDir(t)
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	before := leftovers("fmq", "", nil)
	_, err = Start(ctx, Options{Dir: dir, BinDir: binDir, APIServerPort: port})
	t.Logf("Start said: %v", err)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d", port)) || !strings.Contains(err.Error(), "taken") {
		t.Fatalf("Start with a taken apiserver port: %v; want an error naming port %d as taken", err, port)
	}
	if after := leftovers("fmq", dir, nil); len(after) > len(before) {
		t.Errorf("a failed Start left %v behind", after)
	}
}
