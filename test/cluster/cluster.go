package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// serviceCIDR is the range Service cluster IPs are allocated from. Nothing routes it (there
// is no kube-proxy): pods reach the apiserver at the bridge address instead, which the node
// agent puts in KUBERNETES_SERVICE_HOST.
const (
	serviceCIDR         = "10.96.0.0/16"
	kubernetesServiceIP = "10.96.0.1"
)

// DefaultNodeName is the name of the cluster's one Node unless Options.NodeName says
// otherwise.
const DefaultNodeName = "fleetmq-local"

// Options configures Start. Only Images is needed for pods to run; everything else has a
// default.
type Options struct {
	// Dir holds everything the cluster writes: PKI, etcd data, kubeconfigs, logs
	// (logs/<component>.log) and pods (pods/<namespace>_<name>_<uid>/). A test passes
	// t.TempDir(). Default: a new temporary directory, removed by Stop.
	Dir string
	// BinDir holds etcd, kube-apiserver and kube-controller-manager (and kubectl).
	// Default: $KUBEBUILDER_ASSETS. BuildKubeBinaries builds them.
	BinDir string
	// Images maps a container image (as written in pod specs; matched exactly, then
	// without digest, then without tag) to the local binary that stands for its entrypoint,
	// or to a directory in which the container's command is looked up by base name.
	Images map[string]string
	// NodeName is the name of the Node. Default DefaultNodeName.
	NodeName string
	// APIServerPort is the apiserver's port on the bridge address; 0 picks a free one.
	APIServerPort int
	// StartTimeout bounds Start. Default 2 minutes.
	StartTimeout time.Duration
	// StopGrace is how long a container gets between SIGTERM and SIGKILL when Stop tears
	// the cluster down. Default 5s (pod deletion uses the pod's own grace period).
	StopGrace time.Duration
	// RestartBackoff is the delay before the second restart of a crashing container,
	// doubling up to MaxRestartBackoff; the first restart is immediate, as in the kubelet.
	// Defaults 10s and 5m, the kubelet's.
	RestartBackoff, MaxRestartBackoff time.Duration
	// Logger receives the cluster's progress and the node agent's warnings, which also go
	// to logs/node-agent.log in Dir.
	Logger *slog.Logger
}

// Cluster is a running local cluster: etcd, kube-apiserver, kube-controller-manager and an
// in-process node agent that runs pods as local processes.
type Cluster struct {
	opts    Options
	dir     string
	ownDir  bool
	binDir  string
	logDir  string
	selfExe string
	log     *slog.Logger

	net  *network
	pki  *pki
	node *nodeAgent

	etcd, apiserver, kcm *process
	etcdURL              string
	server               string
	logsPort             int
	logsServer           interface{ Close() error }

	adminKubeconfig string
	restConfig      *rest.Config
	client          kubernetes.Interface

	mu       sync.Mutex
	extra    []*process // started by StartProcess
	agentLog *os.File

	stopOnce sync.Once
	stopErr  error
}

