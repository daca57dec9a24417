package controllers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/broker/auth"
	fleetbuilder "github.com/fleetmq/fleetmq/controllers/builder"
)

// Keys of the Secret holding a generated password. They match what MQTT client Helm charts
// and the RabbitMQ/Strimzi operators' user Secrets use, so a pod can mount it unchanged.
const (
	usernameKey = "username"
	passwordKey = "password"
	caCertKey   = "ca.crt"
)

// conflictRetry is how soon a reconcile that lost a write race with another writer (or with
// its own stale cache) runs again.
const conflictRetry = 500 * time.Millisecond

// reasonClientAuthOff: an MQTTUser has a client certificate, but its broker's
// spec.tls.clientAuth is none, so the broker never asks for it.
const reasonClientAuthOff = "ClientAuthDisabled"

// MQTTUserReconciler gives each MQTTUser its credentials: it generates a password into a
// Secret once (never again while the Secret exists), or issues a client certificate from the
// broker's CA and renews it before it expires. It reports whether the user is in effect: the
// broker's password file verifies the user's current password and its ACL file holds the
// user's current lines. The broker's files themselves are written by MQTTBrokerReconciler.
type MQTTUserReconciler struct {
	client.Client
	// Scheme resolves owner references.
	Scheme *runtime.Scheme
	// Recorder emits Events on MQTTUsers; nil emits none.
	Recorder events.EventRecorder
	// Clock tells the time for certificate validity; nil uses the real clock.
	Clock clock.PassiveClock
	// MaxConcurrentReconciles bounds parallel reconciles; 0 uses controller-runtime's default.
	MaxConcurrentReconciles int
	// APIReader reads from the API server past the cache: the data of the Secrets and
	// ConfigMaps users reference, which CacheOptions keeps out of the cache. SetupWithManager defaults it to
	// the manager's.
	APIReader client.Reader

	referenced *userObjects
}

