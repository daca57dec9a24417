package controllers

import (
	"crypto/x509"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/broker/auth"
	"github.com/fleetmq/fleetmq/controllers/builder"
)

// testUserReconciler is the MQTTUser reconciler the suite's manager runs.
var testUserReconciler *MQTTUserReconciler

func init() {
	reconcilerSetups = append(reconcilerSetups, func(mgr ctrl.Manager) error {
		testUserReconciler = &MQTTUserReconciler{
			Client:                  mgr.GetClient(),
			Scheme:                  mgr.GetScheme(),
			Recorder:                &recordedEvents{next: mgr.GetEventRecorder("fleetmq-operator")},
			MaxConcurrentReconciles: 4,
		}
		return testUserReconciler.SetupWithManager(mgr)
	})
}

// userReady waits for the user's Ready condition to have status and reason, and returns
// the user.
func userReady(ns, name string, status metav1.ConditionStatus, reason string) *v1.MQTTUser {
	GinkgoHelper()
	u := &v1.MQTTUser{}
	eventually(func(g Gomega) {
		tryFetch(g, ns, name, u)
		g.Expect(u.Status.ObservedGeneration).To(Equal(u.Generation))
		c := meta.FindStatusCondition(u.Status.Conditions, v1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(status), "Ready: %s", c.Message)
		g.Expect(c.Reason).To(Equal(reason), "Ready: %s", c.Message)
	})
	return u
}

// brokerPasswords parses the broker's password file.
func brokerPasswords(g Gomega, ns, broker string) *auth.PasswordFile {
	s := tryFetch(g, ns, broker+"-users", &corev1.Secret{})
	pf, err := auth.ParsePasswordFile("passwd", s.Data[builder.PasswdKey])
	g.Expect(err).NotTo(HaveOccurred())
	return pf
}