// Start brings up a cluster and returns once pods can be created: the apiserver is ready,
// the default ServiceAccount and the root CA ConfigMap exist, and the Node is Ready. ctx
// bounds the start only; the cluster runs until Stop. On failure everything started is
// stopped again and the error names the component, with the tail of its log.
//
// Start needs root: it creates network namespaces, veth pairs and a bridge, and mounts.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the local cluster must run as root: it creates a network namespace per pod and mounts volumes in a private mount namespace")
	}
	if opts.NodeName == "" {
		opts.NodeName = DefaultNodeName
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = 5 * time.Second
	}
	if opts.RestartBackoff == 0 {
		opts.RestartBackoff = 10 * time.Second
	}
	if opts.MaxRestartBackoff == 0 {
		opts.MaxRestartBackoff = 5 * time.Minute
	}
	if opts.MaxRestartBackoff < opts.RestartBackoff {
		opts.MaxRestartBackoff = opts.RestartBackoff
	}
	if opts.APIServerPort < 0 || opts.APIServerPort > 65535 {
		return nil, fmt.Errorf("Options.APIServerPort %d is not a TCP port", opts.APIServerPort)
	}
	binDir, err := resolveBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the running binary, which starts containers: %w", err)
	}
	c := &Cluster{opts: opts, binDir: binDir, selfExe: self, log: opts.Logger}
	if opts.Dir == "" {
		if c.dir, err = os.MkdirTemp("", "fleetmq-localcluster-"); err != nil {
			return nil, err
		}
		c.ownDir = true
	} else if c.dir, err = filepath.Abs(opts.Dir); err != nil {
		return nil, err
	} else if err := prepareDir(c.dir); err != nil {
		return nil, err
	}
	c.logDir = filepath.Join(c.dir, "logs")
	for _, d := range []string{c.logDir, filepath.Join(c.dir, "pods"), filepath.Join(c.dir, "pv"), filepath.Join(c.dir, "kubeconfig")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			c.Stop()
			return nil, fmt.Errorf("create the cluster directory: %w", err)
		}
	}

	// The node agent's own log sits next to the control plane's, whatever else it goes to.
	agentLog, err := os.OpenFile(filepath.Join(c.logDir, "node-agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("open the node agent log: %w", err)
	}
	c.agentLog = agentLog
	fileLog := slog.NewTextHandler(agentLog, nil)
	if c.log == nil {
		c.log = slog.New(fileLog)
	} else {
		c.log = slog.New(teeHandler{fileLog, c.log.Handler()})
	}

	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	if err := c.start(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// dirMarker marks a directory as a local cluster's, so that a later Start may clear it.
const dirMarker = ".fleetmq-localcluster"

// prepareDir makes dir ready for a fresh cluster. A directory of an earlier cluster is
// cleared of its state (etcd data, PKI, pods, volumes, kubeconfigs; each start is a new
// cluster with a new CA), keeping nothing but older logs; any other non-empty directory is
// refused rather than written into.
func prepareDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || err == nil && len(entries) == 0 {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create the cluster directory: %w", err)
		}
		return os.WriteFile(filepath.Join(dir, dirMarker), nil, 0o644)
	}
	if err != nil {
		return fmt.Errorf("read the cluster directory: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, dirMarker)); err != nil {
		return fmt.Errorf("Options.Dir %s is not empty and was not made by a local cluster; pass an empty or new directory", dir)
	}
	for _, sub := range []string{"etcd", "pki", "pods", "pv", "kubeconfig", "apiserver"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return fmt.Errorf("clear the previous cluster in %s: %w", dir, err)
		}
	}
	return nil
}

func (c *Cluster) start(ctx context.Context) error {
	begin := time.Now()
	unlock, err := lockState()
	if err != nil {
		return err
	}
	sweepStale()
	c.net, err = newNetwork(c.dir)
	unlock()
	if err != nil {
		return err
	}
	c.log.Info("Pod network ready", "bridge", c.net.bridge, "subnet", c.net.subnet.String())
	if c.pki, err = newPKI(filepath.Join(c.dir, "pki"), c.net.gateway); err != nil {
		return err
	}
	if err := c.startEtcd(ctx); err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	c.log.Info("etcd ready", "url", c.etcdURL)
	if err := c.startAPIServer(ctx); err != nil {
		return fmt.Errorf("start kube-apiserver: %w", err)
	}
	c.log.Info("kube-apiserver ready", "server", c.server)
	c.adminKubeconfig = filepath.Join(c.dir, "kubeconfig", "admin.kubeconfig")
	if err := c.writeCertKubeconfig(c.adminKubeconfig, "fleetmq-admin", c.pki.AdminCertFile, c.pki.AdminKeyFile); err != nil {
		return err
	}
	if c.restConfig, err = clientcmd.BuildConfigFromFlags("", c.adminKubeconfig); err != nil {
		return fmt.Errorf("load the admin kubeconfig: %w", err)
	}
	c.restConfig.QPS, c.restConfig.Burst = 100, 200
	if c.client, err = kubernetes.NewForConfig(c.restConfig); err != nil {
		return err
	}
	if err := c.startControllerManager(); err != nil {
		return fmt.Errorf("start kube-controller-manager: %w", err)
	}
	if err := c.startLogsServer(); err != nil {
		return err
	}
	c.node = newNodeAgent(c, c.client, c.opts.NodeName)
	if err := c.node.start(ctx); err != nil {
		return fmt.Errorf("start the node agent: %w", err)
	}
	if err := c.waitForDefaults(ctx); err != nil {
		return err
	}
	c.log.Info("Cluster ready", "took", time.Since(begin).Round(time.Millisecond), "kubeconfig", c.adminKubeconfig)
	return nil
}

