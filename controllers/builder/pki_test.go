package builder

import (
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestCA(t *testing.T) (cert, key []byte) {
	t.Helper()
	cert, key, err := NewCA(newBroker(), testNow)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return cert, key
}

func mustParseCert(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	c, err := parseCert(pemData)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestServingCertVerifiesForEveryName(t *testing.T) {
	b := newBroker(withReplicas(3))
	caCert, caKey := newTestCA(t)
	certPEM, keyPEM, err := IssueServing(b, caCert, caKey, testNow)
	if err != nil {
		t.Fatalf("IssueServing: %v", err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("certificate and key do not form a TLS key pair: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(mustParseCert(t, caCert))
	cert := mustParseCert(t, certPEM)

	names := []string{
		"fleet", "fleet.acme", "fleet.acme.svc", "fleet.acme.svc.cluster.local",
		"fleet-peers.acme.svc", "fleet-peers.acme.svc.cluster.local",
		"fleet-0.fleet-peers", "fleet-0.fleet-peers.acme.svc", "fleet-2.fleet-peers.acme.svc.cluster.local",
		"fleet-2.fleet-peers.acme",
	}
	for _, name := range names {
		// Clients check serverAuth; peers present the same certificate as clients (mTLS).
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			_, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{usage}})
			if err != nil {
				t.Errorf("certificate does not verify for %s (usage %v): %v", name, usage, err)
			}
		}
	}
	for _, name := range []string{"fleet-3.fleet-peers", "other.acme.svc", "fleet.other.svc"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: testNow}); err == nil {
			t.Errorf("certificate verifies for %s, which is not the broker's", name)
		}
	}
	if got, want := cert.NotAfter.Sub(testNow), DefaultCertDuration; got != want {
		t.Errorf("valid for %s after issue, want the default %s", got, want)
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "fleet", Roots: roots, CurrentTime: testNow.Add(-time.Minute)}); err != nil {
		t.Errorf("a node whose clock is a minute behind refuses the certificate: %v", err)
	}
}

func TestServingDNSNamesFollowReplicas(t *testing.T) {
	names := ServingDNSNames(newBroker(withReplicas(2)))
	for _, want := range []string{"fleet-1.fleet-peers.acme.svc.cluster.local", "*.fleet-peers.acme.svc"} {
		if !slices.Contains(names, want) {
			t.Errorf("ServingDNSNames lacks %s", want)
		}
	}
	if slices.Contains(names, "fleet-2.fleet-peers.acme.svc") {
		t.Error("ServingDNSNames names a pod that does not exist")
	}
	if !slices.Equal(names, ServingDNSNames(newBroker(withReplicas(2)))) {
		t.Error("ServingDNSNames is not deterministic")
	}
}

func TestNeedsRenewal(t *testing.T) {
	b := newBroker(withReplicas(3))
	caCert, caKey := newTestCA(t)
	certPEM, _, err := IssueServing(b, caCert, caKey, testNow)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, _ := newTestCA(t)
	notAfter, err := NotAfter(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	renewBefore := RenewBefore(b)
	want := ServingDNSNames(b)

	tests := []struct {
		name       string
		cert, ca   []byte
		wantDNS    []string
		now        time.Time
		want       bool
		wantReason string
	}{
		{"fresh", certPEM, caCert, want, testNow, false, ""},
		{"just before the renewal window", certPEM, caCert, want, notAfter.Add(-renewBefore - time.Second), false, ""},
		{"inside the renewal window", certPEM, caCert, want, notAfter.Add(-renewBefore), true, "expires"},
		{"expired", certPEM, caCert, want, notAfter.Add(time.Hour), true, "expires"},
		{"fleet grew: new pod name missing", certPEM, caCert, ServingDNSNames(newBroker(withReplicas(4))), testNow, true, "fleet-3.fleet-peers"},
		{"fleet shrank: extra names are fine", certPEM, caCert, ServingDNSNames(newBroker(withReplicas(1))), testNow, false, ""},
		{"signed by another CA", certPEM, otherCA, want, testNow, true, "not signed by the current CA"},
		{"missing", nil, caCert, want, testNow, true, "no certificate"},
		{"garbage", []byte("not a certificate"), caCert, want, testNow, true, "does not parse"},
		{"not yet valid", certPEM, caCert, want, testNow.Add(-time.Hour), true, "not valid before"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := NeedsRenewal(tc.cert, tc.ca, tc.wantDNS, tc.now, renewBefore)
			if got != tc.want || !strings.Contains(reason, tc.wantReason) {
				t.Errorf("NeedsRenewal = %v, %q; want %v with %q", got, reason, tc.want, tc.wantReason)
			}
		})
	}
}