var _ = Describe("MQTTUser controller", func() {
	var ns string
	BeforeEach(func() { ns = newTestNamespace() })

	createBroker := func(changes ...func(*v1.MQTTBroker)) {
		GinkgoHelper()
		Expect(k8sClient.Create(ctx, newBroker(ns, "fleet", changes...))).To(Succeed())
		waitSynced(ns, "fleet")
	}

	It("generates a password once, keeps it, and generates a new one only when its Secret is deleted", func() {
		createBroker()
		Expect(k8sClient.Create(ctx, newUser(ns, "sensor"))).To(Succeed())

		u := userReady(ns, "sensor", metav1.ConditionTrue, v1.ReasonReconciled)
		Expect(u.Status.SecretName).To(Equal("sensor-mqtt-credentials"))
		Expect(u.Status.Username).To(Equal("sensor"))
		s := fetch(ns, "sensor-mqtt-credentials", &corev1.Secret{})
		Expect(metav1.IsControlledBy(s, u)).To(BeTrue(), "the Secret goes with its MQTTUser")
		Expect(string(s.Data["username"])).To(Equal("sensor"))
		password := s.Data["password"]
		Expect(len(password)).To(BeNumerically(">=", 20))
		eventually(func(g Gomega) {
			g.Expect(brokerPasswords(g, ns, "fleet").Verify("sensor", password)).To(BeTrue())
		})

		// Resyncs never regenerate.
		for range 2 {
			_, err := testUserReconciler.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(u)})
			Expect(err).NotTo(HaveOccurred())
		}
		Expect(fetch(ns, "sensor-mqtt-credentials", &corev1.Secret{}).Data["password"]).To(Equal(password))

		// A new username keeps the password.
		patchUser(ns, "sensor", func(u *v1.MQTTUser) { u.Spec.Username = "sensor-7" })
		eventually(func(g Gomega) {
			s := tryFetch(g, ns, "sensor-mqtt-credentials", &corev1.Secret{})
			g.Expect(string(s.Data["username"])).To(Equal("sensor-7"))
			g.Expect(s.Data["password"]).To(Equal(password))
			pf := brokerPasswords(g, ns, "fleet")
			g.Expect(pf.Verify("sensor-7", password)).To(BeTrue())
			g.Expect(pf.Has("sensor")).To(BeFalse())
		})
		userReady(ns, "sensor", metav1.ConditionTrue, v1.ReasonReconciled)

		// Deleting the Secret asks for a new password.
		Expect(k8sClient.Delete(ctx, fetch(ns, "sensor-mqtt-credentials", &corev1.Secret{}))).To(Succeed())
		eventually(func(g Gomega) {
			s := tryFetch(g, ns, "sensor-mqtt-credentials", &corev1.Secret{})
			g.Expect(s.Data["password"]).NotTo(BeEmpty())
			g.Expect(s.Data["password"]).NotTo(Equal(password))
			pf := brokerPasswords(g, ns, "fleet")
			g.Expect(pf.Verify("sensor-7", s.Data["password"])).To(BeTrue())
			g.Expect(pf.Verify("sensor-7", password)).To(BeFalse())
		})
	})

	It("takes a password from a referenced Secret, and waits for it when it is missing", func() {
		createBroker()
		Expect(k8sClient.Create(ctx, newUser(ns, "meter", func(u *v1.MQTTUser) {
			u.Spec.Authentication.PasswordSecretRef = &v1.SecretKeyReference{Name: "meter-password", Key: "pw"}
		}))).To(Succeed())
		u := userReady(ns, "meter", metav1.ConditionFalse, v1.ReasonReferenceNotFound)
		Expect(meta.FindStatusCondition(u.Status.Conditions, v1.ConditionReady).Message).To(ContainSubstring(ns + "/meter-password"))
		Expect(u.Status.SecretName).To(BeEmpty())

		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "meter-password"},
			Data:       map[string][]byte{"pw": []byte("correct horse")},
		})).To(Succeed())
		userReady(ns, "meter", metav1.ConditionTrue, v1.ReasonReconciled)
		eventually(func(g Gomega) {
			g.Expect(brokerPasswords(g, ns, "fleet").Verify("meter", []byte("correct horse"))).To(BeTrue())
		})
	})

	It("issues a client certificate from the broker's CA and renews it before it expires", func() {
		createBroker(func(b *v1.MQTTBroker) { b.Spec.TLS.ClientAuth = v1.ClientAuthRequire })
		Expect(k8sClient.Create(ctx, newUser(ns, "device", func(u *v1.MQTTUser) {
			u.Spec.Authentication.TLS = &v1.ClientCertificate{}
			u.Spec.ACLs = []v1.ACLRule{{Topic: "devices/device/#", Access: v1.ACLReadWrite}}
		}))).To(Succeed())

		u := userReady(ns, "device", metav1.ConditionTrue, v1.ReasonReconciled)
		Expect(u.Status.SecretName).To(Equal("device-mqtt-tls"))
		s := fetch(ns, "device-mqtt-tls", &corev1.Secret{})
		Expect(s.Type).To(Equal(corev1.SecretTypeTLS))
		Expect(metav1.IsControlledBy(s, u)).To(BeTrue())
		ca := fetch(ns, "fleet-ca", &corev1.Secret{})
		Expect(s.Data["ca.crt"]).To(Equal(ca.Data[corev1.TLSCertKey]))
		cert := parseCert(s.Data[corev1.TLSCertKey])
		Expect(cert.Subject.CommonName).To(Equal("device"))
		Expect(cert.ExtKeyUsage).To(ContainElement(x509.ExtKeyUsageClientAuth))
		Expect(cert.CheckSignatureFrom(parseCert(ca.Data[corev1.TLSCertKey]))).To(Succeed())
		Expect(cert.NotAfter).To(BeTemporally("~", time.Now().Add(2160*time.Hour), time.Hour))

		// A certificate-only user has ACL lines and no password line.
		eventually(func(g Gomega) {
			g.Expect(brokerPasswords(g, ns, "fleet").Has("device")).To(BeFalse())
			acl := tryFetch(g, ns, "fleet-acl", &corev1.ConfigMap{}).Data[builder.ACLKey]
			g.Expect(acl).To(ContainSubstring("user device\ntopic readwrite devices/device/#\n"))
		})

		// One hour left of a certificate issued long ago: inside renewBefore.
		b := fetch(ns, "fleet", &v1.MQTTBroker{})
		old, oldKey, err := builder.IssueClient(b, "device", ca.Data[corev1.TLSCertKey], ca.Data[corev1.TLSPrivateKeyKey],
			time.Now().Add(-2159*time.Hour), 2160*time.Hour)
		Expect(err).NotTo(HaveOccurred())
		s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey] = old, oldKey
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		eventually(func(g Gomega) {
			renewed := tryFetch(g, ns, "device-mqtt-tls", &corev1.Secret{})
			g.Expect(parseCert(renewed.Data[corev1.TLSCertKey]).NotAfter).To(BeTemporally(">", time.Now().Add(1000*time.Hour)))
			g.Expect(renewed.Data[corev1.TLSPrivateKeyKey]).NotTo(Equal(oldKey))
		})
	})

	It("says when the broker does not ask for client certificates", func() {
		createBroker() // clientAuth defaults to none
		Expect(k8sClient.Create(ctx, newUser(ns, "device", func(u *v1.MQTTUser) {
			u.Spec.Authentication.TLS = &v1.ClientCertificate{}
		}))).To(Succeed())
		u := userReady(ns, "device", metav1.ConditionFalse, reasonClientAuthOff)
		Expect(meta.FindStatusCondition(u.Status.Conditions, v1.ConditionReady).Message).To(ContainSubstring("spec.tls.clientAuth"))
		Expect(fetch(ns, "device-mqtt-tls", &corev1.Secret{}).Data[corev1.TLSCertKey]).NotTo(BeEmpty())
	})

	It("reports a broker that does not exist, and still generates the password", func() {
		Expect(k8sClient.Create(ctx, newUser(ns, "lost", func(u *v1.MQTTUser) { u.Spec.BrokerRef.Name = "nowhere" }))).To(Succeed())
		u := userReady(ns, "lost", metav1.ConditionFalse, v1.ReasonBrokerNotFound)
		Expect(meta.FindStatusCondition(u.Status.Conditions, v1.ConditionReady).Message).To(ContainSubstring(ns + "/nowhere"))
		Expect(fetch(ns, "lost-mqtt-credentials", &corev1.Secret{}).Data["password"]).NotTo(BeEmpty())
	})

	It("keeps a username with the older of two users that claim it", func() {
		createBroker()
		Expect(k8sClient.Create(ctx, newUser(ns, "first", func(u *v1.MQTTUser) {
			u.Spec.Username = "shared"
			u.Spec.ACLs = []v1.ACLRule{{Topic: "first/#", Access: v1.ACLRead}}
		}))).To(Succeed())
		userReady(ns, "first", metav1.ConditionTrue, v1.ReasonReconciled)
		// Creation timestamps have a resolution of one second.
		time.Sleep(1100 * time.Millisecond)
		Expect(k8sClient.Create(ctx, newUser(ns, "second", func(u *v1.MQTTUser) {
			u.Spec.Username = "shared"
			u.Spec.ACLs = []v1.ACLRule{{Topic: "second/#", Access: v1.ACLRead}}
		}))).To(Succeed())

		u := userReady(ns, "second", metav1.ConditionFalse, v1.ReasonDuplicateUsername)
		Expect(meta.FindStatusCondition(u.Status.Conditions, v1.ConditionReady).Message).To(ContainSubstring("MQTTUser first"))
		userReady(ns, "first", metav1.ConditionTrue, v1.ReasonReconciled)
		first := fetch(ns, "first-mqtt-credentials", &corev1.Secret{}).Data["password"]
		eventually(func(g Gomega) {
			acl := tryFetch(g, ns, "fleet-acl", &corev1.ConfigMap{}).Data[builder.ACLKey]
			g.Expect(strings.Count(acl, "user shared\n")).To(Equal(1))
			g.Expect(acl).To(ContainSubstring("first/#"))
			g.Expect(acl).NotTo(ContainSubstring("second/#"))
			g.Expect(brokerPasswords(g, ns, "fleet").Verify("shared", first)).To(BeTrue())
		})

		// When the older one goes, the username passes to the other.
		Expect(k8sClient.Delete(ctx, fetch(ns, "first", &v1.MQTTUser{}))).To(Succeed())
		userReady(ns, "second", metav1.ConditionTrue, v1.ReasonReconciled)
	})
})
