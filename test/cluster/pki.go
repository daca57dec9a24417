package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki holds the cluster's certificate authority and the files made from it. Every key is
// ECDSA P-256: generating one takes microseconds, where RSA-2048 takes a noticeable part of
// a second on a busy machine, and every Kubernetes component accepts it.
type pki struct {
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey

	CAFile                   string // PEM CA certificate: clients trust it, the apiserver verifies client certificates with it
	ServingCertFile          string // kube-apiserver serving certificate
	ServingKeyFile           string
	ServiceAccountKeyFile    string // signs and verifies service-account tokens
	ServiceAccountPubFile    string
	AdminCertFile            string // user fleetmq-admin in group system:masters
	AdminKeyFile             string
	ControllerManagerCert    string // user system:kube-controller-manager, bound by the bootstrap RBAC policy
	ControllerManagerKeyFile string
	KubeletClientCertFile    string // how the apiserver authenticates to the node agent (logs)
	KubeletClientKeyFile     string
	NodeServingCertFile      string // the node agent's HTTPS server, for kubectl logs
	NodeServingKeyFile       string
}

// newPKI writes a fresh CA, the apiserver's serving certificate (valid for 127.0.0.1,
// serverIPs, and the in-cluster names and address of the kubernetes Service), the
// service-account signing key and the client certificates of the admin and the controller
// manager into dir.
func newPKI(dir string, serverIPs ...net.IP) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the PKI directory: %w", err)
	}
	p := &pki{dir: dir}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate the CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "fleetmq-local-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("self-sign the CA: %w", err)
	}
	if p.caCert, err = x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("parse the CA: %w", err)
	}
	p.caKey = key
	p.CAFile = filepath.Join(dir, "ca.crt")
	if err := writePEM(p.CAFile, "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}

	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(kubernetesServiceIP)}, serverIPs...),
	}
	if p.ServingCertFile, p.ServingKeyFile, err = p.issue("apiserver", serving); err != nil {
		return nil, err
	}
	admin := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "fleetmq-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if p.AdminCertFile, p.AdminKeyFile, err = p.issue("admin", admin); err != nil {
		return nil, err
	}
	kcm := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "system:kube-controller-manager"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if p.ControllerManagerCert, p.ControllerManagerKeyFile, err = p.issue("controller-manager", kcm); err != nil {
		return nil, err
	}

	// The apiserver proxies kubectl logs to the node agent with this certificate; the node
	// agent accepts only it.
	kubeletClient := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if p.KubeletClientCertFile, p.KubeletClientKeyFile, err = p.issue("kubelet-client", kubeletClient); err != nil {
		return nil, err
	}
	nodeServing := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "fleetmq-local-node"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1)}, serverIPs...),
	}
	if p.NodeServingCertFile, p.NodeServingKeyFile, err = p.issue("node-serving", nodeServing); err != nil {
		return nil, err
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate the service-account signing key: %w", err)
	}
	p.ServiceAccountKeyFile = filepath.Join(dir, "sa.key")
	if err := writeKey(p.ServiceAccountKeyFile, saKey); err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encode the service-account public key: %w", err)
	}
	p.ServiceAccountPubFile = filepath.Join(dir, "sa.pub")
	if err := writePEM(p.ServiceAccountPubFile, "PUBLIC KEY", pub, 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// issue signs tmpl with the CA and writes name.crt and name.key.
func (p *pki) issue(name string, tmpl *x509.Certificate) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate the %s key: %w", name, err)
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(365 * 24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return "", "", fmt.Errorf("sign the %s certificate: %w", name, err)
	}
	certFile = filepath.Join(p.dir, name+".crt")
	keyFile = filepath.Join(p.dir, name+".key")
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return "", "", err
	}
	if err := writeKey(keyFile, key); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the kernel's CSPRNG does not fail
	}
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, blockType string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
