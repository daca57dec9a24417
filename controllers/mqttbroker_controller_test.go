package controllers

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/broker/auth"
	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/controllers/builder"
)

// testBrokerImage is the operator default the specs run with; it shows in the StatefulSet.
const testBrokerImage = "registry.example/fleetmq:test"

// settle bounds how long a spec waits for the reconcilers to act.
const settle = 30 * time.Second

// testBrokerReconciler is the reconciler the suite's manager runs, so that a spec can also
// call Reconcile directly (an idle resync on demand).
var testBrokerReconciler *MQTTBrokerReconciler

func init() {
	reconcilerSetups = append(reconcilerSetups, func(mgr ctrl.Manager) error {
		testBrokerReconciler = &MQTTBrokerReconciler{
			Client:      mgr.GetClient(),
			Scheme:      mgr.GetScheme(),
			Recorder:    &recordedEvents{next: mgr.GetEventRecorder("fleetmq-operator")},
			BrokerImage: testBrokerImage,
			// As fleetmq-operator's --max-concurrent-reconciles default.
			MaxConcurrentReconciles: 4,
		}
		return testBrokerReconciler.SetupWithManager(mgr)
	})
}

// recordedEvents is an events.EventRecorder that records what the reconcilers emit and
// forwards it, so a spec can tell its reconciles' Events from the event machinery's own
// writes: the events.k8s.io broadcaster sends an Event asynchronously, and retries it or
// patches its series up to seconds later, which shows up in managerWrites even though no
// reconcile did anything then.
type recordedEvents struct {
	next events.EventRecorder
}

// emittedNotes are the Events every recordedEvents has seen, as "reason: note".
var (
	emittedMu    sync.Mutex
	emittedNotes []string
)

func (r *recordedEvents) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	emittedMu.Lock()
	emittedNotes = append(emittedNotes, reason+": "+fmt.Sprintf(note, args...))
	emittedMu.Unlock()
	if r.next != nil {
		r.next.Eventf(regarding, related, eventtype, reason, action, note, args...)
	}
}

// emittedMark returns a position to pass to emittedSince.
func emittedMark() int {
	emittedMu.Lock()
	defer emittedMu.Unlock()
	return len(emittedNotes)
}

// emittedSince returns the Events emitted after mark.
func emittedSince(mark int) []string {
	emittedMu.Lock()
	defer emittedMu.Unlock()
	return slices.Clone(emittedNotes[mark:])
}

// objectWrites returns the manager's writes after mark that contain pathPart, leaving out
// Event writes (see recordedEvents).
func objectWrites(mark int, pathPart string) []apiWrite {
	var out []apiWrite
	for _, w := range managerWrites.since(mark, pathPart) {
		if !strings.Contains(w.Path, "/events") {
			out = append(out, w)
		}
	}
	return out
}

// eventually polls f until it passes or settle runs out.
func eventually(f func(g Gomega)) {
	GinkgoHelper()
	Eventually(f).WithTimeout(settle).WithPolling(100 * time.Millisecond).Should(Succeed())
}

// fetch reads obj from the API server (not a cache) by namespace and name.
func fetch[T client.Object](ns, name string, obj T) T {
	GinkgoHelper()
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)).To(Succeed(), "get %T %s/%s", obj, ns, name)
	return obj
}

// tryFetch is fetch inside an Eventually.
func tryFetch[T client.Object](g Gomega, ns, name string, obj T) T {
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)).To(Succeed(), "get %T %s/%s", obj, ns, name)
	return obj
}

// createPasswordSecret creates a Secret holding password under key "password".
func createPasswordSecret(ns, name, password string) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string][]byte{"password": []byte(password)},
	})).To(Succeed())
}

// waitSynced waits until the broker's status describes its current generation with the
// ACL and certificate in place, and returns it.
func waitSynced(ns, name string) *v1.MQTTBroker {
	GinkgoHelper()
	b := &v1.MQTTBroker{}
	eventually(func(g Gomega) {
		tryFetch(g, ns, name, b)
		g.Expect(b.Status.ObservedGeneration).To(Equal(b.Generation))
		g.Expect(meta.IsStatusConditionTrue(b.Status.Conditions, v1.ConditionACLSynced)).To(BeTrue(), "ACLSynced: %v", b.Status.Conditions)
		if tlsEnabled(b) {
			g.Expect(meta.IsStatusConditionTrue(b.Status.Conditions, v1.ConditionTLSReady)).To(BeTrue(), "TLSReady: %v", b.Status.Conditions)
		}
	})
	return b
}

// waitQuiet waits until the manager has written nothing for a while: the reconcilers have
// caught up with every event, including their own writes.
func waitQuiet() {
	GinkgoHelper()
	const quiet = 2 * time.Second
	deadline := time.Now().Add(settle)
	for {
		mark, events := managerWrites.mark(), emittedMark()
		time.Sleep(quiet)
		if len(objectWrites(mark, "")) == 0 && emittedMark() == events {
			return
		}
		Expect(time.Now().Before(deadline)).To(BeTrue(), "the manager kept writing: %v %v", objectWrites(mark, ""), emittedSince(events))
	}
}

// expectOwnedBy asserts that b is obj's controller, so deleting b garbage-collects obj.
func expectOwnedBy(obj client.Object, b *v1.MQTTBroker) {
	GinkgoHelper()
	ref := metav1.GetControllerOf(obj)
	Expect(ref).NotTo(BeNil(), "%T %s has no controller", obj, obj.GetName())
	Expect(ref.UID).To(Equal(b.UID))
	Expect(ref.Kind).To(Equal("MQTTBroker"))
	Expect(ref.BlockOwnerDeletion).To(HaveValue(BeTrue()))
}

