package controllers

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/controllers/builder"
)

// certificateGVK is cert-manager's Certificate, used as unstructured so that the operator
// neither imports cert-manager nor needs its CRDs unless a broker sets tls.issuerRef.
var certificateGVK = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}

// tlsOutcome is what the TLS phase found, for the TLSReady condition and status.tls.
type tlsOutcome struct {
	status   metav1.ConditionStatus
	reason   string
	message  string
	notAfter *time.Time
}

// reconcileTLS makes sure the broker has a serving certificate, by the means spec.tls
// chooses, and records when the next renewal is due.
func (r *MQTTBrokerReconciler) reconcileTLS(ctx context.Context, s *brokerScope) error {
	b := s.broker
	switch {
	case !tlsEnabled(b):
		s.tls = &tlsOutcome{status: metav1.ConditionFalse, reason: v1.ReasonTLSDisabled,
			message: "spec.tls.enabled is false: listeners and peer links use plain text"}
		return nil
	case b.Spec.TLS.SecretName != "":
		return r.observeUserTLS(ctx, s)
	case b.Spec.TLS.IssuerRef != nil:
		return r.reconcileCertManagerTLS(ctx, s)
	}
	return r.reconcileOperatorTLS(ctx, s)
}

// reconcileOperatorTLS runs the broker's own CA: it creates the CA once, then issues the
// serving certificate from it whenever builder.NeedsRenewal says so (missing, near expiry,
// a pod name missing after a scale-up, or a replaced CA). The broker pods reload the files,
// so renewal restarts nothing.
func (r *MQTTBrokerReconciler) reconcileOperatorTLS(ctx context.Context, s *brokerScope) error {
	b := s.broker
	caName := builder.CAName(b)
	ca := &corev1.Secret{}
	var caCert, caKey []byte
	var renewedCAFrom *time.Time // the old expiry, when the CA certificate was renewed here
	err := r.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: caName}, ca)
	switch {
	case apierrors.IsNotFound(err):
		if caCert, caKey, err = builder.NewCA(b, s.now); err != nil {
			s.tls = tlsFailed(v1.ReasonCertificateFailed, "creating the CA failed: %v", err)
			return nil
		}
	case err != nil:
		return fmt.Errorf("get CA Secret %s/%s: %w", b.Namespace, caName, err)
	default:
		caCert, caKey = ca.Data[corev1.TLSCertKey], ca.Data[corev1.TLSPrivateKeyKey]
		caNotAfter, perr := builder.NotAfter(caCert)
		if perr != nil || len(caKey) == 0 {
			// Replacing a CA invalidates every client certificate and every client that
			// pinned it: that is a person's decision, not the operator's.
			s.tls = tlsFailed(v1.ReasonCertificateFailed,
				"Secret %s holds no valid CA certificate and key: delete it to have a new CA created (clients that trust the old CA then need the new one)", caName)
			return nil
		}
		caRenewAt := caNotAfter.Add(-builder.CARenewBefore)
		if !s.now.Before(caRenewAt) {
			// Renewing keeps the key, so nothing issued or trusted so far breaks.
			renewed, err := builder.RenewCA(caCert, caKey, s.now)
			if err != nil {
				s.tls = tlsFailed(v1.ReasonCertificateFailed, "renewing the CA certificate in Secret %s failed: %v", caName, err)
				return nil
			}
			caCert, renewedCAFrom = renewed, &caNotAfter
			caRenewAt = s.now.Add(builder.CAValidity - builder.CARenewBefore)
		}
		s.requeueAfter(requeueUntil(caRenewAt, s.now))
	}
	// Ensure the CA Secret with the content it has: created once, otherwise only labels
	// and ownership are kept right.
	caSecret := builder.CASecret(b, caCert, caKey)
	caSecret.ResourceVersion = ca.ResourceVersion // written only over the version read above
	if err := r.apply(ctx, s, caSecret); err != nil {
		return err
	}
	if renewedCAFrom != nil {
		caNotAfter, _ := builder.NotAfter(caCert)
		r.event(b, corev1.EventTypeNormal, v1.ReasonCertificateIssued, "RenewCA",
			"Renewed the CA certificate in Secret %s with the same key; it is valid until %s. Certificates it issued stay valid, and clients that trust the old CA certificate keep working until it expires at %s: give them the new ca.crt before then",
			caName, caNotAfter.UTC().Format(time.RFC3339), renewedCAFrom.UTC().Format(time.RFC3339))
	}

	tlsName := builder.TLSName(b)
	live := &corev1.Secret{}
	exists := true
	if err := r.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: tlsName}, live); err != nil {
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("get TLS Secret %s/%s: %w", b.Namespace, tlsName, err)
		}
		exists = false
	}
	certPEM, keyPEM := live.Data[corev1.TLSCertKey], live.Data[corev1.TLSPrivateKeyKey]
	renewBefore := builder.RenewBefore(b)
	renew, why := true, "no serving certificate yet"
	if exists {
		renew, why = builder.NeedsRenewal(certPEM, caCert, builder.ServingDNSNames(b), s.now, renewBefore)
		if !renew && len(keyPEM) == 0 {
			renew, why = true, "the private key is missing"
		}
		if !renew && !bytes.Equal(live.Data[builder.CAKey], caCert) {
			renew, why = true, "its CA bundle is not the current CA"
		}
	}
	if renew {
		if certPEM, keyPEM, err = builder.IssueServing(b, caCert, caKey, s.now); err != nil {
			s.tls = tlsFailed(v1.ReasonCertificateFailed, "issuing the serving certificate failed: %v", err)
			return nil
		}
	}
	tlsSecret := builder.TLSSecret(b, certPEM, keyPEM, caCert)
	// The certificate carried forward is the one read above: written only over that
	// version, so that a change made since (by a person, or by our own previous write
	// reaching the cache late) is read and judged first instead of being overwritten.
	tlsSecret.ResourceVersion = live.ResourceVersion
	if err := r.apply(ctx, s, tlsSecret); err != nil {
		return err
	}
	notAfter, err := builder.NotAfter(certPEM)
	if err != nil {
		s.tls = tlsFailed(v1.ReasonCertificateFailed, "the issued serving certificate does not parse: %v", err)
		return nil
	}
	if renew && exists {
		r.event(b, corev1.EventTypeNormal, v1.ReasonCertificateIssued, "Renew",
			"Renewed the serving certificate in Secret %s (%s); it is valid until %s", tlsName, why, notAfter.UTC().Format(time.RFC3339))
	}
	renewAt := notAfter.Add(-renewBefore)
	s.tls = &tlsOutcome{status: metav1.ConditionTrue, reason: v1.ReasonCertificateIssued, notAfter: &notAfter,
		message: fmt.Sprintf("the serving certificate in Secret %s is valid until %s and is renewed from %s",
			tlsName, notAfter.UTC().Format(time.RFC3339), renewAt.UTC().Format(time.RFC3339))}
	s.requeueAfter(requeueUntil(renewAt, s.now))
	return nil
}