// +kubebuilder:rbac:groups=mqtt.fleetmq.io,resources=mqttusers,verbs=get;list;watch
// +kubebuilder:rbac:groups=mqtt.fleetmq.io,resources=mqttusers/status,verbs=get;patch
// +kubebuilder:rbac:groups=mqtt.fleetmq.io,resources=mqttbrokers,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one MQTTUser's credentials and status up to date.
func (r *MQTTUserReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	u := &v1.MQTTUser{}
	if err := r.Get(ctx, req.NamespacedName, u); err != nil {
		// A deleted user's Secret goes with it through its owner reference.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !u.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	st := userState{username: usernameOf(u)}
	result, err := r.reconcileUser(ctx, u, &st)
	if err != nil {
		if apierrors.IsConflict(err) {
			// The cache was behind a write; try again once it has caught up.
			log.V(1).Info("Conflict writing credentials, retrying", "err", err.Error())
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		st.notReady(v1.ReasonReconcileFailed, "%v", err)
	}
	if serr := r.writeStatus(ctx, u, &st); serr != nil {
		if err == nil {
			err = serr
		}
	}
	return result, err
}

// userState is what a reconcile found out, turned into status at the end.
type userState struct {
	username   string
	secretName string
	reason     string
	message    string
}

func (s *userState) notReady(reason, format string, args ...any) {
	if s.reason != "" {
		return // the first problem found is the one to fix first
	}
	s.reason, s.message = reason, fmt.Sprintf(format, args...)
}

func (r *MQTTUserReconciler) reconcileUser(ctx context.Context, u *v1.MQTTUser, st *userState) (ctrl.Result, error) {
	b := &v1.MQTTBroker{}
	brokerKey := types.NamespacedName{Namespace: u.Namespace, Name: u.Spec.BrokerRef.Name}
	if err := r.Get(ctx, brokerKey, b); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("get MQTTBroker %s: %w", brokerKey, err)
		}
		b = nil
	}

	// The Secrets are written even before the broker exists, so that clients can mount
	// their credentials from the start; a certificate needs the broker's CA, though.
	var password []byte
	var result ctrl.Result
	a := u.Spec.Authentication
	switch {
	case a.PasswordSecretRef != nil:
		p, err := r.referencedPassword(ctx, u, st)
		if err != nil {
			return ctrl.Result{}, err
		}
		password = p
	case a.TLS != nil:
		st.secretName = credentialsSecretName(u)
		if b == nil {
			break
		}
		res, err := r.ensureClientCertificate(ctx, u, b, st)
		if err != nil {
			return ctrl.Result{}, err
		}
		result = res
	default:
		st.secretName = credentialsSecretName(u)
		p, err := r.ensureGeneratedPassword(ctx, u, st)
		if err != nil {
			return ctrl.Result{}, err
		}
		password = p
	}

	if b == nil {
		st.notReady(v1.ReasonBrokerNotFound, "MQTTBroker %s does not exist: create it or fix spec.brokerRef.name", brokerKey)
		return result, nil
	}
	users, err := brokerUsers(ctx, r, u.Namespace, b.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if owner := usernameOwners(users)[st.username]; owner.Name != u.Name {
		st.notReady(v1.ReasonDuplicateUsername,
			"username %q is already used by MQTTUser %s of MQTTBroker %s, created earlier: set another spec.username",
			st.username, owner.Name, b.Name)
		return result, nil
	}
	if err := fleetbuilder.ValidateUser(fleetbuilder.User{Object: u.Name, Username: st.username, ACLs: u.Spec.ACLs}); err != nil {
		// The broker leaves such a user out of its files rather than fail for everyone.
		st.notReady(v1.ReasonACLInvalid, "%v; the broker leaves this user out until it is fixed", err)
		return result, nil
	}
	if b.Spec.Paused {
		st.notReady(v1.ReasonPaused, "MQTTBroker %s is paused: the user's changes reach the broker when spec.paused is false", b.Name)
		return result, nil
	}
	if st.reason != "" {
		return result, nil
	}
	if err := r.checkBrokerFiles(ctx, u, b, password, st); err != nil {
		return ctrl.Result{}, err
	}
	return result, nil
}

// referencedPassword reads the password from the user's own Secret.
func (r *MQTTUserReconciler) referencedPassword(ctx context.Context, u *v1.MQTTUser, st *userState) ([]byte, error) {
	ref := u.Spec.Authentication.PasswordSecretRef
	p, found, err := readPassword(ctx, r.referenced, u.Namespace, ref)
	if err != nil {
		return nil, err
	}
	if !found {
		st.notReady(v1.ReasonReferenceNotFound,
			"Secret %s/%s has no non-empty key %q (spec.authentication.passwordSecretRef): create it, or remove passwordSecretRef to have a password generated",
			u.Namespace, ref.Name, passwordRefKey(ref))
	}
	return p, nil
}

// passwordRefKey is ref's key, defaulted as the API does.
func passwordRefKey(ref *v1.SecretKeyReference) string {
	if ref.Key == "" {
		return passwordKey
	}
	return ref.Key
}

// readPassword returns the password at ref; found is false when the Secret or key is
// missing or the value is empty (an empty password would let anyone in).
func readPassword(ctx context.Context, c *userObjects, ns string, ref *v1.SecretKeyReference) (password []byte, found bool, err error) {
	s := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("get Secret %s/%s: %w", ns, ref.Name, err)
	}
	p := s.Data[passwordRefKey(ref)]
	return p, len(p) > 0, nil
}