// waitForDefaults waits for what a pod in the default namespace needs from the controller
// manager: the default ServiceAccount and the kube-root-ca.crt ConfigMap.
func (c *Cluster) waitForDefaults(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if done, _ := c.kcm.exited(); done {
			return fmt.Errorf("start kube-controller-manager: %w", c.kcm.failure())
		}
		_, saErr := c.client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		_, cmErr := c.client.CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		if saErr == nil && cmErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-controller-manager did not create the default ServiceAccount and kube-root-ca.crt (%v, %v); its log is %s, ending:\n%s",
				saErr, cmErr, c.kcm.logPath, tail(c.kcm.logPath, 15))
		case <-tick.C:
		}
	}
}

// Stop stops every pod process, the node agent, the controller manager, the apiserver and
// etcd, and removes the pod network (bridge, veths, namespaces). It never leaves a process
// behind, is safe to call more than once (the first result is returned again) and fits
// t.Cleanup directly. The directory stays (logs) unless Start created it.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		c.mu.Lock()
		extra := c.extra
		c.mu.Unlock()
		for _, p := range extra {
			p.stop(stopGrace)
		}
		if c.node != nil {
			c.node.stop()
		}
		if c.logsServer != nil {
			_ = c.logsServer.Close()
		}
		for _, p := range []*process{c.kcm, c.apiserver, c.etcd} {
			if p != nil {
				p.stop(stopGrace)
			}
		}
		if c.net != nil {
			c.net.close()
		}
		if c.agentLog != nil {
			c.agentLog.Close()
		}
		if c.ownDir {
			if err := os.RemoveAll(c.dir); err != nil {
				errs = append(errs, err)
			}
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// Done is closed when a control-plane process has exited on its own (a crash); Err then
// says which and why. A `make dev` session watches it to stop with a clear message.
func (c *Cluster) Done() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-c.etcd.done:
		case <-c.apiserver.done:
		case <-c.kcm.done:
		}
	}()
	return done
}

// Err names the control-plane process that exited, with the tail of its log, or is nil
// while all run.
func (c *Cluster) Err() error {
	for _, p := range []*process{c.etcd, c.apiserver, c.kcm} {
		if p == nil {
			continue
		}
		if done, _ := p.exited(); done {
			return p.failure()
		}
	}
	return nil
}

// Dir is the cluster's directory (logs/, pods/, kubeconfig/, pki/).
func (c *Cluster) Dir() string { return c.dir }

// Server is the apiserver's URL.
func (c *Cluster) Server() string { return c.server }

// CAFile is the PEM file of the cluster CA, which signed the apiserver's certificate.
func (c *Cluster) CAFile() string { return c.pki.CAFile }

// RESTConfig is a copy of the admin's client configuration.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.restConfig) }

// Client is a clientset authenticated as the admin.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// NodeName is the name of the cluster's Node.
func (c *Cluster) NodeName() string { return c.opts.NodeName }