// observeUserTLS checks the Secret the user manages (spec.tls.secretName). The operator
// never writes it; a watch on it brings the broker back here when it changes.
func (r *MQTTBrokerReconciler) observeUserTLS(ctx context.Context, s *brokerScope) error {
	b := s.broker
	name := b.Spec.TLS.SecretName
	secret := &corev1.Secret{}
	if err := r.referenced.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			s.tls = tlsFailed(v1.ReasonReferenceNotFound,
				"Secret %s (spec.tls.secretName) does not exist: create a kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt", name)
			return nil
		}
		return fmt.Errorf("get TLS Secret %s/%s: %w", b.Namespace, name, err)
	}
	s.tls = observeCertificate(name, secret.Data[corev1.TLSCertKey], s.now, builder.RenewBefore(b),
		"the operator does not renew a Secret you manage: replace its certificate before then")
	return nil
}

// reconcileCertManagerTLS has cert-manager issue the serving certificate: it keeps a
// Certificate named <name>-tls, whose Secret the pods mount.
func (r *MQTTBrokerReconciler) reconcileCertManagerTLS(ctx context.Context, s *brokerScope) error {
	b := s.broker
	installed, err := r.kinds.served(r.RESTMapper(), certificateGVK, s.now)
	if err != nil {
		return err
	}
	if !installed {
		s.tls = tlsFailed(v1.ReasonCertManagerMissing,
			"spec.tls.issuerRef needs cert-manager, whose Certificate kind is not served: install cert-manager, or remove issuerRef to use the operator's CA")
		return nil
	}
	if err := r.apply(ctx, s, certificate(b)); err != nil {
		return err
	}
	name := builder.TLSName(b)
	secret := &corev1.Secret{}
	if err := r.referenced.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			s.tls = &tlsOutcome{status: metav1.ConditionFalse, reason: v1.ReasonReconciling,
				message: fmt.Sprintf("waiting for cert-manager to issue Certificate %s into Secret %s", name, name)}
			return nil
		}
		return fmt.Errorf("get TLS Secret %s/%s: %w", b.Namespace, name, err)
	}
	s.tls = observeCertificate(name, secret.Data[corev1.TLSCertKey], s.now, builder.RenewBefore(b),
		"cert-manager renews it")
	return nil
}

