package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// contextName is the kubeconfig context of every kubeconfig the cluster writes.
const contextName = "fleetmq-local"

// serviceAccountTokenLifetime is how long a token from KubeconfigFor is valid. It outlives
// any test or `make dev` session; a new call writes a fresh one.
const serviceAccountTokenLifetime = 7 * 24 * 3600

// writeKubeconfig writes a kubeconfig for the cluster with the given user credentials and
// the CA embedded, so the file can be copied and used anywhere that reaches the server.
func (c *Cluster) writeKubeconfig(path, user string, auth *clientcmdapi.AuthInfo) error {
	ca, err := os.ReadFile(c.pki.CAFile)
	if err != nil {
		return fmt.Errorf("read the cluster CA: %w", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[contextName] = &clientcmdapi.Cluster{Server: c.server, CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = auth
	cfg.Contexts[contextName] = &clientcmdapi.Context{Cluster: contextName, AuthInfo: user}
	cfg.CurrentContext = contextName
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write the kubeconfig %s: %w", path, err)
	}
	return nil
}

// writeCertKubeconfig writes a kubeconfig that authenticates with a client certificate.
func (c *Cluster) writeCertKubeconfig(path, user, certFile, keyFile string) error {
	cert, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	return c.writeKubeconfig(path, user, &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key})
}

// KubeconfigFor writes a kubeconfig that authenticates as the ServiceAccount
// namespace/name with a token from the TokenRequest API, and returns its path. A process
// run with it (the operator, say) has exactly the permissions RBAC grants that account, so
// a missing rule fails here as it would in a real cluster. The ServiceAccount must exist
// (apply config/rbac first); each call issues a new token valid for a week.
func (c *Cluster) KubeconfigFor(ctx context.Context, namespace, name string) (string, error) {
	exp := int64(serviceAccountTokenLifetime)
	tr, err := c.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("service account %s/%s does not exist; create it (for the operator: apply config/rbac) before asking for its kubeconfig", namespace, name)
	}
	if err != nil {
		return "", fmt.Errorf("request a token for service account %s/%s: %w", namespace, name, err)
	}
	user := fmt.Sprintf("system:serviceaccount:%s:%s", namespace, name)
	path := filepath.Join(c.dir, "kubeconfig", fmt.Sprintf("sa-%s-%s.kubeconfig", namespace, name))
	if err := c.writeKubeconfig(path, user, &clientcmdapi.AuthInfo{Token: tr.Status.Token}); err != nil {
		return "", err
	}
	return path, nil
}

// AdminKubeconfig is the path of a kubeconfig for a cluster administrator (group
// system:masters). `KUBECONFIG=$(that) kubectl ...` works while the cluster runs.
func (c *Cluster) AdminKubeconfig() string { return c.adminKubeconfig }
