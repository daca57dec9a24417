package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The control plane: etcd on loopback, kube-apiserver on the pod network's bridge address
// (the one address both the host and every pod can reach), and kube-controller-manager.

// serviceAccountIssuer is the issuer of service-account tokens, the in-cluster URL of the
// apiserver as in a kubeadm cluster.
const serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// kubeControllers are the controllers the local cluster runs: those a StatefulSet-based
// operator depends on (statefulset, endpointslice, garbage collection, disruption budgets),
// the ones that make namespaces and service accounts work (namespace, serviceaccount,
// tokens, root CA publishing), PVC/PV protection (their finalizers are added by admission
// and would otherwise never be removed), clusterrole aggregation (for aggregated editor
// roles) and the cheap workload controllers for Deployments and ReplicaSets.
var kubeControllers = []string{
	"statefulset-controller",
	"endpointslice-controller",
	"endpointslice-mirroring-controller",
	"garbage-collector-controller",
	"disruption-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"persistentvolumeclaim-protection-controller",
	"persistentvolume-protection-controller",
	"clusterrole-aggregation-controller",
	"replicaset-controller",
	"deployment-controller",
}

// freePort returns a TCP port that was free on ip a moment ago.
func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// checkPortFree fails with the port and address when something already listens there.
func checkPortFree(ip string, port int, what string) error {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d on %s for %s is taken (%v); stop whatever listens there or choose another port", port, ip, what, err)
	}
	return l.Close()
}

// waitReady polls check until it succeeds, the process exits, or ctx ends. An early exit
// returns the tail of the process log; an exit because a port was grabbed between choosing
// and binding it returns errPortTaken so that the caller retries with new ports.
func waitReady(ctx context.Context, p *process, what string, check func(context.Context) error) error {
	var last error
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if done, _ := p.exited(); done {
			if portTaken(p.logPath) {
				return errPortTaken
			}
			return p.failure()
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready (%v; last check: %v); its log is %s, ending:\n%s", what, ctx.Err(), last, p.logPath, tail(p.logPath, 15))
		case <-tick.C:
		}
	}
}

func httpCheck(client *http.Client, url string, want func(int, string) bool) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if !want(resp.StatusCode, string(body)) {
			return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(lastLines(string(body), 5)))
		}
		return nil
	}
}

// startEtcd starts etcd on two free loopback ports and waits until it is healthy. Its data
// is scratch: fsync is off, which makes a start several times faster on a busy disk.
func (c *Cluster) startEtcd(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		clientPort, err := freePort("127.0.0.1")
		if err != nil {
			return err
		}
		peerPort, err := freePort("127.0.0.1")
		if err != nil {
			return err
		}
		clientURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
		args := []string{
			"--name=default",
			"--data-dir=" + filepath.Join(c.dir, "etcd"),
			"--listen-client-urls=" + clientURL,
			"--advertise-client-urls=" + clientURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=default=" + peerURL,
			"--unsafe-no-fsync=true",
			"--quota-backend-bytes=" + strconv.Itoa(1<<30),
			"--log-level=warn",
		}
		p, err := startProcess("etcd", filepath.Join(c.binDir, "etcd"), args, filepath.Join(c.logDir, "etcd.log"))
		if err != nil {
			return err
		}
		err = waitReady(ctx, p, "etcd", httpCheck(http.DefaultClient, clientURL+"/health",
			func(code int, body string) bool { return code == 200 && strings.Contains(body, `"true"`) }))
		if errors.Is(err, errPortTaken) && attempt < 3 {
			continue
		}
		if err != nil {
			p.stop(stopGrace)
			return err
		}
		c.etcd, c.etcdURL = p, clientURL
		return nil
	}
}