// HostIP is the node's address on the pod network: where pods reach the apiserver and
// where the host reaches pods from.
func (c *Cluster) HostIP() string { return c.net.gateway.String() }

// PodSubnet is the pod network in CIDR notation.
func (c *Cluster) PodSubnet() string { return c.net.subnet.String() }

// NetworkPrefix is the prefix of every interface and network namespace this cluster
// creates (fmq<id>); nothing else on the machine carries it.
func (c *Cluster) NetworkPrefix() string { return "fmq" + c.net.id }

// apiPort is the apiserver's port.
func (c *Cluster) apiPort() int {
	u, err := url.Parse(c.server)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(u.Port())
	return p
}

// Pod returns the node agent's view of the running pod namespace/name: its address,
// network namespace, directories and container processes. ok is false when no pod of that
// name runs on the node.
func (c *Cluster) Pod(namespace, name string) (PodInfo, bool) {
	w := c.node.worker(namespace, name)
	if w == nil {
		return PodInfo{}, false
	}
	return w.info(), true
}

// Signal sends sig to the process of a running container: syscall.SIGKILL is a crash the
// node agent must recover from.
func (c *Cluster) Signal(namespace, pod, container string, sig syscall.Signal) error {
	info, ok := c.Pod(namespace, pod)
	if !ok {
		return fmt.Errorf("pod %s/%s does not run on the local node", namespace, pod)
	}
	for _, ci := range info.Containers {
		if ci.Name == container {
			if ci.PID == 0 {
				return fmt.Errorf("container %s of pod %s/%s is not running", container, namespace, pod)
			}
			return syscall.Kill(ci.PID, sig)
		}
	}
	return fmt.Errorf("pod %s/%s has no container %q", namespace, pod, container)
}

// Disconnect cuts the pod namespace/name off the pod network (its link goes down), as a
// network partition would: it can reach neither the apiserver nor other pods, and nothing
// reaches it. Reconnect undoes it.
func (c *Cluster) Disconnect(namespace, name string) error { return c.setLink(namespace, name, false) }

// Reconnect brings a disconnected pod back onto the pod network.
func (c *Cluster) Reconnect(namespace, name string) error { return c.setLink(namespace, name, true) }

func (c *Cluster) setLink(namespace, name string, up bool) error {
	w := c.node.worker(namespace, name)
	if w == nil {
		return fmt.Errorf("pod %s/%s does not run on the local node", namespace, name)
	}
	w.mu.Lock()
	h := w.hostIdx
	w.mu.Unlock()
	if h <= 0 {
		return fmt.Errorf("pod %s/%s has no network namespace of its own", namespace, name)
	}
	return c.net.setPodLink(h, up)
}

// Kubectl runs kubectl from the binary directory as the admin and returns its combined
// output; the error includes the output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	bin := filepath.Join(c.binDir, "kubectl")
	if !isExecutable(bin) {
		return nil, fmt.Errorf("kubectl is missing from %s; %s", c.binDir, buildHint)
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", c.adminKubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("kubectl %v: %w: %s", args, err, out)
	}
	return out, nil
}

// CreateNamespace creates a namespace and waits until its default ServiceAccount exists, so
// pods can be created in it straight away.
func (c *Cluster) CreateNamespace(ctx context.Context, name string) error {
	_, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	for {
		_, err := c.client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s has no default ServiceAccount yet: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// teeHandler sends each record to two handlers.
type teeHandler struct{ a, b slog.Handler }

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.a.Enabled(ctx, l) || h.b.Enabled(ctx, l)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, x := range []slog.Handler{h.a, h.b} {
		if x.Enabled(ctx, r.Level) {
			errs = append(errs, x.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (h teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return teeHandler{h.a.WithAttrs(attrs), h.b.WithAttrs(attrs)}
}

func (h teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{h.a.WithGroup(name), h.b.WithGroup(name)}
}