// parseCert decodes the first certificate of a PEM block.
func parseCert(certPEM []byte) *x509.Certificate {
	GinkgoHelper()
	block, _ := pem.Decode(certPEM)
	Expect(block).NotTo(BeNil(), "no PEM block")
	c, err := x509.ParseCertificate(block.Bytes)
	Expect(err).NotTo(HaveOccurred())
	return c
}

// warningEvents returns the notes of the Warning Events about the named broker with reason.
func warningEvents(g Gomega, ns, broker, reason string) []string {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "MQTTBroker" && e.Regarding.Name == broker && e.Type == corev1.EventTypeWarning && e.Reason == reason {
			notes = append(notes, e.Note)
		}
	}
	return notes
}

// patchUser applies change to the named MQTTUser with a merge patch.
func patchUser(ns, name string, change func(*v1.MQTTUser)) {
	GinkgoHelper()
	u := fetch(ns, name, &v1.MQTTUser{})
	before := u.DeepCopy()
	change(u)
	Expect(k8sClient.Patch(ctx, u, client.MergeFrom(before))).To(Succeed())
}

// reconcileBroker runs one reconcile of the named broker, as a resync would.
func reconcileBroker(ns, name string) ctrl.Result {
	GinkgoHelper()
	res, err := testBrokerReconciler.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: name}})
	Expect(err).NotTo(HaveOccurred())
	return res
}

