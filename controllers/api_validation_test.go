package controllers

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mqttv1alpha1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

// These specs check what the API server itself enforces from the CRDs: defaults, the CEL
// rules and their messages, and the scale subresource. They need no reconciler.

// newTestNamespace creates a namespace for one spec. envtest runs no namespace controller,
// so namespaces are left behind rather than deleted; each spec gets a fresh one.
func newTestNamespace() string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "api-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// newBroker returns a minimal MQTTBroker with the changes applied.
func newBroker(ns, name string, changes ...func(*mqttv1alpha1.MQTTBroker)) *mqttv1alpha1.MQTTBroker {
	b := &mqttv1alpha1.MQTTBroker{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, change := range changes {
		if change != nil {
			change(b)
		}
	}
	return b
}

// newUser returns a minimal MQTTUser of broker "fleet" with the changes applied.
func newUser(ns, name string, changes ...func(*mqttv1alpha1.MQTTUser)) *mqttv1alpha1.MQTTUser {
	u := &mqttv1alpha1.MQTTUser{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       mqttv1alpha1.MQTTUserSpec{BrokerRef: mqttv1alpha1.BrokerReference{Name: "fleet"}},
	}
	for _, change := range changes {
		change(u)
	}
	return u
}

// expectInvalid asserts that err is the API server's 422 Invalid carrying message.
func expectInvalid(err error, message string) {
	GinkgoHelper()
	Expect(err).To(HaveOccurred(), "the API server accepted an object that should be rejected")
	Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want 422 Invalid, got %v", err)
	Expect(err.Error()).To(ContainSubstring(message))
}

func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

var _ = Describe("MQTTBroker API", func() {
	var ns string
	BeforeEach(func() { ns = newTestNamespace() })

	It("accepts a broker with an empty spec and fills in every default", func() {
		Expect(k8sClient.Create(ctx, newBroker(ns, "defaults"))).To(Succeed())

		got := &mqttv1alpha1.MQTTBroker{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "defaults"}, got)).To(Succeed())
		s := got.Spec
		Expect(s.Replicas).To(HaveValue(Equal(int32(1))))
		Expect(s.Listeners).To(Equal([]mqttv1alpha1.ListenerSpec{
			{Name: "mqtt", Protocol: mqttv1alpha1.ProtocolMQTT, Port: 1883},
			{Name: "mqtts", Protocol: mqttv1alpha1.ProtocolMQTTS, Port: 8883},
		}))
		Expect(s.Service.Type).To(Equal(corev1.ServiceTypeClusterIP))
		Expect(s.TLS.Enabled).To(HaveValue(BeTrue()))
		Expect(s.TLS.ClientAuth).To(Equal(mqttv1alpha1.ClientAuthNone))
		Expect(s.TLS.Duration).To(HaveValue(Equal(metav1.Duration{Duration: 2160 * time.Hour})))
		Expect(s.TLS.RenewBefore).To(HaveValue(Equal(metav1.Duration{Duration: 720 * time.Hour})))
		Expect(s.Authentication.AllowAnonymous).To(HaveValue(BeFalse()))
		Expect(s.Authorization.DefaultAction).To(Equal(mqttv1alpha1.ACLDefaultDeny))
		Expect(s.Persistence.Enabled).To(HaveValue(BeFalse()))
		Expect(s.Persistence.Size).NotTo(BeNil())
		Expect(s.Persistence.Size.String()).To(Equal("1Gi"))
		Expect(s.Persistence.Fsync).To(Equal(mqttv1alpha1.FsyncBatch))
		Expect(s.Peering.SharedSubscriptionStrategy).To(Equal(mqttv1alpha1.SharedRoundRobin))
		Expect(s.PodDisruptionBudget.Enabled).To(HaveValue(BeTrue()))
		Expect(s.PodDisruptionBudget.MaxUnavailable).To(HaveValue(Equal(intstr.FromInt32(1))))
		Expect(s.Monitoring.Enabled).To(HaveValue(BeFalse()))
		Expect(s.Paused).To(BeFalse())
		// Limits stay unset so the broker's own defaults apply.
		Expect(s.Limits).To(Equal(mqttv1alpha1.LimitsSpec{}))
	})

	It("accepts a PROXY protocol listener behind trusted load balancers", func() {
		lb := mqttv1alpha1.ListenerSpec{Name: "lb", Protocol: mqttv1alpha1.ProtocolMQTTS, Port: 8884,
			ProxyProtocol: true, TrustedProxies: []string{"10.0.0.0/16", "192.168.1.7", "fd00::/8"}}
		Expect(k8sClient.Create(ctx, newBroker(ns, "behind-lb", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Listeners = []mqttv1alpha1.ListenerSpec{lb}
		}))).To(Succeed())
		got := &mqttv1alpha1.MQTTBroker{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "behind-lb"}, got)).To(Succeed())
		Expect(got.Spec.Listeners).To(Equal([]mqttv1alpha1.ListenerSpec{lb}))
	})

	It("accepts the samples in config/samples", func() {
		for _, file := range []string{"mqtt_v1alpha1_mqttbroker.yaml", "mqtt_v1alpha1_mqttuser.yaml"} {
			for _, obj := range readManifests(filepath.Join("..", "config", "samples", file)) {
				obj.SetNamespace(ns)
				Expect(k8sClient.Create(ctx, obj)).To(Succeed(), "creating %s %s from %s", obj.GetKind(), obj.GetName(), file)
			}
		}

		fleet := &mqttv1alpha1.MQTTBroker{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "fleet"}, fleet)).To(Succeed())
		Expect(fleet.Spec.Replicas).To(HaveValue(Equal(int32(3))))
		Expect(fleet.Spec.Listeners).To(ContainElement(mqttv1alpha1.ListenerSpec{
			Name: "wss", Protocol: mqttv1alpha1.ProtocolWSS, Port: 8084, Path: "/mqtt",
		}))

		users := &mqttv1alpha1.MQTTUserList{}
		Expect(k8sClient.List(ctx, users, client.InNamespace(ns))).To(Succeed())
		Expect(users.Items).To(HaveLen(2))
		for _, u := range users.Items {
			Expect(u.Spec.BrokerRef.Name).To(Equal("fleet"))
			Expect(u.Spec.ACLs).NotTo(BeEmpty())
		}
	})

	DescribeTable("rejects an invalid broker with a message that says how to fix it",
		func(name string, change func(*mqttv1alpha1.MQTTBroker), message string) {
			expectInvalid(k8sClient.Create(ctx, newBroker(ns, name, change)), message)
		},
		Entry("duplicate listener ports", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Listeners = []mqttv1alpha1.ListenerSpec{
				{Name: "mqtt", Protocol: mqttv1alpha1.ProtocolMQTT, Port: 1883},
				{Name: "ws", Protocol: mqttv1alpha1.ProtocolWS, Port: 1883},
			}
		}, "listener ports must be unique: give each listener its own port"),
		Entry("duplicate listener names", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Listeners = []mqttv1alpha1.ListenerSpec{
				{Name: "mqtt", Protocol: mqttv1alpha1.ProtocolMQTT, Port: 1883},
				{Name: "mqtt", Protocol: mqttv1alpha1.ProtocolWS, Port: 8080},
			}
		}, "Duplicate value"),
		Entry("a TLS listener with TLS disabled", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.TLS.Enabled = ptr.To(false) // the default listeners include mqtts
		}, "listeners with protocol mqtts or wss need TLS: set spec.tls.enabled to true"),
		Entry("a wss listener with TLS disabled", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.TLS.Enabled = ptr.To(false)
			b.Spec.Listeners = []mqttv1alpha1.ListenerSpec{{Name: "wss", Protocol: mqttv1alpha1.ProtocolWSS, Port: 8084}}
		}, "listeners with protocol mqtts or wss need TLS"),
		Entry("negative replicas", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Replicas = ptr.To(int32(-1))
		}, "replicas must be 0 or more"),
		Entry("a port out of range", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Listeners = []mqttv1alpha1.ListenerSpec{{Name: "mqtt", Protocol: mqttv1alpha1.ProtocolMQTT, Port: 70000}}
		}, "should be less than or equal to 65535"),
		Entry("an unknown listener protocol", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Listeners = []mqttv1alpha1.ListenerSpec{{Name: "quic", Protocol: "quic", Port: 14567}}
		}, `supported values: "mqtt", "mqtts", "ws", "wss"`),
		Entry("a listener on the metrics port", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Listeners = []mqttv1alpha1.ListenerSpec{{Name: "mqtt", Protocol: mqttv1alpha1.ProtocolMQTT, Port: 9090}}
		}, "port 9090 is the broker's metrics and health port"),
		Entry("a listener named metrics", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Listeners = []mqttv1alpha1.ListenerSpec{{Name: "metrics", Protocol: mqttv1alpha1.ProtocolMQTT, Port: 1883}}
		}, "the listener name metrics is taken"),
		Entry("a path on an mqtt listener", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Listeners = []mqttv1alpha1.ListenerSpec{{Name: "mqtt", Protocol: mqttv1alpha1.ProtocolMQTT, Port: 1883, Path: "/mqtt"}}
		}, "path applies only to ws and wss listeners"),
		Entry("trusted proxies without the PROXY protocol", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Listeners = []mqttv1alpha1.ListenerSpec{{Name: "lb", Protocol: mqttv1alpha1.ProtocolMQTT, Port: 1884, TrustedProxies: []string{"10.0.0.0/16"}}}
		}, "trustedProxies applies only with proxyProtocol: true"),
		Entry("a trusted proxy that is no address", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Listeners = []mqttv1alpha1.ListenerSpec{{Name: "lb", Protocol: mqttv1alpha1.ProtocolMQTT, Port: 1884, ProxyProtocol: true, TrustedProxies: []string{"10.0.0.0/33"}}}
		}, "each entry must be an IP address or a CIDR range such as 10.0.0.0/16"),
		Entry("a listener name that cannot name a Service port", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Listeners = []mqttv1alpha1.ListenerSpec{{Name: "MQTT_Plain", Protocol: mqttv1alpha1.ProtocolMQTT, Port: 1883}}
		}, "spec.listeners[0].name"),
		Entry("both a cert-manager issuer and a user Secret", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.TLS.IssuerRef = &mqttv1alpha1.IssuerReference{Name: "letsencrypt"}
			b.Spec.TLS.SecretName = "my-tls"
		}, "set either tls.issuerRef (cert-manager issues the certificate) or tls.secretName (you provide it), not both"),
		Entry("renewBefore not shorter than duration", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.TLS.Duration = duration(24 * time.Hour)
			b.Spec.TLS.RenewBefore = duration(48 * time.Hour)
		}, "tls.renewBefore must be shorter than tls.duration"),
		Entry("a certificate duration under an hour", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.TLS.Duration = duration(30 * time.Minute)
			b.Spec.TLS.RenewBefore = duration(10 * time.Minute)
		}, "tls.duration must be at least 1h"),
		Entry("an unknown clientAuth", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.TLS.ClientAuth = "optional"
		}, `supported values: "none", "request", "require"`),
		Entry("'#' before the last topic level", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Authorization.Rules = []mqttv1alpha1.ACLRule{{Topic: "sensors/#/temperature", Access: mqttv1alpha1.ACLRead}}
		}, "'#' must be the whole last level of a topic filter"),
		Entry("'+' inside a topic level", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Authorization.Rules = []mqttv1alpha1.ACLRule{{Topic: "sensors/a+/temperature", Access: mqttv1alpha1.ACLRead}}
		}, "'+' must fill a whole topic level"),
		Entry("an unknown ACL access word", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Authorization.Rules = []mqttv1alpha1.ACLRule{{Topic: "clients/%c/#", Access: "rw"}}
		}, `supported values: "read", "write", "readwrite", "deny"`),
		Entry("a zero persistence size", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Persistence.Size = ptr.To(resource.MustParse("0"))
		}, "persistence.size must be a positive quantity such as 1Gi or 500Mi"),
		Entry("an unknown fsync mode", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Persistence.Fsync = "sometimes"
		}, `supported values: "always", "batch", "none"`),
		Entry("a packet size limit beyond MQTT's", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Limits.MaxPacketSize = ptr.To(int32(268435456))
		}, "should be less than or equal to 268435455"),
		Entry("an unknown shared subscription strategy", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Peering.SharedSubscriptionStrategy = "sticky"
		}, `supported values: "round_robin", "random", "local_first"`),
		Entry("maxUnavailable that is neither a count nor a percentage", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.PodDisruptionBudget.MaxUnavailable = ptr.To(intstr.FromString("half"))
		}, "podDisruptionBudget.maxUnavailable must be a number of pods (0 or more) or a percentage"),
		Entry("pod labels that would change the selector", "fleet", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Template.Labels = map[string]string{"app.kubernetes.io/instance": "other"}
		}, "template.labels must not set app.kubernetes.io/name or app.kubernetes.io/instance"),
		Entry("a name too long for its StatefulSet pods", "a-very-long-broker-name-that-leaves-no-room-for-suffixes", nil,
			"MQTTBroker names must start with a letter"),
		Entry("a name that cannot name a Service", "1fleet", nil, "MQTTBroker names must start with a letter"),
	)

	DescribeTable("rejects changes to storage after creation",
		func(change func(*mqttv1alpha1.MQTTBroker), message string) {
			b := newBroker(ns, "stored", func(b *mqttv1alpha1.MQTTBroker) {
				b.Spec.Persistence.Enabled = ptr.To(true)
				b.Spec.Persistence.Size = ptr.To(resource.MustParse("1Gi"))
			})
			Expect(k8sClient.Create(ctx, b)).To(Succeed())
			expectInvalid(patchBroker(b, change), message)
		},
		Entry("turning persistence off", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Persistence.Enabled = ptr.To(false)
		}, "persistence.enabled cannot change after creation"),
		Entry("resizing the volumes", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Persistence.Size = ptr.To(resource.MustParse("2Gi"))
		}, "persistence.size cannot change after creation"),
		Entry("setting a storage class", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Persistence.StorageClassName = ptr.To("fast")
		}, "persistence.storageClassName cannot change after creation"),
	)

	It("accepts updates that keep storage as it was", func() {
		b := newBroker(ns, "stored", func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Persistence.Enabled = ptr.To(true)
			b.Spec.Persistence.Size = ptr.To(resource.MustParse("1Gi"))
		})
		Expect(k8sClient.Create(ctx, b)).To(Succeed())
		Expect(patchBroker(b, func(b *mqttv1alpha1.MQTTBroker) {
			b.Spec.Replicas = ptr.To(int32(2))
			// The same quantity written differently is no change.
			b.Spec.Persistence.Size = ptr.To(resource.MustParse("1024Mi"))
			b.Spec.Persistence.Fsync = mqttv1alpha1.FsyncAlways
		})).To(Succeed())
	})

	It("scales through the scale subresource", func() {
		b := newBroker(ns, "scaled", func(b *mqttv1alpha1.MQTTBroker) { b.Spec.Replicas = ptr.To(int32(3)) })
		Expect(k8sClient.Create(ctx, b)).To(Succeed())

		scale := &autoscalingv1.Scale{}
		Expect(k8sClient.SubResource("scale").Get(ctx, b, scale)).To(Succeed())
		Expect(scale.Spec.Replicas).To(Equal(int32(3)))

		scale.Spec.Replicas = 5
		Expect(k8sClient.SubResource("scale").Update(ctx, b, client.WithSubResourceBody(scale))).To(Succeed())
		got := &mqttv1alpha1.MQTTBroker{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(b), got)).To(Succeed())
		Expect(got.Spec.Replicas).To(HaveValue(Equal(int32(5))))

		scale.Spec.Replicas = -1
		err := k8sClient.SubResource("scale").Update(ctx, b, client.WithSubResourceBody(scale))
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "scaling to -1 must be rejected, got %v", err)

		// The scale status comes from status.replicas and status.selector; HPAs read them.
		// A running reconciler may write status too, so write with retries and compare
		// whatever status is current.
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(b), got); err != nil {
				return err
			}
			got.Status.Replicas = 5
			got.Status.Selector = "app.kubernetes.io/name=fleetmq-broker,app.kubernetes.io/instance=scaled"
			return k8sClient.Status().Update(ctx, got)
		})).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.SubResource("scale").Get(ctx, b, scale)).To(Succeed())
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(b), got)).To(Succeed())
			g.Expect(scale.Status.Replicas).To(Equal(got.Status.Replicas))
			g.Expect(scale.Status.Selector).To(Equal(got.Status.Selector))
			g.Expect(scale.Status.Selector).NotTo(BeEmpty())
		}).Should(Succeed())
	})
})

