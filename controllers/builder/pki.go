package builder

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

// CAKey is the key of the CA certificate in a kubernetes.io/tls Secret, as cert-manager
// writes it.
const CAKey = "ca.crt"

// clockSkew backdates every certificate, so a node whose clock is a little behind the
// operator's still accepts a certificate issued a moment ago.
const clockSkew = 5 * time.Minute

// NewCA creates the operator CA of b: an ECDSA P-256 key and a self-signed certificate valid
// for CAValidity, that may sign leaf certificates only (path length 0).
func NewCA(b *v1.MQTTBroker, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"fleetmq"}, CommonName: "fleetmq CA " + b.Namespace + "/" + b.Name},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	return encodePair(der, key)
}

// RenewCA re-signs the CA certificate caCertPEM with its own key caKeyPEM, valid for
// CAValidity from now, with a new serial and the same subject, key and key identifier.
// Because the name and key stay, every certificate either one signs verifies under the
// other: certificates issued before keep working, and clients that still trust only the old
// CA certificate accept new ones until the old one expires. Nobody has to be cut over at
// once, which a new CA key would demand.
func RenewCA(caCertPEM, caKeyPEM []byte, now time.Time) ([]byte, error) {
	old, err := parseCert(caCertPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	key, err := parseKey(caKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               old.Subject,
		SubjectKeyId:          old.SubjectKeyId,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              old.KeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            old.MaxPathLen,
		MaxPathLenZero:        old.MaxPathLenZero,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("re-sign CA certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// ServingDNSNames are the names the serving certificate of b must hold: the client and
// peers Services in each form a client may use (<svc>, <svc>.<ns>, <svc>.<ns>.svc,
// <svc>.<ns>.svc.cluster.local), wildcards for pods under the peers Service, and each pod's
// own names <name>-<i>.<name>-peers[.<ns>[.svc[.cluster.local]]] for i < replicas (the
// short forms are not covered by a wildcard). Peers dial each other by pod name.
func ServingDNSNames(b *v1.MQTTBroker) []string {
	forms := func(host string) []string {
		return []string{
			host,
			host + "." + b.Namespace,
			host + "." + b.Namespace + ".svc",
			host + "." + b.Namespace + ".svc.cluster.local",
		}
	}
	peers := PeersName(b)
	names := forms(b.Name)
	names = append(names, forms(peers)...)
	names = append(names, "*."+peers+"."+b.Namespace+".svc", "*."+peers+"."+b.Namespace+".svc.cluster.local")
	for i := range max(Replicas(b), 0) {
		names = append(names, forms(b.Name+"-"+strconv.Itoa(int(i))+"."+peers)...)
	}
	return names
}

// IssueServing issues the serving certificate of b from the CA: ServingDNSNames, valid for
// spec.tls.duration (default 90 days, and never past the CA), usable for serverAuth and
// clientAuth, because peers present it to each other for mutual TLS.
func IssueServing(b *v1.MQTTBroker, caCertPEM, caKeyPEM []byte, now time.Time) (certPEM, keyPEM []byte, err error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"fleetmq"}, CommonName: b.Name},
		DNSNames:    ServingDNSNames(b),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	certPEM, keyPEM, err = issue(tmpl, caCertPEM, caKeyPEM, now, CertDuration(b))
	if err != nil {
		return nil, nil, fmt.Errorf("issue serving certificate for MQTTBroker %s/%s: %w", b.Namespace, b.Name, err)
	}
	return certPEM, keyPEM, nil
}

// IssueClient issues a client certificate for username from b's CA, with the username as
// common name (the broker takes it as the username with clientAuth require). A duration of
// 0 or less uses CertDuration(b).
func IssueClient(b *v1.MQTTBroker, username string, caCertPEM, caKeyPEM []byte, now time.Time, duration time.Duration) (certPEM, keyPEM []byte, err error) {
	if err := validateUsername(username); err != nil {
		return nil, nil, fmt.Errorf("issue client certificate: %w", err)
	}
	if duration <= 0 {
		duration = CertDuration(b)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"fleetmq"}, CommonName: username},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	certPEM, keyPEM, err = issue(tmpl, caCertPEM, caKeyPEM, now, duration)
	if err != nil {
		return nil, nil, fmt.Errorf("issue client certificate for %q: %w", username, err)
	}
	return certPEM, keyPEM, nil
}

// issue signs tmpl with a new P-256 key, from now-clockSkew until now+duration (capped at
// the CA's own expiry, which a verifier would enforce anyway).
func issue(tmpl *x509.Certificate, caCertPEM, caKeyPEM []byte, now time.Time, duration time.Duration) (certPEM, keyPEM []byte, err error) {
	ca, err := parseCert(caCertPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	caKey, err := parseKey(caKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, nil, err
	}
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = now.Add(duration)
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign: %w", err)
	}
	return encodePair(der, key)
}

// NeedsRenewal reports whether certPEM must be (re)issued, and why: it is missing or does
// not parse, was not signed by caCertPEM (e.g. the CA was replaced), lacks one of wantDNS
// (e.g. the fleet grew and a new pod's name is missing), is not yet valid, or now is within
// renewBefore of its expiry. Extra names (left from a larger fleet) are no reason.
func NeedsRenewal(certPEM, caCertPEM []byte, wantDNS []string, now time.Time, renewBefore time.Duration) (bool, string) {
	if len(certPEM) == 0 {
		return true, "no certificate"
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return true, "certificate does not parse: " + err.Error()
	}
	ca, err := parseCert(caCertPEM)
	if err != nil {
		return true, "CA certificate does not parse: " + err.Error()
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return true, "certificate is not signed by the current CA"
	}
	have := make(map[string]bool, len(cert.DNSNames))
	for _, n := range cert.DNSNames {
		have[n] = true
	}
	for _, n := range wantDNS {
		if !have[n] {
			return true, fmt.Sprintf("certificate lacks the DNS name %s", n)
		}
	}
	if now.Before(cert.NotBefore) {
		return true, fmt.Sprintf("certificate is not valid before %s", cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if renewAt := cert.NotAfter.Add(-renewBefore); !now.Before(renewAt) {
		return true, fmt.Sprintf("certificate expires at %s, within %s", cert.NotAfter.UTC().Format(time.RFC3339), renewBefore)
	}
	return false, ""
}

// NotAfter is the expiry of the first certificate in certPEM.
func NotAfter(certPEM []byte) (time.Time, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return time.Time{}, err
	}
	return cert.NotAfter, nil
}

// CASecret is the <name>-ca Secret: the CA certificate and key, with the certificate also
// under ca.crt so it reads like any other CA Secret.
func CASecret(b *v1.MQTTBroker, certPEM, keyPEM []byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: objectMeta(b, CAName(b)),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			corev1.TLSCertKey:       certPEM,
			corev1.TLSPrivateKeyKey: keyPEM,
			CAKey:                   certPEM,
		},
	}
}

// TLSSecret is the <name>-tls kubernetes.io/tls Secret the broker pods mount at TLSDir.
func TLSSecret(b *v1.MQTTBroker, certPEM, keyPEM, caPEM []byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: objectMeta(b, TLSName(b)),
		Type:       corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       certPEM,
			corev1.TLSPrivateKeyKey: keyPEM,
			CAKey:                   caPEM,
		},
	}
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial, nil
}

func encodePair(der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// parseCert parses the first CERTIFICATE block of data.
func parseCert(data []byte) (*x509.Certificate, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// parseKey parses a PKCS#8, SEC 1 (EC) or PKCS#1 (RSA) private key, so a CA Secret
// written by other tools works too.
func parseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("%s block is not a PKCS#8, EC or RSA private key", block.Type)
}