// ensureGeneratedPassword creates the user's credentials Secret with a random password the
// first time, and afterwards keeps the password it holds: regenerating would lock out every
// client that already uses it. Only the username key follows spec.username.
func (r *MQTTUserReconciler) ensureGeneratedPassword(ctx context.Context, u *v1.MQTTUser, st *userState) ([]byte, error) {
	key := types.NamespacedName{Namespace: u.Namespace, Name: st.secretName}
	s := &corev1.Secret{}
	err := r.Get(ctx, key, s)
	switch {
	case apierrors.IsNotFound(err):
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: u.Namespace, Name: st.secretName, Labels: userSecretLabels(u)},
			Type:       corev1.SecretTypeOpaque,
			Data: map[string][]byte{
				usernameKey: []byte(st.username),
				// 26 base32 characters: 130 bits from crypto/rand.
				passwordKey: []byte(rand.Text()),
			},
		}
		if err := controllerutil.SetControllerReference(u, s, r.Scheme); err != nil {
			return nil, fmt.Errorf("own Secret %s: %w", key, err)
		}
		if err := r.Create(ctx, s); err != nil {
			return nil, fmt.Errorf("create Secret %s for the generated password: %w", key, err)
		}
		r.event(u, corev1.EventTypeNormal, v1.ReasonPasswordGenerated, "Generate",
			"Generated a password into Secret %s", st.secretName)
		return s.Data[passwordKey], nil
	case err != nil:
		return nil, fmt.Errorf("get Secret %s: %w", key, err)
	}

	if !metav1.IsControlledBy(s, u) {
		// A Secret someone else made (restored from a backup, or sealed-secrets): use the
		// password it holds, and never overwrite or adopt it.
		if len(s.Data[passwordKey]) == 0 {
			st.notReady(v1.ReasonReconcileFailed,
				"Secret %s exists, is not managed by this MQTTUser and has no %q key: delete it to have a password generated, or set spec.authentication.generate.secretName",
				key, passwordKey)
		}
		return s.Data[passwordKey], nil
	}
	password := s.Data[passwordKey]
	if len(password) > 0 && string(s.Data[usernameKey]) == st.username {
		return password, nil
	}
	// Only a changed username, or a password key emptied by hand, brings us here.
	if len(password) == 0 {
		password = []byte(rand.Text())
		r.event(u, corev1.EventTypeNormal, v1.ReasonPasswordGenerated, "Generate",
			"Generated a new password into Secret %s, whose password key was empty", st.secretName)
	}
	updated := s.DeepCopy()
	if updated.Data == nil {
		updated.Data = map[string][]byte{}
	}
	updated.Data[usernameKey] = []byte(st.username)
	updated.Data[passwordKey] = password
	if err := r.Update(ctx, updated); err != nil {
		return nil, fmt.Errorf("update Secret %s: %w", key, err)
	}
	return password, nil
}

// userSecretLabels mark the Secrets the operator writes for an MQTTUser.
func userSecretLabels(u *v1.MQTTUser) map[string]string {
	return map[string]string{
		"app.kubernetes.io/managed-by": "fleetmq-operator",
		"app.kubernetes.io/component":  "mqtt-user",
		"app.kubernetes.io/instance":   u.Spec.BrokerRef.Name,
		"mqtt.fleetmq.io/user":         u.Name,
	}
}

