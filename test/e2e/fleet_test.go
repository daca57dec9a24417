package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/eclipse/paho.golang/paho"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/pires/go-proxyproto"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/broker/packet"
	"github.com/fleetmq/fleetmq/test/devfleet"
)

const ns = devfleet.SampleNamespace

// brokerPods returns the sample fleet's pods by name.
func brokerPods(ctx context.Context) map[string]corev1.Pod {
	GinkgoHelper()
	var pods corev1.PodList
	Expect(fleet.Client.List(ctx, &pods, client.InNamespace(ns),
		client.MatchingLabels{"app.kubernetes.io/instance": devfleet.SampleBroker})).To(Succeed())
	m := map[string]corev1.Pod{}
	for _, p := range pods.Items {
		m[p.Name] = p
	}
	return m
}

// restartCounts maps each broker pod's UID to its broker container's restart count, so a
// pod that was replaced shows up as well as a container that restarted.
func restartCounts(ctx context.Context) map[types.UID]int32 {
	GinkgoHelper()
	m := map[types.UID]int32{}
	for _, p := range brokerPods(ctx) {
		for _, cs := range p.Status.ContainerStatuses {
			m[p.UID] += cs.RestartCount
		}
	}
	return m
}

func podNames(n int) []string {
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("%s-%d", devfleet.SampleBroker, i))
	}
	return names
}

// waitFleetReady waits for the sample MQTTBroker to be Ready with every replica ready.
func waitFleetReady(ctx context.Context, timeout time.Duration) *v1.MQTTBroker {
	GinkgoHelper()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, err := fleet.WaitReady(wctx, ns, devfleet.SampleBroker, nil)
	Expect(err).NotTo(HaveOccurred())
	return b
}

// roundTrip checks, on one pod, that the sample users work as their ACLs say: the dashboard
// reads sensor-1's telemetry, and sensor-1 reads the commands the dashboard sends.
func roundTrip(ctx context.Context, pod string) {
	GinkgoHelper()
	addr := podAddr(ctx, pod, 1883)
	sensor := connect(ctx, addr, "sensor-1-"+pod, sensorCredentials(ctx), nil)
	dash := connect(ctx, addr, "dashboard-"+pod, dashboardCredentials(ctx), nil)
	Expect(dash.subscribe(ctx, "telemetry/sensor-1/#")).To(BeNumerically("<", 0x80))
	Expect(sensor.subscribe(ctx, "commands/sensor-1/#")).To(BeNumerically("<", 0x80))
	Expect(sensor.publish(ctx, "telemetry/sensor-1/temp", "21.5 from "+pod)).To(BeNumerically("<", 0x80))
	Expect(dash.receive("telemetry/sensor-1/temp", 5*time.Second)).To(Equal("21.5 from " + pod))
	Expect(dash.publish(ctx, "commands/sensor-1/led", "on "+pod)).To(BeNumerically("<", 0x80))
	Expect(sensor.receive("commands/sensor-1/led", 5*time.Second)).To(Equal("on " + pod))
}