var _ = Describe("MQTTBroker controller", func() {
	var ns string
	BeforeEach(func() { ns = newTestNamespace() })

	// fleet is the broker most specs use: two pods, three listeners, a rule and two users.
	createFleet := func(changes ...func(*v1.MQTTBroker)) *v1.MQTTBroker {
		GinkgoHelper()
		createPasswordSecret(ns, "alice-password", "alice-secret-1")
		Expect(k8sClient.Create(ctx, newUser(ns, "alice", func(u *v1.MQTTUser) {
			u.Spec.Authentication.PasswordSecretRef = &v1.SecretKeyReference{Name: "alice-password"}
			u.Spec.ACLs = []v1.ACLRule{{Topic: "sensors/alice/#", Access: v1.ACLReadWrite}}
		}))).To(Succeed())
		Expect(k8sClient.Create(ctx, newUser(ns, "bob", func(u *v1.MQTTUser) {
			u.Spec.ACLs = []v1.ACLRule{{Topic: "dashboards/#", Access: v1.ACLRead}}
		}))).To(Succeed())
		b := newBroker(ns, "fleet", func(b *v1.MQTTBroker) {
			b.Spec.Replicas = ptr.To(int32(2))
			b.Spec.Listeners = []v1.ListenerSpec{
				{Name: "mqtt", Protocol: v1.ProtocolMQTT, Port: 1883},
				{Name: "mqtts", Protocol: v1.ProtocolMQTTS, Port: 8883},
				{Name: "wss", Protocol: v1.ProtocolWSS, Port: 8084},
			}
			b.Spec.Authorization.Rules = []v1.ACLRule{{Topic: "clients/%c/#", Access: v1.ACLReadWrite}}
		})
		for _, change := range changes {
			change(b)
		}
		Expect(k8sClient.Create(ctx, b)).To(Succeed())
		return waitSynced(ns, "fleet")
	}

	aclOf := func(g Gomega) string {
		return tryFetch(g, ns, "fleet-acl", &corev1.ConfigMap{}).Data[builder.ACLKey]
	}

	It("creates every owned object with the right content", func() {
		b := createFleet()

		cm := fetch(ns, "fleet-config", &corev1.ConfigMap{})
		expectOwnedBy(cm, b)
		cfg, err := config.Parse("broker.yaml", []byte(cm.Data[builder.ConfigKey]))
		Expect(err).NotTo(HaveOccurred(), "the broker must accept the rendered config")
		var addresses []string
		for _, l := range cfg.Listeners {
			addresses = append(addresses, l.Address)
		}
		Expect(addresses).To(ConsistOf("0.0.0.0:1883", "0.0.0.0:8883", "0.0.0.0:8084"))
		Expect(cfg.ACLFile).To(HavePrefix(builder.ACLDir + "/"))
		Expect(cfg.PasswordFile).To(HavePrefix(builder.UsersDir + "/"))
		Expect(cfg.AllowAnonymous).To(BeFalse())

		acl := fetch(ns, "fleet-acl", &corev1.ConfigMap{})
		expectOwnedBy(acl, b)
		Expect(acl.Data[builder.ACLKey]).To(ContainSubstring("pattern readwrite clients/%c/#"))
		Expect(acl.Data[builder.ACLKey]).To(ContainSubstring("user alice\ntopic readwrite sensors/alice/#\n"))
		Expect(acl.Data[builder.ACLKey]).To(ContainSubstring("user bob\ntopic read dashboards/#\n"))
		_, err = auth.ParseACL("acl", []byte(acl.Data[builder.ACLKey]))
		Expect(err).NotTo(HaveOccurred(), "the broker must accept the rendered ACL")
		Expect(b.Status.ACLRevision).To(Equal(builder.Revision([]byte(acl.Data[builder.ACLKey]))))

		// The password file holds hashes that verify both passwords and neither password.
		var bobPassword []byte
		eventually(func(g Gomega) {
			bobPassword = tryFetch(g, ns, "bob-mqtt-credentials", &corev1.Secret{}).Data["password"]
			g.Expect(bobPassword).NotTo(BeEmpty())
			users := tryFetch(g, ns, "fleet-users", &corev1.Secret{})
			pf, err := auth.ParsePasswordFile("passwd", users.Data[builder.PasswdKey])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pf.Users()).To(Equal([]string{"alice", "bob"}))
			g.Expect(pf.Verify("alice", []byte("alice-secret-1"))).To(BeTrue())
			g.Expect(pf.Verify("bob", bobPassword)).To(BeTrue())
		})
		users := fetch(ns, "fleet-users", &corev1.Secret{})
		expectOwnedBy(users, b)
		Expect(string(users.Data[builder.PasswdKey])).NotTo(ContainSubstring("alice-secret-1"))
		Expect(string(users.Data[builder.PasswdKey])).NotTo(ContainSubstring(string(bobPassword)))

		ca := fetch(ns, "fleet-ca", &corev1.Secret{})
		expectOwnedBy(ca, b)
		caCert := parseCert(ca.Data[corev1.TLSCertKey])
		Expect(caCert.IsCA).To(BeTrue())
		tls := fetch(ns, "fleet-tls", &corev1.Secret{})
		expectOwnedBy(tls, b)
		Expect(tls.Type).To(Equal(corev1.SecretTypeTLS))
		Expect(tls.Data[corev1.TLSPrivateKeyKey]).NotTo(BeEmpty())
		Expect(tls.Data["ca.crt"]).To(Equal(ca.Data[corev1.TLSCertKey]))
		serving := parseCert(tls.Data[corev1.TLSCertKey])
		Expect(serving.CheckSignatureFrom(caCert)).To(Succeed())
		Expect(serving.DNSNames).To(ContainElements(
			"fleet."+ns+".svc", "fleet."+ns+".svc.cluster.local",
			"fleet-peers."+ns+".svc",
			"fleet-0.fleet-peers."+ns+".svc.cluster.local", "fleet-1.fleet-peers."+ns+".svc.cluster.local"))
		Expect(b.Status.TLS).NotTo(BeNil())
		Expect(b.Status.TLS.NotAfter.Time).To(BeTemporally("==", serving.NotAfter))

		svc := fetch(ns, "fleet", &corev1.Service{})
		expectOwnedBy(svc, b)
		Expect(svc.Spec.Type).To(Equal(corev1.ServiceTypeClusterIP))
		Expect(svc.Spec.Selector).To(Equal(builder.SelectorLabels(b)))
		var ports []int32
		for _, p := range svc.Spec.Ports {
			ports = append(ports, p.Port)
		}
		Expect(ports).To(ConsistOf(int32(1883), int32(8883), int32(8084)))
		peers := fetch(ns, "fleet-peers", &corev1.Service{})
		expectOwnedBy(peers, b)
		Expect(peers.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
		Expect(peers.Spec.PublishNotReadyAddresses).To(BeTrue())

		sts := fetch(ns, "fleet", &appsv1.StatefulSet{})
		expectOwnedBy(sts, b)
		Expect(sts.Spec.Replicas).To(HaveValue(Equal(int32(2))))
		Expect(sts.Spec.ServiceName).To(Equal("fleet-peers"))
		Expect(sts.Spec.Template.Annotations).To(HaveKeyWithValue(builder.RestartHashAnnotation, builder.RestartHash(b)))
		pod := sts.Spec.Template.Spec
		Expect(pod.ServiceAccountName).To(Equal("fleet-broker"))
		Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
		Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
		Expect(pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution).NotTo(BeEmpty())
		Expect(pod.Containers).To(HaveLen(1))
		c := pod.Containers[0]
		Expect(c.Image).To(Equal(testBrokerImage))
		Expect(c.SecurityContext.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
		Expect(c.SecurityContext.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
		Expect(c.SecurityContext.Capabilities.Drop).To(ContainElement(corev1.Capability("ALL")))
		Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
		Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
		mounted := map[string]string{}
		for _, v := range pod.Volumes {
			switch {
			case v.ConfigMap != nil:
				mounted[v.ConfigMap.Name] = v.Name
			case v.Secret != nil:
				mounted[v.Secret.SecretName] = v.Name
			}
		}
		Expect(mounted).To(HaveKey("fleet-config"))
		Expect(mounted).To(HaveKey("fleet-acl"))
		Expect(mounted).To(HaveKey("fleet-users"))
		Expect(mounted).To(HaveKey("fleet-tls"))

		pdb := fetch(ns, "fleet", &policyv1.PodDisruptionBudget{})
		expectOwnedBy(pdb, b)
		Expect(pdb.Spec.Selector.MatchLabels).To(Equal(builder.SelectorLabels(b)))
		sa := fetch(ns, "fleet-broker", &corev1.ServiceAccount{})
		expectOwnedBy(sa, b)
		role := fetch(ns, "fleet-broker", &rbacv1.Role{})
		expectOwnedBy(role, b)
		Expect(role.Rules).To(HaveLen(1))
		Expect(role.Rules[0].Resources).To(Equal([]string{"endpointslices"}))
		Expect(role.Rules[0].Verbs).NotTo(ContainElements("create", "update", "delete", "patch"))
		rb := fetch(ns, "fleet-broker", &rbacv1.RoleBinding{})
		expectOwnedBy(rb, b)

		Expect(b.Status.Selector).To(Equal("app.kubernetes.io/instance=fleet,app.kubernetes.io/name=fleetmq-broker"))
		Expect(b.Status.Endpoints).To(ConsistOf(
			v1.ListenerEndpoint{Name: "mqtt", Protocol: v1.ProtocolMQTT, URL: "mqtt://fleet." + ns + ".svc:1883"},
			v1.ListenerEndpoint{Name: "mqtts", Protocol: v1.ProtocolMQTTS, URL: "mqtts://fleet." + ns + ".svc:8883"},
			v1.ListenerEndpoint{Name: "wss", Protocol: v1.ProtocolWSS, URL: "wss://fleet." + ns + ".svc:8084/mqtt"},
		))
		// No kube-controller-manager runs here, so no pod is ever ready.
		ready := meta.FindStatusCondition(b.Status.Conditions, v1.ConditionReady)
		Expect(ready).NotTo(BeNil())
		Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		Expect(meta.IsStatusConditionTrue(b.Status.Conditions, v1.ConditionProgressing)).To(BeTrue())
		Expect(meta.IsStatusConditionFalse(b.Status.Conditions, v1.ConditionDegraded)).To(BeTrue())
	})

	It("makes Ready follow the StatefulSet, as kstatus reads it", func() {
		createFleet()
		setStatus := func(ready int32) {
			GinkgoHelper()
			sts := fetch(ns, "fleet", &appsv1.StatefulSet{})
			sts.Status = appsv1.StatefulSetStatus{
				ObservedGeneration: sts.Generation, Replicas: 2, ReadyReplicas: ready, AvailableReplicas: ready,
				UpdatedReplicas: 2, CurrentReplicas: 2, CurrentRevision: "fleet-1", UpdateRevision: "fleet-1",
			}
			Expect(k8sClient.Status().Update(ctx, sts)).To(Succeed())
		}

		setStatus(2)
		eventually(func(g Gomega) {
			b := tryFetch(g, ns, "fleet", &v1.MQTTBroker{})
			g.Expect(b.Status.ReadyReplicas).To(Equal(int32(2)))
			g.Expect(b.Status.Replicas).To(Equal(int32(2)))
			g.Expect(meta.IsStatusConditionTrue(b.Status.Conditions, v1.ConditionReady)).To(BeTrue(), "%v", b.Status.Conditions)
			g.Expect(meta.IsStatusConditionTrue(b.Status.Conditions, v1.ConditionAvailable)).To(BeTrue())
			g.Expect(meta.IsStatusConditionFalse(b.Status.Conditions, v1.ConditionProgressing)).To(BeTrue())
		})

		setStatus(1)
		eventually(func(g Gomega) {
			b := tryFetch(g, ns, "fleet", &v1.MQTTBroker{})
			ready := meta.FindStatusCondition(b.Status.Conditions, v1.ConditionReady)
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(v1.ReasonPodsNotReady))
			g.Expect(meta.IsStatusConditionTrue(b.Status.Conditions, v1.ConditionAvailable)).To(BeTrue())
		})

		// A new generation is not Ready until the StatefulSet controller has caught up.
		setStatus(2)
		Expect(patchBroker(fetch(ns, "fleet", &v1.MQTTBroker{}), func(b *v1.MQTTBroker) {
			b.Spec.Image = "registry.example/fleetmq:next"
		})).To(Succeed())
		eventually(func(g Gomega) {
			b := tryFetch(g, ns, "fleet", &v1.MQTTBroker{})
			g.Expect(b.Status.ObservedGeneration).To(Equal(b.Generation))
			ready := meta.FindStatusCondition(b.Status.Conditions, v1.ConditionReady)
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(v1.ReasonReconciling))
		})
	})

	It("changes the ACL and aclRevision, and not the pod template, when a user's ACL changes", func() {
		before := createFleet()
		stsBefore := fetch(ns, "fleet", &appsv1.StatefulSet{})
		aclBefore := fetch(ns, "fleet-acl", &corev1.ConfigMap{}).Data[builder.ACLKey]

		patchUser(ns, "alice", func(u *v1.MQTTUser) {
			u.Spec.ACLs = append(u.Spec.ACLs, v1.ACLRule{Topic: "alerts/+", Access: v1.ACLWrite})
		})
		eventually(func(g Gomega) {
			g.Expect(aclOf(g)).To(ContainSubstring("user alice\ntopic readwrite sensors/alice/#\ntopic write alerts/+\n"))
			b := tryFetch(g, ns, "fleet", &v1.MQTTBroker{})
			g.Expect(b.Status.ACLRevision).NotTo(Equal(before.Status.ACLRevision))
			g.Expect(b.Status.ACLRevision).To(Equal(builder.Revision([]byte(aclOf(g)))))
		})
		Expect(aclBefore).NotTo(ContainSubstring("alerts/+"))

		stsAfter := fetch(ns, "fleet", &appsv1.StatefulSet{})
		Expect(stsAfter.Generation).To(Equal(stsBefore.Generation), "an ACL change must not touch the StatefulSet spec")
		Expect(stsAfter.Spec.Template).To(Equal(stsBefore.Spec.Template))
	})

	It("changes the pod template when a listener port changes", func() {
		createFleet()
		hashBefore := fetch(ns, "fleet", &appsv1.StatefulSet{}).Spec.Template.Annotations[builder.RestartHashAnnotation]

		Expect(patchBroker(fetch(ns, "fleet", &v1.MQTTBroker{}), func(b *v1.MQTTBroker) {
			b.Spec.Listeners[0].Port = 11883
		})).To(Succeed())
		eventually(func(g Gomega) {
			sts := tryFetch(g, ns, "fleet", &appsv1.StatefulSet{})
			g.Expect(sts.Spec.Template.Annotations[builder.RestartHashAnnotation]).NotTo(Equal(hashBefore))
			var ports []int32
			for _, p := range sts.Spec.Template.Spec.Containers[0].Ports {
				ports = append(ports, p.ContainerPort)
			}
			g.Expect(ports).To(ContainElement(int32(11883)))
			g.Expect(ports).NotTo(ContainElement(int32(1883)))
			svc := tryFetch(g, ns, "fleet", &corev1.Service{})
			g.Expect(svc.Spec.Ports[0].Port).To(Equal(int32(11883)))
			cfg := tryFetch(g, ns, "fleet-config", &corev1.ConfigMap{})
			g.Expect(cfg.Data[builder.ConfigKey]).To(ContainSubstring("0.0.0.0:11883"))
		})
	})

	It("scales the StatefulSet and the certificate's names through the scale subresource", func() {
		b := createFleet()
		scale := &autoscalingv1.Scale{}
		Expect(k8sClient.SubResource("scale").Get(ctx, b, scale)).To(Succeed())
		Expect(scale.Spec.Replicas).To(Equal(int32(2)))
		Expect(scale.Status.Selector).To(Equal(b.Status.Selector))

		// kubectl scale sends the replicas without a resourceVersion; a client that reads
		// the Scale first must retry when the controller wrote status in between.
		setReplicas := func(n int32) {
			GinkgoHelper()
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				if err := k8sClient.SubResource("scale").Get(ctx, b, scale); err != nil {
					return err
				}
				scale.Spec.Replicas = n
				return k8sClient.SubResource("scale").Update(ctx, b, client.WithSubResourceBody(scale))
			})).To(Succeed())
		}
		setReplicas(3)
		eventually(func(g Gomega) {
			sts := tryFetch(g, ns, "fleet", &appsv1.StatefulSet{})
			g.Expect(sts.Spec.Replicas).To(HaveValue(Equal(int32(3))))
			// The new pod's name is in the serving certificate before the pod starts.
			tls := tryFetch(g, ns, "fleet-tls", &corev1.Secret{})
			g.Expect(parseCert(tls.Data[corev1.TLSCertKey]).DNSNames).To(ContainElement("fleet-2.fleet-peers." + ns + ".svc.cluster.local"))
		})

		setReplicas(0)
		eventually(func(g Gomega) {
			g.Expect(tryFetch(g, ns, "fleet", &appsv1.StatefulSet{}).Spec.Replicas).To(HaveValue(Equal(int32(0))))
			b := tryFetch(g, ns, "fleet", &v1.MQTTBroker{})
			g.Expect(meta.FindStatusCondition(b.Status.Conditions, v1.ConditionAvailable).Reason).To(Equal(v1.ReasonScaledToZero))
		})
	})

	It("takes a deleted user's lines out of the ACL and password file", func() {
		createFleet()
		eventually(func(g Gomega) {
			pf, err := auth.ParsePasswordFile("passwd", tryFetch(g, ns, "fleet-users", &corev1.Secret{}).Data[builder.PasswdKey])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pf.Has("bob")).To(BeTrue())
		})

		Expect(k8sClient.Delete(ctx, fetch(ns, "bob", &v1.MQTTUser{}))).To(Succeed())
		eventually(func(g Gomega) {
			acl := aclOf(g)
			g.Expect(acl).NotTo(ContainSubstring("user bob"))
			g.Expect(acl).NotTo(ContainSubstring("dashboards/#"))
			g.Expect(acl).To(ContainSubstring("user alice"))
			pf, err := auth.ParsePasswordFile("passwd", tryFetch(g, ns, "fleet-users", &corev1.Secret{}).Data[builder.PasswdKey])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pf.Users()).To(Equal([]string{"alice"}))
		})
	})

	It("rehashes a password when its Secret changes, and only then", func() {
		createFleet()
		var passwdBefore []byte
		eventually(func(g Gomega) {
			passwdBefore = tryFetch(g, ns, "fleet-users", &corev1.Secret{}).Data[builder.PasswdKey]
			pf, err := auth.ParsePasswordFile("passwd", passwdBefore)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pf.Users()).To(HaveLen(2))
		})
		// A resync keeps the salted hashes byte for byte.
		reconcileBroker(ns, "fleet")
		Expect(fetch(ns, "fleet-users", &corev1.Secret{}).Data[builder.PasswdKey]).To(Equal(passwdBefore))

		s := fetch(ns, "alice-password", &corev1.Secret{})
		s.Data["password"] = []byte("alice-secret-2")
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		eventually(func(g Gomega) {
			data := tryFetch(g, ns, "fleet-users", &corev1.Secret{}).Data[builder.PasswdKey]
			pf, err := auth.ParsePasswordFile("passwd", data)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pf.Verify("alice", []byte("alice-secret-2"))).To(BeTrue())
			g.Expect(pf.Verify("alice", []byte("alice-secret-1"))).To(BeFalse())
			// bob's line is untouched.
			bobLine := func(file []byte) string {
				for _, l := range strings.Split(string(file), "\n") {
					if strings.HasPrefix(l, "bob:") {
						return l
					}
				}
				return ""
			}
			g.Expect(bobLine(data)).To(Equal(bobLine(passwdBefore)))
			g.Expect(bobLine(data)).NotTo(BeEmpty())
		})
	})

	It("keeps the data of Secrets and ConfigMaps it does not manage out of its cache, and still uses them", func() {
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ops-acl"},
			Data:       map[string]string{"acl": "user ops\ntopic readwrite ops/#\n"},
		})).To(Succeed())
		createFleet(func(b *v1.MQTTBroker) {
			b.Spec.Authorization.ACLConfigMapRefs = []v1.ConfigMapKeyReference{{Name: "ops-acl", Key: "acl"}}
		})
		eventually(func(g Gomega) {
			pf, err := auth.ParsePasswordFile("passwd", tryFetch(g, ns, "fleet-users", &corev1.Secret{}).Data[builder.PasswdKey])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pf.Verify("alice", []byte("alice-secret-1"))).To(BeTrue())
			g.Expect(aclOf(g)).To(ContainSubstring("user ops\ntopic readwrite ops/#\n"))
		})
		// ops-acl is the user's too: known to the cache without its data, the ACL
		// ConfigMap the operator writes is cached whole.
		cachedCM := &corev1.ConfigMap{}
		Expect(managerCache.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ops-acl"}, cachedCM)).To(Succeed())
		Expect(cachedCM.Data).To(BeEmpty())
		Expect(managerCache.Get(ctx, client.ObjectKey{Namespace: ns, Name: "fleet-acl"}, cachedCM)).To(Succeed())
		Expect(cachedCM.Data).To(HaveKey(builder.ACLKey))
		// alice-password is the user's: the cache knows it, without its data.
		cached := &corev1.Secret{}
		Expect(managerCache.Get(ctx, client.ObjectKey{Namespace: ns, Name: "alice-password"}, cached)).To(Succeed())
		Expect(cached.Data).To(BeEmpty())
		Expect(cached.ResourceVersion).NotTo(BeEmpty())
		Expect(fetch(ns, "alice-password", &corev1.Secret{}).Data).To(HaveKey("password"), "the Secret itself keeps its data")
		// fleet-users is the operator's: cached whole.
		Expect(managerCache.Get(ctx, client.ObjectKey{Namespace: ns, Name: "fleet-users"}, cached)).To(Succeed())
		Expect(cached.Data).To(HaveKey(builder.PasswdKey))
	})

	It("renews a serving certificate that nears expiry", func() {
		b := createFleet()
		ca := fetch(ns, "fleet-ca", &corev1.Secret{})
		tls := fetch(ns, "fleet-tls", &corev1.Secret{})
		oldKey := tls.Data[corev1.TLSPrivateKeyKey]

		// A certificate issued long ago: one hour of its 90 days left, inside renewBefore.
		issuedAt := time.Now().Add(-builder.CertDuration(b) + time.Hour)
		certPEM, keyPEM, err := builder.IssueServing(b, ca.Data[corev1.TLSCertKey], ca.Data[corev1.TLSPrivateKeyKey], issuedAt)
		Expect(err).NotTo(HaveOccurred())
		expiring := parseCert(certPEM).NotAfter
		Expect(expiring).To(BeTemporally("<", time.Now().Add(2*time.Hour)))
		tls.Data[corev1.TLSCertKey], tls.Data[corev1.TLSPrivateKeyKey] = certPEM, keyPEM
		Expect(k8sClient.Update(ctx, tls)).To(Succeed())

		eventually(func(g Gomega) {
			renewed := tryFetch(g, ns, "fleet-tls", &corev1.Secret{})
			cert := parseCert(renewed.Data[corev1.TLSCertKey])
			g.Expect(cert.NotAfter).To(BeTemporally(">", time.Now().Add(builder.RenewBefore(b))))
			g.Expect(renewed.Data[corev1.TLSPrivateKeyKey]).NotTo(Equal(keyPEM))
			g.Expect(renewed.Data[corev1.TLSPrivateKeyKey]).NotTo(Equal(oldKey))
			b := tryFetch(g, ns, "fleet", &v1.MQTTBroker{})
			g.Expect(b.Status.TLS.NotAfter.Time).To(BeTemporally("==", cert.NotAfter.Truncate(time.Second)))
			g.Expect(meta.IsStatusConditionTrue(b.Status.Conditions, v1.ConditionTLSReady)).To(BeTrue())
		})
		// The CA stays: clients that trust it keep working.
		Expect(fetch(ns, "fleet-ca", &corev1.Secret{}).Data).To(Equal(ca.Data))
	})

	It("renews its CA certificate with the same key before it expires", func() {
		createFleet()
		ca := fetch(ns, "fleet-ca", &corev1.Secret{})
		caKey := ca.Data[corev1.TLSPrivateKeyKey]
		// The same CA as if created almost ten years ago: 30 days left, inside CARenewBefore.
		expiring, err := builder.RenewCA(ca.Data[corev1.TLSCertKey], caKey, time.Now().Add(-builder.CAValidity+30*24*time.Hour))
		Expect(err).NotTo(HaveOccurred())
		events := emittedMark()
		ca.Data[corev1.TLSCertKey] = expiring
		Expect(k8sClient.Update(ctx, ca)).To(Succeed())

		oldRoots := x509.NewCertPool()
		oldRoots.AddCert(parseCert(expiring))
		eventually(func(g Gomega) {
			renewed := tryFetch(g, ns, "fleet-ca", &corev1.Secret{})
			g.Expect(renewed.Data[corev1.TLSPrivateKeyKey]).To(Equal(caKey), "the CA key must stay")
			g.Expect(parseCert(renewed.Data[corev1.TLSCertKey]).NotAfter).To(BeTemporally(">", time.Now().Add(builder.CAValidity-time.Hour)))
			// The pods get the new CA certificate and a serving certificate issued under it,
			// which clients that trust only the old one still accept.
			served := tryFetch(g, ns, "fleet-tls", &corev1.Secret{})
			g.Expect(served.Data[builder.CAKey]).To(Equal(renewed.Data[corev1.TLSCertKey]))
			_, err := parseCert(served.Data[corev1.TLSCertKey]).Verify(x509.VerifyOptions{Roots: oldRoots, DNSName: "fleet"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(emittedSince(events)).To(ContainElement(ContainSubstring("Renewed the CA certificate in Secret fleet-ca with the same key")))
		})
	})

	It("changes nothing while paused, and catches up when resumed", func() {
		createFleet()
		Expect(patchBroker(fetch(ns, "fleet", &v1.MQTTBroker{}), func(b *v1.MQTTBroker) { b.Spec.Paused = true })).To(Succeed())
		eventually(func(g Gomega) {
			b := tryFetch(g, ns, "fleet", &v1.MQTTBroker{})
			g.Expect(b.Status.ObservedGeneration).To(Equal(b.Generation))
			ready := meta.FindStatusCondition(b.Status.Conditions, v1.ConditionReady)
			g.Expect(ready.Reason).To(Equal(v1.ReasonPaused))
			g.Expect(meta.FindStatusCondition(b.Status.Conditions, v1.ConditionProgressing).Reason).To(Equal(v1.ReasonPaused))
		})
		waitQuiet()
		stsBefore := fetch(ns, "fleet", &appsv1.StatefulSet{})
		aclBefore := fetch(ns, "fleet-acl", &corev1.ConfigMap{})
		mark, events := managerWrites.mark(), emittedMark()

		Expect(patchBroker(fetch(ns, "fleet", &v1.MQTTBroker{}), func(b *v1.MQTTBroker) {
			b.Spec.Listeners[0].Port = 11883
			b.Spec.Replicas = ptr.To(int32(4))
		})).To(Succeed())
		patchUser(ns, "alice", func(u *v1.MQTTUser) { u.Spec.ACLs[0].Access = v1.ACLRead })
		Consistently(func(g Gomega) {
			sts := tryFetch(g, ns, "fleet", &appsv1.StatefulSet{})
			g.Expect(sts.Generation).To(Equal(stsBefore.Generation))
			g.Expect(tryFetch(g, ns, "fleet-acl", &corev1.ConfigMap{}).ResourceVersion).To(Equal(aclBefore.ResourceVersion))
		}).WithTimeout(3 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
		Expect(emittedSince(events)).To(BeEmpty(), "a paused broker emitted Events")
		for _, w := range objectWrites(mark, "/namespaces/"+ns+"/") {
			// Only status: the broker's (observedGeneration) and the paused user's Ready.
			Expect(w.Path).To(HaveSuffix("/status"), "a paused broker's objects were written: %v", w)
		}

		Expect(patchBroker(fetch(ns, "fleet", &v1.MQTTBroker{}), func(b *v1.MQTTBroker) { b.Spec.Paused = false })).To(Succeed())
		eventually(func(g Gomega) {
			sts := tryFetch(g, ns, "fleet", &appsv1.StatefulSet{})
			g.Expect(sts.Spec.Replicas).To(HaveValue(Equal(int32(4))))
			g.Expect(aclOf(g)).To(ContainSubstring("user alice\ntopic read sensors/alice/#\n"))
		})
	})

	It("makes no write on an idle resync", func() {
		createFleet()
		eventually(func(g Gomega) {
			for _, name := range []string{"alice", "bob"} {
				u := tryFetch(g, ns, name, &v1.MQTTUser{})
				g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, v1.ConditionReady)).To(BeTrue(), "%s: %v", name, u.Status.Conditions)
			}
		})
		waitQuiet()
		mark, events := managerWrites.mark(), emittedMark()

		// Resyncs called directly, as the periodic resync would...
		for range 3 {
			Expect(reconcileBroker(ns, "fleet").RequeueAfter).To(BeNumerically(">", time.Hour),
				"the next reconcile is due when the certificate needs renewal")
			for _, name := range []string{"alice", "bob"} {
				_, err := testUserReconciler.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: name}})
				Expect(err).NotTo(HaveOccurred())
			}
		}
		// ...and through the manager, by touching the broker and a user.
		Expect(patchBroker(fetch(ns, "fleet", &v1.MQTTBroker{}), func(b *v1.MQTTBroker) {
			b.Annotations = map[string]string{"example.com/nudge": "1"}
		})).To(Succeed())
		patchUser(ns, "alice", func(u *v1.MQTTUser) { u.Annotations = map[string]string{"example.com/nudge": "1"} })
		time.Sleep(3 * time.Second)

		Expect(objectWrites(mark, "")).To(BeEmpty(), "an idle resync must not write")
		Expect(emittedSince(events)).To(BeEmpty(), "an idle resync must not emit Events")
	})

	It("keeps the last good ACL and names the ConfigMap and line when a referenced ACL is invalid", func() {
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "extra-acl"},
			Data:       map[string]string{"acl": "user ops\ntopic readwrite ops/#\n"},
		})).To(Succeed())
		b := createFleet(func(b *v1.MQTTBroker) {
			b.Spec.Authorization.ACLConfigMapRefs = []v1.ConfigMapKeyReference{{Name: "extra-acl"}}
		})
		good := fetch(ns, "fleet-acl", &corev1.ConfigMap{})
		Expect(good.Data[builder.ACLKey]).To(ContainSubstring("topic readwrite ops/#"))

		cm := fetch(ns, "extra-acl", &corev1.ConfigMap{})
		cm.Data["acl"] = "user ops\ntopic readwrite ops/#\ntopic readwrite ops/#/broken\n"
		Expect(k8sClient.Update(ctx, cm)).To(Succeed())

		var message string
		eventually(func(g Gomega) {
			b := tryFetch(g, ns, "fleet", &v1.MQTTBroker{})
			c := meta.FindStatusCondition(b.Status.Conditions, v1.ConditionACLSynced)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(v1.ReasonACLInvalid))
			g.Expect(c.Message).To(ContainSubstring("ConfigMap " + ns + "/extra-acl key acl line 3"))
			message = c.Message
			g.Expect(meta.IsStatusConditionTrue(b.Status.Conditions, v1.ConditionDegraded)).To(BeTrue())
			g.Expect(meta.IsStatusConditionFalse(b.Status.Conditions, v1.ConditionReady)).To(BeTrue())
		})
		eventually(func(g Gomega) {
			g.Expect(warningEvents(g, ns, "fleet", v1.ReasonACLInvalid)).To(ContainElement(message))
		})

		// The last good ACL stays in force, even as users change meanwhile.
		patchUser(ns, "bob", func(u *v1.MQTTUser) { u.Spec.ACLs[0].Topic = "dashboards/team/#" })
		Consistently(func(g Gomega) {
			g.Expect(tryFetch(g, ns, "fleet-acl", &corev1.ConfigMap{}).Data).To(Equal(good.Data))
			g.Expect(tryFetch(g, ns, "fleet", &v1.MQTTBroker{}).Status.ACLRevision).To(Equal(b.Status.ACLRevision))
		}).WithTimeout(2 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

		cm = fetch(ns, "extra-acl", &corev1.ConfigMap{})
		cm.Data["acl"] = "user ops\ntopic readwrite ops/#\ntopic read ops/status\n"
		Expect(k8sClient.Update(ctx, cm)).To(Succeed())
		eventually(func(g Gomega) {
			g.Expect(aclOf(g)).To(ContainSubstring("topic read ops/status"))
			g.Expect(aclOf(g)).To(ContainSubstring("topic read dashboards/team/#"))
			b := tryFetch(g, ns, "fleet", &v1.MQTTBroker{})
			g.Expect(meta.IsStatusConditionTrue(b.Status.Conditions, v1.ConditionACLSynced)).To(BeTrue())
			g.Expect(meta.IsStatusConditionFalse(b.Status.Conditions, v1.ConditionDegraded)).To(BeTrue())
		})
	})

	It("reports a missing ACL ConfigMap and picks it up when it is created", func() {
		Expect(k8sClient.Create(ctx, newUser(ns, "carol", func(u *v1.MQTTUser) {
			u.Spec.ACLs = []v1.ACLRule{{Topic: "carol/#", Access: v1.ACLReadWrite}}
		}))).To(Succeed())
		Expect(k8sClient.Create(ctx, newBroker(ns, "fleet", func(b *v1.MQTTBroker) {
			b.Spec.Authorization.ACLConfigMapRefs = []v1.ConfigMapKeyReference{{Name: "later", Key: "rules"}}
		}))).To(Succeed())
		eventually(func(g Gomega) {
			b := tryFetch(g, ns, "fleet", &v1.MQTTBroker{})
			c := meta.FindStatusCondition(b.Status.Conditions, v1.ConditionACLSynced)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(v1.ReasonReferenceNotFound))
			g.Expect(c.Message).To(ContainSubstring("ConfigMap " + ns + "/later"))
			// With no earlier ACL to keep, the pods get one without the missing source.
			g.Expect(aclOf(g)).To(ContainSubstring("user carol\ntopic readwrite carol/#\n"))
			g.Expect(b.Status.ACLRevision).To(Equal(builder.Revision([]byte(aclOf(g)))))
		})

		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "later"},
			Data:       map[string]string{"rules": "pattern read status/%c\n"},
		})).To(Succeed())
		eventually(func(g Gomega) {
			g.Expect(aclOf(g)).To(ContainSubstring("pattern read status/%c"))
			b := tryFetch(g, ns, "fleet", &v1.MQTTBroker{})
			g.Expect(meta.IsStatusConditionTrue(b.Status.Conditions, v1.ConditionACLSynced)).To(BeTrue())
		})
	})

	It("deletes the PodDisruptionBudget when it is turned off", func() {
		createFleet()
		Expect(patchBroker(fetch(ns, "fleet", &v1.MQTTBroker{}), func(b *v1.MQTTBroker) {
			b.Spec.PodDisruptionBudget.Enabled = ptr.To(false)
		})).To(Succeed())
		eventually(func(g Gomega) {
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "fleet"}, &policyv1.PodDisruptionBudget{})
			g.Expect(client.IgnoreNotFound(err)).To(Succeed())
			g.Expect(err).To(HaveOccurred())
		})
	})
})