// ensureClientCertificate issues the user's client certificate from the broker's operator CA
// into a kubernetes.io/tls Secret, and renews it when it nears expiry, when the CA changed
// or when the username (its common name) changed.
func (r *MQTTUserReconciler) ensureClientCertificate(ctx context.Context, u *v1.MQTTUser, b *v1.MQTTBroker, st *userState) (ctrl.Result, error) {
	if !tlsEnabled(b) || b.Spec.TLS.IssuerRef != nil || b.Spec.TLS.SecretName != "" {
		st.notReady(v1.ReasonCertificateFailed,
			"client certificates are issued by the operator CA of MQTTBroker %s, which it has only with spec.tls enabled and neither issuerRef nor secretName set",
			b.Name)
		return ctrl.Result{}, nil
	}
	ca := &corev1.Secret{}
	caKey := types.NamespacedName{Namespace: b.Namespace, Name: fleetbuilder.CAName(b)}
	if err := r.Get(ctx, caKey, ca); err != nil {
		if apierrors.IsNotFound(err) {
			st.notReady(v1.ReasonCertificateFailed, "waiting for MQTTBroker %s to create its CA Secret %s", b.Name, caKey.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get CA Secret %s: %w", caKey, err)
	}
	caCert, caPriv := ca.Data[corev1.TLSCertKey], ca.Data[corev1.TLSPrivateKeyKey]

	cert := u.Spec.Authentication.TLS
	duration, renewBefore := 2160*time.Hour, 720*time.Hour
	if cert.Duration != nil {
		duration = cert.Duration.Duration
	}
	if cert.RenewBefore != nil {
		renewBefore = cert.RenewBefore.Duration
	}
	now := r.now()

	key := types.NamespacedName{Namespace: u.Namespace, Name: st.secretName}
	s := &corev1.Secret{}
	exists := true
	if err := r.Get(ctx, key, s); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("get Secret %s: %w", key, err)
		}
		exists = false
	}
	if exists && !metav1.IsControlledBy(s, u) {
		st.notReady(v1.ReasonCertificateFailed,
			"Secret %s exists and is not managed by this MQTTUser: delete it, or set spec.authentication.tls.secretName to another name", key)
		return ctrl.Result{}, nil
	}

	renew, why := true, "no certificate yet"
	if exists {
		renew, why = fleetbuilder.NeedsRenewal(s.Data[corev1.TLSCertKey], caCert, nil, now, renewBefore)
		if !renew && commonName(s.Data[corev1.TLSCertKey]) != st.username {
			renew, why = true, "the username changed"
		}
		if !renew && !bytes.Equal(s.Data[caCertKey], caCert) {
			renew, why = true, "the CA bundle is stale"
		}
	}
	if renew {
		certPEM, keyPEM, err := fleetbuilder.IssueClient(b, st.username, caCert, caPriv, now, duration)
		if err != nil {
			st.notReady(v1.ReasonCertificateFailed, "issuing the client certificate from Secret %s failed: %v", caKey.Name, err)
			return ctrl.Result{}, nil
		}
		desired := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: u.Namespace, Name: st.secretName, Labels: userSecretLabels(u)},
			Type:       corev1.SecretTypeTLS,
			Data: map[string][]byte{
				corev1.TLSCertKey:       certPEM,
				corev1.TLSPrivateKeyKey: keyPEM,
				caCertKey:               caCert,
			},
		}
		if exists {
			updated := s.DeepCopy()
			updated.Data = desired.Data
			if err := r.Update(ctx, updated); err != nil {
				return ctrl.Result{}, fmt.Errorf("update Secret %s with a renewed client certificate: %w", key, err)
			}
			r.event(u, corev1.EventTypeNormal, v1.ReasonCertificateIssued, "Renew",
				"Renewed the client certificate in Secret %s: %s", st.secretName, why)
		} else {
			if err := controllerutil.SetControllerReference(u, desired, r.Scheme); err != nil {
				return ctrl.Result{}, fmt.Errorf("own Secret %s: %w", key, err)
			}
			if err := r.Create(ctx, desired); err != nil {
				return ctrl.Result{}, fmt.Errorf("create Secret %s for the client certificate: %w", key, err)
			}
			r.event(u, corev1.EventTypeNormal, v1.ReasonCertificateIssued, "Issue",
				"Issued a client certificate into Secret %s", st.secretName)
		}
		s = desired
	}
	if b.Spec.TLS.ClientAuth == "" || b.Spec.TLS.ClientAuth == v1.ClientAuthNone {
		st.notReady(reasonClientAuthOff,
			"the client certificate is in Secret %s, but MQTTBroker %s does not ask for client certificates: set its spec.tls.clientAuth to request or require",
			st.secretName, b.Name)
	}
	notAfter, err := fleetbuilder.NotAfter(s.Data[corev1.TLSCertKey])
	if err != nil {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: requeueUntil(notAfter.Add(-renewBefore), now)}, nil
}