var _ = Describe("the sample fleet", Ordered, ContinueOnFailure, func() {
	It("applies: 3 pods Ready, MQTTBroker Ready, status endpoints set, each pod serves the sample users", func(ctx SpecContext) {
		b := waitFleetReady(ctx, time.Minute)
		Expect(b.Status.ReadyReplicas).To(Equal(int32(3)))
		Expect(b.Status.Replicas).To(Equal(int32(3)))
		pods := brokerPods(ctx)
		Expect(pods).To(HaveLen(3))
		for _, name := range podNames(3) {
			Expect(pods).To(HaveKey(name))
			p := pods[name]
			Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
			ready := false
			for _, c := range p.Status.Conditions {
				ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
			}
			Expect(ready).To(BeTrue(), "pod %s is not Ready", name)
			// The node agent applies the pod's security context: the broker reads its
			// 0440 Secrets as the non-root user through fsGroup, as in a cluster.
			info, ok := fleet.Cluster.Pod(ns, name)
			Expect(ok).To(BeTrue())
			Expect(info.Containers).NotTo(BeEmpty())
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", info.Containers[0].PID))
			Expect(err).NotTo(HaveOccurred())
			Expect(string(status)).To(MatchRegexp(`(?m)^Uid:\s+65532\s+65532\s+65532\s+65532$`), "the broker of %s does not run as the non-root user 65532", name)
		}
		urls := map[string]string{}
		for _, e := range b.Status.Endpoints {
			urls[e.Name] = e.URL
		}
		Expect(urls).To(Equal(map[string]string{
			"mqtt":  "mqtt://fleet.default.svc:1883",
			"mqtts": "mqtts://fleet.default.svc:8883",
			"wss":   "wss://fleet.default.svc:8084/mqtt",
		}))
		// The sample users are in the broker's files once they are Ready; each pod then
		// loads those files when its Secret volume is updated, as a kubelet does it, which
		// may be a moment after the MQTTBroker turned Ready.
		for _, name := range []string{"sensor-1", "dashboard"} {
			Eventually(func(g Gomega) {
				u := &v1.MQTTUser{}
				g.Expect(fleet.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u)).To(Succeed())
				g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, v1.ConditionReady)).To(BeTrue(), "MQTTUser %s: %v", name, u.Status.Conditions)
			}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
		}
		usersReady := time.Now()
		for _, name := range podNames(3) {
			addr := podAddr(ctx, name, 1883)
			for user, creds := range map[string]credentials{"sensor-1": sensorCredentials(ctx), "dashboard": dashboardCredentials(ctx)} {
				Eventually(func(g Gomega) {
					c, err := dial(ctx, addr, "login-"+user+"-"+name, creds, nil)
					g.Expect(err).NotTo(HaveOccurred())
					c.Disconnect(&normalDisconnect)
				}).WithContext(ctx).WithTimeout(30*time.Second).WithPolling(250*time.Millisecond).
					Should(Succeed(), "%s cannot log in to %s within 30 s of the MQTTUsers turning Ready", user, name)
			}
		}
		AddReportEntry("sample users accepted by every pod after they were Ready", time.Since(usersReady).Round(10*time.Millisecond).String())
		for _, name := range podNames(3) {
			By("publishing and subscribing as sensor-1 and dashboard on " + name)
			roundTrip(ctx, name)
		}
	}, SpecTimeout(2*time.Minute))

	PIt("routes messages between a client on pod 0 and a client on pod 2 (pending: needs broker peering, its own issue)")

	It("enforces an ACL edited with kubectl apply on every pod within 10 s, without restarting a pod or dropping a client", func(ctx SpecContext) {
		pods := podNames(3)
		sensor := sensorCredentials(ctx)
		before := restartCounts(ctx)
		// Clients connected before the edit must stay connected through it.
		var old []*mqttClient
		for _, p := range pods {
			c := connect(ctx, podAddr(ctx, p, 1883), "before-"+p, sensor, nil)
			// Before the edit sensor-1 may write its telemetry but not read it.
			Expect(c.publish(ctx, "telemetry/sensor-1/temp", "before")).To(BeNumerically("<", 0x80))
			Expect(c.subscribe(ctx, "telemetry/sensor-1/#")).To(BeNumerically(">=", 0x80))
			old = append(old, c)
		}

		edited := `apiVersion: mqtt.fleetmq.io/v1alpha1
kind: MQTTUser
metadata:
  name: sensor-1
  namespace: default
spec:
  brokerRef:
    name: fleet
  authentication:
    passwordSecretRef:
      name: sensor-1-password
      key: password
  acls:
    - topic: telemetry/sensor-1/#
      access: read
    - topic: commands/sensor-1/#
      access: read
`
		file := filepath.Join(GinkgoT().TempDir(), "sensor-1.yaml")
		Expect(os.WriteFile(file, []byte(edited), 0o644)).To(Succeed())
		applied := time.Now()
		kubectl(ctx, "apply", "-f", file)
		DeferCleanup(func(ctx SpecContext) {
			// Put the sample ACL back and wait until every pod enforces it again, so the
			// specs after this one see the fleet as config/samples defines it.
			kubectl(ctx, "apply", "-n", ns, "-f", filepath.Join(fleet.RepoRoot, "config", "samples", "mqtt_v1alpha1_mqttuser.yaml"))
			for _, p := range pods {
				addr := podAddr(ctx, p, 1883)
				Eventually(func(g Gomega) {
					c, err := dial(ctx, addr, "restore-"+p, sensor, nil)
					g.Expect(err).NotTo(HaveOccurred())
					defer c.Disconnect(&normalDisconnect)
					g.Expect(c.publish(ctx, "telemetry/sensor-1/temp", "restored")).To(BeNumerically("<", 0x80))
				}).WithContext(ctx).WithTimeout(60 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
			}
		}, NodeTimeout(2*time.Minute))

		deadline := applied.Add(10 * time.Second)
		for _, p := range pods {
			addr := podAddr(ctx, p, 1883)
			Eventually(func(g Gomega) {
				c, err := dial(ctx, addr, "after-"+p, sensor, nil)
				g.Expect(err).NotTo(HaveOccurred())
				defer c.Disconnect(&normalDisconnect)
				code, err := c.publish(ctx, "telemetry/sensor-1/temp", "after")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(code).To(BeNumerically(">=", 0x80), "publish still allowed on %s", p)
				code, err = c.subscribe(ctx, "telemetry/sensor-1/#")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(code).To(BeNumerically("<", 0x80), "subscribe still denied on %s", p)
			}).WithContext(ctx).WithTimeout(max(time.Until(deadline), time.Millisecond)).WithPolling(250*time.Millisecond).
				Should(Succeed(), "%s does not enforce the edited ACL within 10 s of kubectl apply", p)
			AddReportEntry(p+" enforces the edited ACL after", time.Since(applied).Round(10*time.Millisecond).String())
		}
		AddReportEntry("ACL edit enforced on every pod after", time.Since(applied).Round(10*time.Millisecond).String())
		for i, c := range old {
			Expect(c.connected()).To(BeTrue(), "the client connected to %s before the edit was disconnected", pods[i])
		}
		Expect(restartCounts(ctx)).To(Equal(before), "a broker pod restarted or was replaced")
	}, SpecTimeout(time.Minute))

	It("serves mqtts with a certificate the <name>-ca Secret's CA verifies", func(ctx SpecContext) {
		pool := caPool(ctx, devfleet.SampleBroker)
		for _, p := range podNames(3) {
			// The pods are dialled by IP (no DNS here); the name checked is the Service's, which
			// the serving certificate must hold for in-cluster clients.
			cfg := &tls.Config{RootCAs: pool, ServerName: "fleet.default.svc", MinVersion: tls.VersionTLS12}
			c := connect(ctx, podAddr(ctx, p, 8883), "tls-"+p, sensorCredentials(ctx), cfg)
			Expect(c.publish(ctx, "telemetry/sensor-1/tls", "over tls")).To(BeNumerically("<", 0x80))
			Expect(c.subscribe(ctx, "commands/sensor-1/#")).To(BeNumerically("<", 0x80))
		}
	}, SpecTimeout(time.Minute))

	It("serves a renewed certificate to new connections without restarting a pod", func(ctx SpecContext) {
		pool := caPool(ctx, devfleet.SampleBroker)
		cfg := &tls.Config{RootCAs: pool, ServerName: "fleet.default.svc", MinVersion: tls.VersionTLS12}
		serial := func(g Gomega, pod string) string {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", podAddr(ctx, pod, 8883), cfg)
			g.Expect(err).NotTo(HaveOccurred())
			defer conn.Close()
			return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
		}
		pods := podNames(3)
		before := restartCounts(ctx)
		old := map[string]string{}
		for _, p := range pods {
			old[p] = serial(Default, p)
		}
		// Emptying the private key of the serving Secret is one of the operator's renewal
		// triggers ("the private key is missing"): it issues a new certificate and key. (A
		// kubernetes.io/tls Secret must keep the tls.key entry, so it is emptied, not removed.)
		forced := time.Now()
		kubectl(ctx, "patch", "-n", ns, "secret", devfleet.SampleBroker+"-tls", "--type=json",
			`-p=[{"op":"replace","path":"/data/tls.key","value":""}]`)
		for _, p := range pods {
			Eventually(func(g Gomega) {
				g.Expect(serial(g, p)).NotTo(Equal(old[p]))
			}).WithContext(ctx).WithTimeout(60*time.Second).WithPolling(500*time.Millisecond).
				Should(Succeed(), "%s still serves the certificate issued before the renewal", p)
		}
		AddReportEntry("renewed certificate served by every pod after", time.Since(forced).Round(10*time.Millisecond).String())
		Expect(restartCounts(ctx)).To(Equal(before), "a broker pod restarted or was replaced")
		c := connect(ctx, podAddr(ctx, pods[0], 8883), "tls-renewed", sensorCredentials(ctx), cfg)
		Expect(c.subscribe(ctx, "commands/sensor-1/#")).To(BeNumerically("<", 0x80))
	}, SpecTimeout(2*time.Minute))

	It("recovers from kill -9 of a broker process: the node agent restarts it and the fleet is Ready again", func(ctx SpecContext) {
		victim := devfleet.SampleBroker + "-1"
		before := brokerPods(ctx)[victim]
		Expect(before.Status.ContainerStatuses).NotTo(BeEmpty())
		killed := time.Now()
		Expect(fleet.Cluster.Signal(ns, victim, "broker", syscall.SIGKILL)).To(Succeed())
		Eventually(func(g Gomega) {
			p := brokerPods(ctx)[victim]
			g.Expect(p.UID).To(Equal(before.UID), "the pod was replaced, not its container restarted")
			g.Expect(p.Status.ContainerStatuses).NotTo(BeEmpty())
			cs := p.Status.ContainerStatuses[0]
			g.Expect(cs.RestartCount).To(BeNumerically(">", before.Status.ContainerStatuses[0].RestartCount))
			// Ready again only once the restarted process passed its readiness probe.
			g.Expect(cs.State.Running).NotTo(BeNil())
			g.Expect(cs.Ready).To(BeTrue())
		}).WithContext(ctx).WithTimeout(60 * time.Second).Should(Succeed())
		waitFleetReady(ctx, time.Minute)
		AddReportEntry("fleet Ready again after kill -9", time.Since(killed).Round(10*time.Millisecond).String())
		roundTrip(ctx, victim)
	}, SpecTimeout(2*time.Minute))

	It("scales with kubectl scale to 5 and then to 2; pods and status follow and the remaining pods serve clients", func(ctx SpecContext) {
		// A client on a pod that stays must not notice the scaling.
		steady := connect(ctx, podAddr(ctx, devfleet.SampleBroker+"-0", 1883), "steady", sensorCredentials(ctx), nil)
		begin := time.Now()
		kubectl(ctx, "scale", "-n", ns, "mqttbroker/"+devfleet.SampleBroker, "--replicas=5")
		b := waitFleetReady(ctx, 90*time.Second)
		AddReportEntry("scale 3 -> 5 Ready after", time.Since(begin).Round(10*time.Millisecond).String())
		Expect(b.Status.Replicas).To(Equal(int32(5)))
		Expect(brokerPods(ctx)).To(HaveLen(5))
		roundTrip(ctx, devfleet.SampleBroker+"-4")

		begin = time.Now()
		kubectl(ctx, "scale", "-n", ns, "mqttbroker/"+devfleet.SampleBroker, "--replicas=2")
		Eventually(func(g Gomega) {
			pods := brokerPods(ctx)
			g.Expect(pods).To(HaveLen(2))
			g.Expect(pods).To(HaveKey(devfleet.SampleBroker + "-0"))
			g.Expect(pods).To(HaveKey(devfleet.SampleBroker + "-1"))
		}).WithContext(ctx).WithTimeout(90 * time.Second).Should(Succeed())
		b = waitFleetReady(ctx, 90*time.Second)
		AddReportEntry("scale 5 -> 2 Ready after", time.Since(begin).Round(10*time.Millisecond).String())
		Expect(b.Status.Replicas).To(Equal(int32(2)))
		Expect(b.Status.ReadyReplicas).To(Equal(int32(2)))
		for _, p := range podNames(2) {
			roundTrip(ctx, p)
		}
		Expect(steady.connected()).To(BeTrue(), "the client on %s-0 was disconnected by the scaling", devfleet.SampleBroker)
		Expect(steady.publish(ctx, "telemetry/sensor-1/steady", "still here")).To(BeNumerically("<", 0x80))
	}, SpecTimeout(4*time.Minute))

	It("rejects an invalid MQTTBroker with the CEL validation message", func(ctx SpecContext) {
		bad := &v1.MQTTBroker{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clash"},
			Spec: v1.MQTTBrokerSpec{Listeners: []v1.ListenerSpec{
				{Name: "a", Protocol: "mqtt", Port: 1883},
				{Name: "b", Protocol: "mqtt", Port: 1883},
			}},
		}
		err := fleet.Client.Create(ctx, bad)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("listener ports must be unique: give each listener its own port"))
	}, SpecTimeout(30*time.Second))

	It("serves a proxyProtocol listener: clients behind a PROXY header connect, clients without one are turned away", func(ctx SpecContext) {
		const name = "proxied"
		anonymous, replicas := true, int32(1)
		b := &v1.MQTTBroker{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: v1.MQTTBrokerSpec{
				Replicas:       &replicas,
				Listeners:      []v1.ListenerSpec{{Name: "lb", Protocol: "mqtt", Port: 1883, ProxyProtocol: true}},
				Authentication: v1.AuthenticationSpec{AllowAnonymous: &anonymous},
				Authorization:  v1.AuthorizationSpec{Rules: []v1.ACLRule{{Topic: "lb/%c/#", Access: v1.ACLReadWrite}}},
			},
		}
		Expect(fleet.Client.Create(ctx, b)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { Expect(client.IgnoreNotFound(fleet.Client.Delete(ctx, b))).To(Succeed()) })
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		_, err := fleet.WaitReady(wctx, ns, name, nil)
		Expect(err).NotTo(HaveOccurred())
		addr := podAddr(ctx, name+"-0", 1883)

		By("connecting without a PROXY header")
		_, err = dial(ctx, addr, "headerless", credentials{}, nil)
		Expect(err).To(HaveOccurred(), "a client without a PROXY header was served")

		By("connecting behind a PROXY v2 header")
		d := &net.Dialer{Timeout: 5 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", addr)
		Expect(err).NotTo(HaveOccurred())
		device := &net.TCPAddr{IP: net.ParseIP("127.0.0.77"), Port: 40125}
		_, err = proxyproto.HeaderProxyFromAddrs(2, device, conn.RemoteAddr()).WriteTo(conn)
		Expect(err).NotTo(HaveOccurred())
		c, err := handshake(ctx, conn, addr, "behind-the-balancer", credentials{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = c.Disconnect(&normalDisconnect) })
		Expect(c.subscribe(ctx, "lb/behind-the-balancer/#")).To(BeNumerically("<", 0x80))
		Expect(c.publish(ctx, "lb/behind-the-balancer/hello", "through the balancer")).To(BeNumerically("<", 0x80))
		Expect(c.receive("lb/behind-the-balancer/hello", 5*time.Second)).To(Equal("through the balancer"))

		By("logging a misbehaving client under the address in its header")
		conn, err = d.DialContext(ctx, "tcp", addr)
		Expect(err).NotTo(HaveOccurred())
		defer conn.Close()
		device = &net.TCPAddr{IP: net.ParseIP("127.0.0.78"), Port: 40126}
		_, err = proxyproto.HeaderProxyFromAddrs(2, device, conn.RemoteAddr()).WriteTo(conn)
		Expect(err).NotTo(HaveOccurred())
		connect, err := (&packet.Connect{Version: packet.V5, ClientID: "garbled", CleanStart: true, KeepAlive: 30}).Encode(nil, packet.V5)
		Expect(err).NotTo(HaveOccurred())
		_, err = conn.Write(append(connect, 0x00, 0x00)) // packet type 0 is reserved: malformed
		Expect(err).NotTo(HaveOccurred())
		Expect(conn.SetReadDeadline(time.Now().Add(5 * time.Second))).To(Succeed())
		_, err = io.Copy(io.Discard, conn) // CONNACK, DISCONNECT, then the close
		Expect(errors.Is(err, os.ErrDeadlineExceeded)).To(BeFalse(), "the broker did not close the connection")
		pod, ok := fleet.Cluster.Pod(ns, name+"-0")
		Expect(ok).To(BeTrue())
		Expect(pod.Containers).NotTo(BeEmpty())
		Eventually(func() (string, error) {
			data, err := os.ReadFile(pod.Containers[0].LogPath)
			return string(data), err
		}).WithContext(ctx).WithTimeout(5 * time.Second).WithPolling(100 * time.Millisecond).
			Should(MatchRegexp(`Closing connection after invalid packet.*127\.0\.0\.78:40126`))
	}, SpecTimeout(2*time.Minute))

	It("garbage-collects every owned object when the MQTTBroker is deleted", func(ctx SpecContext) {
		var b v1.MQTTBroker
		Expect(fleet.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: devfleet.SampleBroker}, &b)).To(Succeed())
		owned := ownedBy(ctx, b.UID)
		Expect(owned).To(ContainElement(HavePrefix("StatefulSet/")))
		GinkgoWriter.Printf("objects owned by %s: %v\n", b.Name, owned)
		Expect(fleet.Client.Delete(ctx, &b)).To(Succeed())
		Eventually(func() []string { return ownedBy(ctx, b.UID) }).WithContext(ctx).
			WithTimeout(90 * time.Second).WithPolling(time.Second).Should(BeEmpty())
		Eventually(func() map[string]corev1.Pod { return brokerPods(ctx) }).WithContext(ctx).
			WithTimeout(60 * time.Second).Should(BeEmpty())
	}, SpecTimeout(3*time.Minute))
})