func TestIssueClient(t *testing.T) {
	b := newBroker()
	caCert, caKey := newTestCA(t)
	certPEM, keyPEM, err := IssueClient(b, "sensor-1", caCert, caKey, testNow, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	cert := mustParseCert(t, certPEM)
	roots := x509.NewCertPool()
	roots.AddCert(mustParseCert(t, caCert))
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify for clientAuth: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("a client certificate must not be usable to serve")
	}
	if cert.Subject.CommonName != "sensor-1" || cert.NotAfter.Sub(testNow) != 48*time.Hour {
		t.Errorf("CN %q valid %s, want sensor-1 for 48h", cert.Subject.CommonName, cert.NotAfter.Sub(testNow))
	}
	if _, _, err := IssueClient(b, "a:b", caCert, caKey, testNow, 0); err == nil {
		t.Error("a username the broker cannot hold was issued a certificate")
	}
	if _, _, err := IssueClient(b, "x", caCert, []byte("junk"), testNow, 0); err == nil {
		t.Error("IssueClient signed with an unreadable CA key")
	}
}

func TestCAAndSecrets(t *testing.T) {
	b := newBroker()
	caCert, caKey := newTestCA(t)
	ca := mustParseCert(t, caCert)
	if !ca.IsCA || ca.MaxPathLen != 0 || !ca.MaxPathLenZero || ca.NotAfter.Sub(testNow) != CAValidity {
		t.Errorf("CA: isCA %v maxPathLen %d valid %s", ca.IsCA, ca.MaxPathLen, ca.NotAfter.Sub(testNow))
	}
	if renew, why := NeedsRenewal(caCert, caCert, nil, testNow, DefaultRenewBefore); renew {
		t.Errorf("a fresh CA needs renewal: %s", why)
	}
	s := CASecret(b, caCert, caKey)
	if s.Name != "fleet-ca" || string(s.Data["ca.crt"]) != string(caCert) {
		t.Errorf("CA Secret %s lacks ca.crt = tls.crt", s.Name)
	}
	ts := TLSSecret(b, []byte("c"), []byte("k"), caCert)
	if ts.Name != "fleet-tls" || ts.Type != "kubernetes.io/tls" || string(ts.Data["ca.crt"]) != string(caCert) {
		t.Errorf("TLS Secret = %s %s", ts.Name, ts.Type)
	}
}

// A renewed CA certificate keeps the CA's name and key: certificates signed before verify
// under it, and certificates signed after verify under the old one while that lasts, so
// neither the brokers nor the clients need to switch at the same moment.
func TestRenewCAKeepsEveryoneVerifying(t *testing.T) {
	b := newBroker()
	// 30 days left: less than a serving certificate lasts, which the old CA would cut short.
	issuedAt := testNow.Add(-CAValidity + 30*24*time.Hour)
	oldCA, caKey, err := NewCA(b, issuedAt)
	if err != nil {
		t.Fatal(err)
	}
	before, _, err := IssueServing(b, oldCA, caKey, testNow)
	if err != nil {
		t.Fatal(err)
	}

	newCA, err := RenewCA(oldCA, caKey, testNow)
	if err != nil {
		t.Fatalf("RenewCA: %v", err)
	}
	oldCert, newCert := mustParseCert(t, oldCA), mustParseCert(t, newCA)
	if !newCert.NotAfter.Equal(testNow.Add(CAValidity)) || newCert.SerialNumber.Cmp(oldCert.SerialNumber) == 0 {
		t.Errorf("renewed CA: valid until %s, serial %v; want %s and a new serial", newCert.NotAfter, newCert.SerialNumber, testNow.Add(CAValidity))
	}
	if newCert.Subject.String() != oldCert.Subject.String() || !slices.Equal(newCert.SubjectKeyId, oldCert.SubjectKeyId) ||
		!newCert.IsCA || !newCert.MaxPathLenZero {
		t.Errorf("renewed CA %v (key id %x, CA %v) differs from the old one %v (key id %x)",
			newCert.Subject, newCert.SubjectKeyId, newCert.IsCA, oldCert.Subject, oldCert.SubjectKeyId)
	}
	after, _, err := IssueServing(b, newCA, caKey, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustParseCert(t, after).NotAfter; !got.Equal(testNow.Add(DefaultCertDuration)) || !got.After(oldCert.NotAfter) {
		t.Errorf("a certificate issued after the renewal is valid until %s; want %s, past the old CA's %s",
			got, testNow.Add(DefaultCertDuration), oldCert.NotAfter)
	}
	for _, tc := range []struct {
		leaf, root []byte
		what       string
	}{
		{before, newCA, "a certificate issued before, under the renewed CA"},
		{after, oldCA, "a certificate issued after, under the old CA"},
		{after, newCA, "a certificate issued after, under the renewed CA"},
	} {
		roots := x509.NewCertPool()
		roots.AddCert(mustParseCert(t, tc.root))
		if _, err := mustParseCert(t, tc.leaf).Verify(x509.VerifyOptions{DNSName: "fleet.acme.svc", Roots: roots, CurrentTime: testNow}); err != nil {
			t.Errorf("%s does not verify: %v", tc.what, err)
		}
	}
}