// startAPIServer starts kube-apiserver on the bridge address with client-certificate and
// service-account-token authentication and Node,RBAC authorization, and waits for /readyz.
func (c *Cluster) startAPIServer(ctx context.Context) error {
	host := c.net.gateway.String()
	for attempt := 0; ; attempt++ {
		port := c.opts.APIServerPort
		if port == 0 {
			var err error
			if port, err = freePort(host); err != nil {
				return err
			}
		} else if err := checkPortFree(host, port, "kube-apiserver (Options.APIServerPort)"); err != nil {
			return err
		}
		args := []string{
			"--etcd-servers=" + c.etcdURL,
			"--bind-address=" + host,
			"--advertise-address=" + host,
			"--secure-port=" + strconv.Itoa(port),
			"--cert-dir=" + filepath.Join(c.dir, "apiserver"),
			"--tls-cert-file=" + c.pki.ServingCertFile,
			"--tls-private-key-file=" + c.pki.ServingKeyFile,
			"--client-ca-file=" + c.pki.CAFile,
			"--authorization-mode=Node,RBAC",
			"--service-account-issuer=" + serviceAccountIssuer,
			"--service-account-key-file=" + c.pki.ServiceAccountPubFile,
			"--service-account-signing-key-file=" + c.pki.ServiceAccountKeyFile,
			"--service-cluster-ip-range=" + serviceCIDR,
			"--kubelet-client-certificate=" + c.pki.KubeletClientCertFile,
			"--kubelet-client-key=" + c.pki.KubeletClientKeyFile,
			"--kubelet-certificate-authority=" + c.pki.CAFile,
			"--kubelet-preferred-address-types=InternalIP",
			"--allow-privileged=true",
			"--profiling=false",
		}
		p, err := startProcess("kube-apiserver", filepath.Join(c.binDir, "kube-apiserver"), args, filepath.Join(c.logDir, "kube-apiserver.log"))
		if err != nil {
			return err
		}
		server := fmt.Sprintf("https://%s", net.JoinHostPort(host, strconv.Itoa(port)))
		client, err := c.pki.adminHTTPClient()
		if err != nil {
			p.stop(stopGrace)
			return err
		}
		err = waitReady(ctx, p, "kube-apiserver", httpCheck(client, server+"/readyz",
			func(code int, _ string) bool { return code == 200 }))
		if errors.Is(err, errPortTaken) {
			if c.opts.APIServerPort != 0 {
				return fmt.Errorf("port %d on %s for kube-apiserver is taken; choose another Options.APIServerPort", port, host)
			}
			if attempt < 3 {
				continue
			}
		}
		if err != nil {
			p.stop(stopGrace)
			return err
		}
		c.apiserver, c.server = p, server
		return nil
	}
}

// adminHTTPClient is an HTTP client that presents the admin certificate and trusts the CA.
func (p *pki) adminHTTPClient() (*http.Client, error) {
	cert, err := tls.LoadX509KeyPair(p.AdminCertFile, p.AdminKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load the admin certificate: %w", err)
	}
	caPEM, err := os.ReadFile(p.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
	}}}, nil
}

// startControllerManager starts kube-controller-manager with each controller using its own
// service account (as kubeadm sets it up), so the bootstrap RBAC roles apply. It serves no
// port, so it cannot collide with anything; readiness shows in the objects it creates.
func (c *Cluster) startControllerManager() error {
	kubeconfig := filepath.Join(c.dir, "kubeconfig", "kube-controller-manager.kubeconfig")
	if err := c.writeCertKubeconfig(kubeconfig, "system:kube-controller-manager", c.pki.ControllerManagerCert, c.pki.ControllerManagerKeyFile); err != nil {
		return err
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=" + strings.Join(kubeControllers, ","),
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + c.pki.ServiceAccountKeyFile,
		"--root-ca-file=" + c.pki.CAFile,
		"--secure-port=0",
		"--leader-elect=false",
	}
	p, err := startProcess("kube-controller-manager", filepath.Join(c.binDir, "kube-controller-manager"), args, filepath.Join(c.logDir, "kube-controller-manager.log"))
	if err != nil {
		return err
	}
	c.kcm = p
	return nil
}