// ownedBy lists, as Kind/name, the objects in the sample namespace whose owner references
// name uid.
func ownedBy(ctx context.Context, uid types.UID) []string {
	GinkgoHelper()
	lists := []client.ObjectList{
		&corev1.ServiceList{}, &corev1.ConfigMapList{}, &corev1.SecretList{}, &corev1.ServiceAccountList{},
		&corev1.PodList{}, &appsv1.StatefulSetList{}, &policyv1.PodDisruptionBudgetList{}, &rbacv1.RoleList{}, &rbacv1.RoleBindingList{},
	}
	var out []string
	for _, l := range lists {
		Expect(fleet.Client.List(ctx, l, client.InNamespace(ns))).To(Succeed())
		items, err := meta.ExtractList(l)
		Expect(err).NotTo(HaveOccurred())
		for _, it := range items {
			o := it.(client.Object)
			for _, ref := range o.GetOwnerReferences() {
				if ref.UID == uid {
					kind := strings.TrimSuffix(fmt.Sprintf("%T", l), "List")
					kind = kind[strings.LastIndex(kind, ".")+1:]
					out = append(out, kind+"/"+o.GetName())
				}
			}
		}
	}
	return out
}

// normalDisconnect is an MQTT DISCONNECT with reason 0 (normal disconnection).
var normalDisconnect = paho.Disconnect{ReasonCode: 0}