var _ = Describe("MQTTUser API", func() {
	var ns string
	BeforeEach(func() { ns = newTestNamespace() })

	It("generates a password when no authentication is given", func() {
		Expect(k8sClient.Create(ctx, newUser(ns, "sensor-1"))).To(Succeed())
		got := &mqttv1alpha1.MQTTUser{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sensor-1"}, got)).To(Succeed())
		Expect(got.Spec.Authentication.Generate).NotTo(BeNil())
		Expect(got.Spec.Authentication.PasswordSecretRef).To(BeNil())
		Expect(got.Spec.Authentication.TLS).To(BeNil())
	})

	It("defaults the key of a password Secret and the lifetime of a client certificate", func() {
		Expect(k8sClient.Create(ctx, newUser(ns, "sensor-1", func(u *mqttv1alpha1.MQTTUser) {
			u.Spec.Authentication.PasswordSecretRef = &mqttv1alpha1.SecretKeyReference{Name: "sensor-1-password"}
		}))).To(Succeed())
		Expect(k8sClient.Create(ctx, newUser(ns, "sensor-2", func(u *mqttv1alpha1.MQTTUser) {
			u.Spec.Authentication.TLS = &mqttv1alpha1.ClientCertificate{}
		}))).To(Succeed())

		got := &mqttv1alpha1.MQTTUser{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sensor-1"}, got)).To(Succeed())
		Expect(got.Spec.Authentication.PasswordSecretRef.Key).To(Equal("password"))
		Expect(got.Spec.Authentication.Generate).To(BeNil())
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sensor-2"}, got)).To(Succeed())
		Expect(got.Spec.Authentication.TLS.Duration).To(HaveValue(Equal(metav1.Duration{Duration: 2160 * time.Hour})))
		Expect(got.Spec.Authentication.TLS.RenewBefore).To(HaveValue(Equal(metav1.Duration{Duration: 720 * time.Hour})))
	})

	DescribeTable("rejects an invalid user with a message that says how to fix it",
		func(change func(*mqttv1alpha1.MQTTUser), message string) {
			expectInvalid(k8sClient.Create(ctx, newUser(ns, "sensor-1", change)), message)
		},
		Entry("two ways to authenticate", func(u *mqttv1alpha1.MQTTUser) {
			u.Spec.Authentication.PasswordSecretRef = &mqttv1alpha1.SecretKeyReference{Name: "pw"}
			u.Spec.Authentication.Generate = &mqttv1alpha1.GeneratedPassword{}
		}, "choose one of authentication.passwordSecretRef, authentication.generate or authentication.tls"),
		Entry("a username with a colon", func(u *mqttv1alpha1.MQTTUser) {
			u.Spec.Username = "sensor:1"
		}, "spec.username"),
		Entry("a username with a space", func(u *mqttv1alpha1.MQTTUser) {
			u.Spec.Username = "sensor 1"
		}, "spec.username"),
		Entry("no broker", func(u *mqttv1alpha1.MQTTUser) {
			u.Spec.BrokerRef.Name = ""
		}, "spec.brokerRef.name"),
		Entry("an unknown ACL access word", func(u *mqttv1alpha1.MQTTUser) {
			u.Spec.ACLs = []mqttv1alpha1.ACLRule{{Topic: "telemetry/#", Access: "all"}}
		}, `supported values: "read", "write", "readwrite", "deny"`),
		Entry("the same topic twice", func(u *mqttv1alpha1.MQTTUser) {
			u.Spec.ACLs = []mqttv1alpha1.ACLRule{
				{Topic: "telemetry/#", Access: mqttv1alpha1.ACLRead},
				{Topic: "telemetry/#", Access: mqttv1alpha1.ACLWrite},
			}
		}, "Duplicate value"),
		Entry("a topic filter with '#' inside", func(u *mqttv1alpha1.MQTTUser) {
			u.Spec.ACLs = []mqttv1alpha1.ACLRule{{Topic: "telemetry/#/x", Access: mqttv1alpha1.ACLRead}}
		}, "'#' must be the whole last level of a topic filter"),
		Entry("a topic with a line break, which would inject ACL lines", func(u *mqttv1alpha1.MQTTUser) {
			u.Spec.ACLs = []mqttv1alpha1.ACLRule{{Topic: "a\ntopic readwrite #", Access: mqttv1alpha1.ACLRead}}
		}, "spec.acls[0].topic"),
		Entry("a client certificate renewed after it expires", func(u *mqttv1alpha1.MQTTUser) {
			u.Spec.Authentication.TLS = &mqttv1alpha1.ClientCertificate{
				Duration: duration(24 * time.Hour), RenewBefore: duration(24 * time.Hour),
			}
		}, "tls.renewBefore must be shorter than tls.duration"),
	)

	It("keeps brokerRef fixed after creation", func() {
		u := newUser(ns, "sensor-1")
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		before := u.DeepCopy()
		u.Spec.BrokerRef.Name = "other"
		expectInvalid(k8sClient.Patch(ctx, u, client.MergeFrom(before)), "brokerRef cannot change")
	})
})

var _ = Describe("The CRDs in config/crd/bases", func() {
	It("describe every field, so kubectl explain has a line for each", func() {
		files, err := filepath.Glob(filepath.Join("..", "config", "crd", "bases", "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(files).To(HaveLen(2))
		for _, file := range files {
			for _, crd := range readManifests(file) {
				versions, _, err := unstructured.NestedSlice(crd.Object, "spec", "versions")
				Expect(err).NotTo(HaveOccurred())
				for _, v := range versions {
					schema, _, err := unstructured.NestedMap(v.(map[string]any), "schema", "openAPIV3Schema")
					Expect(err).NotTo(HaveOccurred())
					Expect(undescribedFields(crd.GetName(), schema)).To(BeEmpty(),
						"fields without a doc comment in api/v1alpha1")
				}
			}
		}
	})
})

// undescribedFields returns the paths below a CRD's root schema whose property has no
// description. The root's metadata is left out: it is ObjectMeta, which Kubernetes documents.
func undescribedFields(crdName string, root map[string]any) []string {
	var missing []string
	var walk func(path string, schema map[string]any)
	walk = func(path string, schema map[string]any) {
		props, _ := schema["properties"].(map[string]any)
		for name, p := range props {
			prop, _ := p.(map[string]any)
			if d, _ := prop["description"].(string); d == "" {
				missing = append(missing, crdName+":"+path+name)
			}
			walk(path+name+".", prop)
		}
		if items, ok := schema["items"].(map[string]any); ok {
			walk(strings.TrimSuffix(path, ".")+"[].", items)
		}
	}
	rootProps, _ := root["properties"].(map[string]any)
	for name, p := range rootProps {
		if name == "metadata" {
			continue
		}
		walk("", map[string]any{"properties": map[string]any{name: p}})
	}
	return missing
}

// patchBroker applies change to b with a merge patch, which carries no resourceVersion, so
// a reconciler writing status meanwhile cannot make it fail with a conflict.
func patchBroker(b *mqttv1alpha1.MQTTBroker, change func(*mqttv1alpha1.MQTTBroker)) error {
	GinkgoHelper()
	current := &mqttv1alpha1.MQTTBroker{}
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(b), current)).To(Succeed())
	before := current.DeepCopy()
	change(current)
	return k8sClient.Patch(ctx, current, client.MergeFrom(before))
}

// readManifests decodes every object of a multi-document YAML file.
func readManifests(path string) []*unstructured.Unstructured {
	GinkgoHelper()
	f, err := os.Open(path)
	Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	var objs []*unstructured.Unstructured
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		Expect(err).NotTo(HaveOccurred(), "decoding %s", path)
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
	Expect(objs).NotTo(BeEmpty(), "no objects in %s", path)
	return objs
}
