package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/controllers/builder"
)

// These specs cover the certificate and monitoring paths that depend on other projects:
// cert-manager issuing the serving certificate, a certificate Secret the user manages, and
// the prometheus-operator's ServiceMonitor. The suite installs the real cert-manager and
// prometheus-operator CRDs (thirdPartyCRDs), so what the operator writes is checked
// against their schemas; nothing runs cert-manager itself, so a spec writes the Secret that
// cert-manager would.

var _ = Describe("MQTTBroker with cert-manager, a user-managed certificate and monitoring", func() {
	var ns string
	BeforeEach(func() { ns = newTestNamespace() })

	// createBroker creates broker "fleet" with two pods and an mqtts listener.
	createBroker := func(changes ...func(*v1.MQTTBroker)) {
		GinkgoHelper()
		b := newBroker(ns, "fleet", func(b *v1.MQTTBroker) {
			b.Spec.Replicas = ptr.To(int32(2))
			b.Spec.Listeners = []v1.ListenerSpec{{Name: "mqtts", Protocol: v1.ProtocolMQTTS, Port: 8883}}
		})
		for _, change := range changes {
			change(b)
		}
		Expect(k8sClient.Create(ctx, b)).To(Succeed())
	}

	// tlsCondition returns the broker's TLSReady condition once it has one for the current
	// generation.
	tlsCondition := func(g Gomega) metav1.Condition {
		b := tryFetch(g, ns, "fleet", &v1.MQTTBroker{})
		g.Expect(b.Status.ObservedGeneration).To(Equal(b.Generation))
		c := meta.FindStatusCondition(b.Status.Conditions, v1.ConditionTLSReady)
		g.Expect(c).NotTo(BeNil(), "no TLSReady condition: %v", b.Status.Conditions)
		return *c
	}

	// servingSecret returns a kubernetes.io/tls Secret with a certificate for the broker's
	// names from a CA of its own, as cert-manager or a user would provide it.
	servingSecret := func(name string, b *v1.MQTTBroker) *corev1.Secret {
		GinkgoHelper()
		now := time.Now()
		caCert, caKey, err := builder.NewCA(b, now)
		Expect(err).NotTo(HaveOccurred())
		certPEM, keyPEM, err := builder.IssueServing(b, caCert, caKey, now)
		Expect(err).NotTo(HaveOccurred())
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM, "ca.crt": caCert},
		}
	}

	mountedTLSSecret := func(g Gomega) string {
		sts := tryFetch(g, ns, "fleet", &appsv1.StatefulSet{})
		for _, v := range sts.Spec.Template.Spec.Volumes {
			if v.Name == "tls" && v.Secret != nil {
				return v.Secret.SecretName
			}
		}
		return ""
	}

	It("has cert-manager issue the serving certificate for every pod name when tls.issuerRef is set", func() {
		createBroker(func(b *v1.MQTTBroker) {
			b.Spec.TLS.IssuerRef = &v1.IssuerReference{Name: "fleet-issuer", Kind: "ClusterIssuer"}
		})

		// The Certificate passes cert-manager's own schema and asks for the names the
		// operator's CA would put in the certificate.
		cert := &unstructured.Unstructured{}
		cert.SetGroupVersionKind(certificateGVK)
		eventually(func(g Gomega) { tryFetch(g, ns, "fleet-tls", cert) })
		b := fetch(ns, "fleet", &v1.MQTTBroker{})
		expectOwnedBy(cert, b)
		spec := cert.Object["spec"].(map[string]any)
		Expect(spec["secretName"]).To(Equal("fleet-tls"))
		Expect(spec["issuerRef"]).To(Equal(map[string]any{"name": "fleet-issuer", "kind": "ClusterIssuer", "group": "cert-manager.io"}))
		Expect(spec["dnsNames"]).To(ConsistOf(toAny(builder.ServingDNSNames(b))...))
		Expect(spec["dnsNames"]).To(ContainElements("fleet-0.fleet-peers."+ns+".svc.cluster.local", "fleet-1.fleet-peers."+ns+".svc.cluster.local"))
		Expect(spec["usages"]).To(ContainElements("server auth", "client auth"))
		Expect(spec["duration"]).NotTo(BeEmpty())
		Expect(spec["renewBefore"]).NotTo(BeEmpty())
		// The operator does not issue the certificate itself.
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "fleet-ca"}, &corev1.Secret{})).
			To(Satisfy(apierrors.IsNotFound), "no operator CA while cert-manager issues")

		eventually(func(g Gomega) {
			c := tlsCondition(g)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Message).To(ContainSubstring("waiting for cert-manager to issue Certificate fleet-tls into Secret fleet-tls"))
			g.Expect(mountedTLSSecret(g)).To(Equal("fleet-tls"))
		})

		// cert-manager issues it: the broker is ready with that certificate.
		Expect(k8sClient.Create(ctx, servingSecret("fleet-tls", b))).To(Succeed())
		eventually(func(g Gomega) {
			c := tlsCondition(g)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%s: %s", c.Reason, c.Message)
			g.Expect(c.Message).To(ContainSubstring("Secret fleet-tls is valid until"))
		})

		// Scaling adds the new pod's name to the Certificate, for cert-manager to reissue.
		Expect(patchBroker(fetch(ns, "fleet", &v1.MQTTBroker{}), func(b *v1.MQTTBroker) { b.Spec.Replicas = ptr.To(int32(3)) })).To(Succeed())
		eventually(func(g Gomega) {
			tryFetch(g, ns, "fleet-tls", cert)
			g.Expect(cert.Object["spec"].(map[string]any)["dnsNames"]).To(ContainElement("fleet-2.fleet-peers." + ns + ".svc.cluster.local"))
		})
	})

	It("mounts the user's Secret when tls.secretName is set, reports it missing, and never writes it", func() {
		mark := managerWrites.mark()
		createBroker(func(b *v1.MQTTBroker) { b.Spec.TLS.SecretName = "my-serving-cert" })

		eventually(func(g Gomega) {
			c := tlsCondition(g)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(v1.ReasonReferenceNotFound))
			g.Expect(c.Message).To(ContainSubstring("Secret my-serving-cert (spec.tls.secretName) does not exist"))
			g.Expect(mountedTLSSecret(g)).To(Equal("my-serving-cert"))
		})

		b := fetch(ns, "fleet", &v1.MQTTBroker{})
		Expect(k8sClient.Create(ctx, servingSecret("my-serving-cert", b))).To(Succeed())
		eventually(func(g Gomega) {
			c := tlsCondition(g)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%s: %s", c.Reason, c.Message)
			g.Expect(c.Message).To(ContainSubstring("Secret my-serving-cert is valid until"))
		})
		Expect(objectWrites(mark, "/secrets/my-serving-cert")).To(BeEmpty(), "the operator must not write a Secret the user manages")
		for _, name := range []string{"fleet-ca", "fleet-tls"} {
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{})).
				To(Satisfy(apierrors.IsNotFound), "Secret %s is not needed with a user-managed certificate", name)
		}
	})

	It("keeps a ServiceMonitor for the metrics port while monitoring is enabled, and deletes it when disabled", func() {
		createBroker(func(b *v1.MQTTBroker) {
			b.Spec.Monitoring.Enabled = ptr.To(true)
			b.Spec.Monitoring.ServiceMonitor.Labels = map[string]string{"release": "prometheus"}
		})
		sm := &unstructured.Unstructured{}
		sm.SetGroupVersionKind(builder.ServiceMonitorGVK)
		eventually(func(g Gomega) { tryFetch(g, ns, "fleet", sm) })
		b := fetch(ns, "fleet", &v1.MQTTBroker{})
		expectOwnedBy(sm, b)
		Expect(sm.GetLabels()).To(HaveKeyWithValue("release", "prometheus"))

		// It selects the peers Service, which has the metrics port it names.
		spec := sm.Object["spec"].(map[string]any)
		selector := spec["selector"].(map[string]any)["matchLabels"].(map[string]any)
		endpoints := spec["endpoints"].([]any)
		Expect(endpoints).To(HaveLen(1))
		port := endpoints[0].(map[string]any)["port"]
		var services corev1.ServiceList
		Expect(k8sClient.List(ctx, &services, client.InNamespace(ns), client.MatchingLabels(toStrings(selector)))).To(Succeed())
		Expect(services.Items).To(HaveLen(1), "the ServiceMonitor must select exactly one Service")
		var portNames []string
		for _, p := range services.Items[0].Spec.Ports {
			portNames = append(portNames, p.Name)
		}
		Expect(portNames).To(ContainElement(port))

		// An idle resync leaves it alone.
		waitQuiet()
		mark := managerWrites.mark()
		reconcileBroker(ns, "fleet")
		Expect(objectWrites(mark, "/servicemonitors/")).To(BeEmpty())

		Expect(patchBroker(fetch(ns, "fleet", &v1.MQTTBroker{}), func(b *v1.MQTTBroker) { b.Spec.Monitoring.Enabled = ptr.To(false) })).To(Succeed())
		eventually(func(g Gomega) {
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "fleet"}, sm)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "ServiceMonitor still there: %v", err)
		})
	})
})

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func toStrings(m map[string]any) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v.(string)
	}
	return out
}