// requeueUntil is how long to wait until at, at least a minute (a clock skew must not spin
// the reconciler) and at most a day (a resync catches anything missed meanwhile).
func requeueUntil(at, now time.Time) time.Duration {
	d := at.Sub(now)
	return min(max(d, time.Minute), 24*time.Hour)
}

// commonName returns the subject common name of a PEM certificate, or "".
func commonName(certPEM []byte) string {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return ""
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ""
	}
	return c.Subject.CommonName
}

// checkBrokerFiles reports whether the broker has put the user into effect: its password
// file verifies the user's current password and its ACL file holds the user's current
// section. Only then is the user Ready.
func (r *MQTTUserReconciler) checkBrokerFiles(ctx context.Context, u *v1.MQTTUser, b *v1.MQTTBroker, password []byte, st *userState) error {
	if password != nil {
		users := &corev1.Secret{}
		key := types.NamespacedName{Namespace: b.Namespace, Name: fleetbuilder.UsersName(b)}
		if err := r.Get(ctx, key, users); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("get Secret %s: %w", key, err)
		}
		pf, err := auth.ParsePasswordFile(key.Name, users.Data[fleetbuilder.PasswdKey])
		if err != nil || !pf.Verify(st.username, password) {
			st.notReady(v1.ReasonReconciling, "waiting for MQTTBroker %s to put the current password into Secret %s", b.Name, key.Name)
			return nil
		}
	}

	acl := &corev1.ConfigMap{}
	key := types.NamespacedName{Namespace: b.Namespace, Name: fleetbuilder.ACLName(b)}
	if err := r.Get(ctx, key, acl); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("get ConfigMap %s: %w", key, err)
	}
	section, err := userACLSection(u, st.username)
	if err != nil {
		st.notReady(v1.ReasonACLInvalid, "%v", err)
		return nil
	}
	content := acl.Data[fleetbuilder.ACLKey]
	if !strings.Contains(content, section+"\n") && !strings.HasSuffix(content, section) {
		st.notReady(v1.ReasonReconciling, "waiting for MQTTBroker %s to put the user's ACL into ConfigMap %s", b.Name, key.Name)
	}
	return nil
}

// userACLSection renders u's section of the ACL file exactly as the broker's ACL renders it
// (the builder renders both), from its "# MQTTUser" comment to its last line.
func userACLSection(u *v1.MQTTUser, username string) (string, error) {
	alone := &v1.MQTTBroker{ObjectMeta: metav1.ObjectMeta{Namespace: u.Namespace, Name: u.Spec.BrokerRef.Name}}
	acl, err := fleetbuilder.RenderACL(alone, []fleetbuilder.User{{Object: u.Name, Username: username, ACLs: u.Spec.ACLs}}, nil)
	if err != nil {
		return "", fmt.Errorf("the ACL of MQTTUser %s cannot be rendered: %w", u.Name, err)
	}
	text := string(acl)
	i := strings.Index(text, "# MQTTUser "+u.Name+"\n")
	if i < 0 {
		return "", fmt.Errorf("the ACL of MQTTUser %s renders without its section", u.Name)
	}
	return text[i:], nil
}