// observeCertificate reports on a certificate someone else renews.
func observeCertificate(secret string, certPEM []byte, now time.Time, renewBefore time.Duration, renewal string) *tlsOutcome {
	notAfter, err := builder.NotAfter(certPEM)
	if err != nil {
		return tlsFailed(v1.ReasonCertificateFailed, "Secret %s has no valid certificate under tls.crt: %v", secret, err)
	}
	at := notAfter.UTC().Format(time.RFC3339)
	if !now.Before(notAfter) {
		return tlsFailed(v1.ReasonCertificateFailed, "the certificate in Secret %s expired at %s; %s", secret, at, renewal)
	}
	out := &tlsOutcome{status: metav1.ConditionTrue, reason: v1.ReasonCertificateIssued, notAfter: &notAfter,
		message: fmt.Sprintf("the serving certificate in Secret %s is valid until %s", secret, at)}
	if !now.Before(notAfter.Add(-renewBefore)) {
		out.reason = v1.ReasonCertificateRenewing
		out.message += "; it is due for renewal and " + renewal
	}
	return out
}

func tlsFailed(reason, format string, args ...any) *tlsOutcome {
	return &tlsOutcome{status: metav1.ConditionFalse, reason: reason, message: fmt.Sprintf(format, args...)}
}

// certificate renders the cert-manager Certificate for the serving certificate: the same
// names, lifetime and usages (server and client auth, as peers use it for mutual TLS) as
// the operator CA would give it.
func certificate(b *v1.MQTTBroker) *unstructured.Unstructured {
	dnsNames := []any{}
	for _, n := range builder.ServingDNSNames(b) {
		dnsNames = append(dnsNames, n)
	}
	ref := b.Spec.TLS.IssuerRef
	kind, group := ref.Kind, ref.Group
	if kind == "" {
		kind = "Issuer"
	}
	if group == "" {
		group = "cert-manager.io"
	}
	labels := map[string]any{}
	for k, v := range builder.Labels(b) {
		labels[k] = v
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"secretName":  builder.TLSName(b),
			"dnsNames":    dnsNames,
			"duration":    builder.CertDuration(b).String(),
			"renewBefore": builder.RenewBefore(b).String(),
			"issuerRef":   map[string]any{"name": ref.Name, "kind": kind, "group": group},
			"usages":      []any{"server auth", "client auth", "digital signature", "key encipherment"},
			"privateKey":  map[string]any{"algorithm": "ECDSA", "size": int64(256), "rotationPolicy": "Always"},
			// The Secret carries the broker's labels too, so it is found like the rest.
			"secretTemplate": map[string]any{"labels": labels},
		},
	}}
	u.SetGroupVersionKind(certificateGVK)
	u.SetNamespace(b.Namespace)
	u.SetName(builder.TLSName(b))
	u.SetLabels(builder.Labels(b))
	return u
}

// servedKinds remembers whether optional kinds (ServiceMonitor, cert-manager's Certificate)
// are served, re-asking discovery at most every kindRecheck: asking on every reconcile of
// every broker would cost a discovery request each time the kind is absent.
type servedKinds struct {
	mu      sync.Mutex
	checked map[schema.GroupVersionKind]kindCheck
}

type kindCheck struct {
	served bool
	at     time.Time
}

// kindRecheck is how soon a CRD installed after the operator started is noticed.
const kindRecheck = time.Minute

func (k *servedKinds) served(mapper meta.RESTMapper, gvk schema.GroupVersionKind, now time.Time) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c, ok := k.checked[gvk]; ok && now.Sub(c.at) < kindRecheck && now.Sub(c.at) >= 0 {
		return c.served, nil
	}
	_, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	served := err == nil
	if err != nil && !meta.IsNoMatchError(err) {
		return false, fmt.Errorf("discover whether %s is served: %w", gvk, err)
	}
	if k.checked == nil {
		k.checked = map[schema.GroupVersionKind]kindCheck{}
	}
	k.checked[gvk] = kindCheck{served: served, at: now}
	return served, nil
}