// writeStatus writes the user's status when it changed, and only then.
func (r *MQTTUserReconciler) writeStatus(ctx context.Context, u *v1.MQTTUser, st *userState) error {
	next := u.Status.DeepCopy()
	next.ObservedGeneration = u.Generation
	next.Username = st.username
	next.SecretName = st.secretName
	cond := metav1.Condition{
		Type:               v1.ConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             v1.ReasonReconciled,
		Message:            "the user's credentials and ACL are in the broker's files",
		ObservedGeneration: u.Generation,
	}
	if st.reason != "" {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, st.reason, st.message
	}
	if u.Spec.Authentication.TLS != nil && st.reason == "" {
		cond.Message = "the client certificate is in Secret " + st.secretName + " and the user's ACL is in the broker's files"
	}
	// SetStatusCondition keeps lastTransitionTime unless the status flips; feed it our clock.
	cond.LastTransitionTime = metav1.NewTime(r.now())
	meta.SetStatusCondition(&next.Conditions, cond)
	if equality.Semantic.DeepEqual(&u.Status, next) {
		return nil
	}
	patched := u.DeepCopy()
	patched.Status = *next
	if err := r.Status().Patch(ctx, patched, client.MergeFrom(u)); err != nil {
		return fmt.Errorf("update status of MQTTUser %s: %w", klog.KObj(u), err)
	}
	return nil
}

func (r *MQTTUserReconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

func (r *MQTTUserReconciler) event(u *v1.MQTTUser, eventType, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(u, nil, eventType, reason, action, note, args...)
	}
}

// SetupWithManager registers the reconciler and its watches with mgr.
func (r *MQTTUserReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := ensureIndexes(context.Background(), mgr); err != nil {
		return err
	}
	if r.Scheme == nil {
		r.Scheme = mgr.GetScheme()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	r.referenced = newUserObjects(r.Client, r.APIReader)
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1.MQTTUser{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}).
		// The broker's existence, pause and TLS settings decide the user's readiness.
		Watches(&v1.MQTTBroker{}, handler.EnqueueRequestsFromMapFunc(r.usersOfBroker)).
		// A referenced password Secret, and the broker's CA, users Secret and ACL ConfigMap.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.usersOfSecret)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.usersOfBrokerFile)).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Named("mqttuser").
		Complete(r)
}

// usersOfBroker maps an MQTTBroker to its MQTTUsers.
func (r *MQTTUserReconciler) usersOfBroker(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.usersMatching(ctx, obj.GetNamespace(), client.MatchingFields{userBrokerIndex: obj.GetName()})
}

// usersOfSecret maps a Secret to the users that reference it or, for a broker's CA and
// users Secret, to every user of that broker.
func (r *MQTTUserReconciler) usersOfSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	reqs := r.usersMatching(ctx, obj.GetNamespace(), client.MatchingFields{userSecretIndex: obj.GetName()})
	if b := controllingBroker(obj); b != "" {
		broker := &v1.MQTTBroker{ObjectMeta: metav1.ObjectMeta{Name: b}}
		if n := obj.GetName(); n == fleetbuilder.CAName(broker) || n == fleetbuilder.UsersName(broker) {
			reqs = append(reqs, r.usersMatching(ctx, obj.GetNamespace(), client.MatchingFields{userBrokerIndex: b})...)
		}
	}
	return reqs
}

// usersOfBrokerFile maps a broker's ACL ConfigMap to every user of that broker.
func (r *MQTTUserReconciler) usersOfBrokerFile(ctx context.Context, obj client.Object) []reconcile.Request {
	b := controllingBroker(obj)
	if b == "" || obj.GetName() != fleetbuilder.ACLName(&v1.MQTTBroker{ObjectMeta: metav1.ObjectMeta{Name: b}}) {
		return nil
	}
	return r.usersMatching(ctx, obj.GetNamespace(), client.MatchingFields{userBrokerIndex: b})
}

func (r *MQTTUserReconciler) usersMatching(ctx context.Context, ns string, fields client.MatchingFields) []reconcile.Request {
	var list v1.MQTTUserList
	if err := r.List(ctx, &list, client.InNamespace(ns), fields); err != nil {
		logf.FromContext(ctx).Error(err, "Listing MQTTUsers for a watch event failed", "namespace", ns)
		return nil
	}
	names := make([]string, 0, len(list.Items))
	for _, u := range list.Items {
		names = append(names, u.Name)
	}
	return requestsFor(ns, names...)
}
