// Package devfleet brings up the FleetMQ local fleet: the local Kubernetes cluster of
// test/cluster with the CRDs installed, the operator running as a host process under its own
// ServiceAccount and the RBAC of config/rbac, and config/samples applied. `make dev`
// (cmd/fleetmq-localcluster) and the end-to-end suite (test/e2e) share it, so the suite
// tests exactly what a user gets from `make dev`.
package devfleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/test/cluster"
)

const (
	// BrokerImage is the image the operator is told to use for broker pods; the node agent
	// runs the locally built fleetmq-broker binary for it. It is deliberately not a
	// registry name, so it can never be mistaken for a published image.
	BrokerImage = "fleetmq.local/fleetmq-broker:dev"
	// OperatorNamespace is where the operator's ServiceAccount and RBAC live, as in
	// config/default.
	OperatorNamespace = "fleetmq-system"
	// OperatorServiceAccount is the operator's ServiceAccount: config/rbac's
	// controller-manager with config/default's fleetmq- name prefix.
	OperatorServiceAccount = "fleetmq-controller-manager"
	// SampleNamespace is where config/samples is applied.
	SampleNamespace = "default"
	// SampleBroker is the name of the MQTTBroker in config/samples.
	SampleBroker = "fleet"
)

// Options configures Start. The zero value builds everything it needs from the repository
// that holds the working directory.
type Options struct {
	// RepoRoot is the FleetMQ repository (default: found above the working directory).
	RepoRoot string
	// Dir is the cluster directory (logs, kubeconfigs, pods). Default: a temporary
	// directory removed by Stop.
	Dir string
	// KubeBinDir holds etcd, kube-apiserver, kube-controller-manager and kubectl. Default:
	// $KUBEBUILDER_ASSETS, else built (cached) with hack/kube-binaries.sh.
	KubeBinDir string
	// BinDir receives the fleetmq-broker and fleetmq-operator binaries (default
	// <RepoRoot>/bin). go build's cache keeps a rebuild of unchanged code to a second or two.
	BinDir string
	// APIServerPort is the kube-apiserver's port (0: any free port). A taken port fails
	// Start with a message that names it.
	APIServerPort int
	// SkipSamples leaves config/samples unapplied.
	SkipSamples bool
	// Progress receives one line per step (nil: discarded).
	Progress io.Writer
	// Logger receives the node agent's warnings (nil: discarded).
	Logger *slog.Logger
}

// Fleet is a running local fleet.
type Fleet struct {
	// Cluster is the local cluster the fleet runs in.
	Cluster *cluster.Cluster
	// Client is an admin controller-runtime client that knows the FleetMQ kinds.
	Client client.Client
	// RepoRoot is the repository the binaries and manifests came from.
	RepoRoot string
	// BrokerBinary and OperatorBinary are the binaries built for the fleet.
	BrokerBinary, OperatorBinary string
	// Operator is the operator process.
	Operator *cluster.Process
	// OperatorHealthAddr is where the operator's /healthz and /readyz are served.
	OperatorHealthAddr string

	progress io.Writer
}

// Start builds the binaries, starts the cluster and the operator and (unless
// SkipSamples) applies config/samples. It does not wait for the sample fleet to become
// Ready; WaitReady does. On error, everything started is stopped.
func Start(ctx context.Context, opts Options) (f *Fleet, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the local fleet must run as root: the cluster creates a network namespace per pod and mounts volumes (try: sudo -E make dev)")
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	root := opts.RepoRoot
	if root == "" {
		if root, err = cluster.FindRepoRoot(); err != nil {
			return nil, fmt.Errorf("find the FleetMQ repository (run from inside it): %w", err)
		}
	}
	binDir := opts.BinDir
	if binDir == "" {
		binDir = filepath.Join(root, "bin")
	}
	kubeBin := opts.KubeBinDir
	if kubeBin == "" {
		kubeBin = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if kubeBin == "" {
		fmt.Fprintln(progress, "Building or finding the Kubernetes binaries (hack/kube-binaries.sh; cached after the first run)...")
		if kubeBin, err = cluster.BuildKubeBinaries(ctx, root, progress); err != nil {
			return nil, err
		}
	}
	fmt.Fprintln(progress, "Building fleetmq-broker and fleetmq-operator...")
	broker, err := goBuild(ctx, root, binDir, "fleetmq-broker")
	if err != nil {
		return nil, err
	}
	operator, err := goBuild(ctx, root, binDir, "fleetmq-operator")
	if err != nil {
		return nil, err
	}

	fmt.Fprintln(progress, "Starting the local cluster (etcd, kube-apiserver, kube-controller-manager, node agent)...")
	c, err := cluster.Start(ctx, cluster.Options{
		Dir: opts.Dir, BinDir: kubeBin, Logger: opts.Logger, APIServerPort: opts.APIServerPort,
		Images: map[string]string{BrokerImage: broker},
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	cl, err := client.New(c.RESTConfig(), client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	f = &Fleet{Cluster: c, Client: cl, RepoRoot: root, BrokerBinary: broker, OperatorBinary: operator, progress: progress}

	fmt.Fprintln(progress, "Installing the CRDs (config/crd/bases)...")
	if _, err := c.Kubectl(ctx, "apply", "--server-side", "-f", filepath.Join(root, "config", "crd", "bases")); err != nil {
		return nil, err
	}
	if _, err := c.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/mqttbrokers.mqtt.fleetmq.io", "crd/mqttusers.mqtt.fleetmq.io"); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "Creating namespace %s with the operator's ServiceAccount and RBAC (config/rbac)...\n", OperatorNamespace)
	if err := c.CreateNamespace(ctx, OperatorNamespace); err != nil {
		return nil, err
	}
	if err := f.applyRBAC(ctx); err != nil {
		return nil, err
	}
	if err := f.startOperator(ctx); err != nil {
		return nil, err
	}
	if !opts.SkipSamples {
		fmt.Fprintf(progress, "Applying config/samples in namespace %s...\n", SampleNamespace)
		if _, err := c.Kubectl(ctx, "apply", "-n", SampleNamespace, "-k", filepath.Join(root, "config", "samples")); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Stop stops the operator, every pod and the control plane.
func (f *Fleet) Stop() error { return f.Cluster.Stop() }

// goBuild builds ./cmd/<name> of root into dir/<name>.
func goBuild(ctx context.Context, root, dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	out := filepath.Join(dir, name)
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", out, "./cmd/"+name)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("build %s: the go command is not on PATH (set GO=/path/to/go): %w", name, err)
		}
		return "", fmt.Errorf("go build ./cmd/%s failed: %w\n%s", name, err, b)
	}
	return out, nil
}

// applyRBAC applies config/rbac the way config/default does (namespace fleetmq-system,
// names prefixed fleetmq-), so the operator runs with exactly the permissions a
// `kubectl apply -k config/default` install grants: a permission missing from role.yaml
// fails here as it would in a real cluster.
func (f *Fleet) applyRBAC(ctx context.Context) error {
	dir, err := os.MkdirTemp(f.Cluster.Dir(), "rbac-")
	if err != nil {
		return err
	}
	// kustomize accepts a base outside the kustomization's root only as a relative path.
	rel, err := filepath.Rel(dir, filepath.Join(f.RepoRoot, "config", "rbac"))
	if err != nil {
		return err
	}
	kust := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: %s\nnamePrefix: fleetmq-\nresources:\n  - %s\n",
		OperatorNamespace, rel)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		return err
	}
	_, err = f.Cluster.Kubectl(ctx, "apply", "-k", dir)
	return err
}

// startOperator runs the operator as a host process authenticated as its ServiceAccount.
func (f *Fleet) startOperator(ctx context.Context) error {
	kubeconfig, err := f.Cluster.KubeconfigFor(ctx, OperatorNamespace, OperatorServiceAccount)
	if err != nil {
		return fmt.Errorf("kubeconfig for the operator's ServiceAccount: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("find a free port for the operator's health probes: %w", err)
	}
	f.OperatorHealthAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	fmt.Fprintf(f.progress, "Starting the operator as %s/%s (log: %s)...\n", OperatorNamespace, OperatorServiceAccount,
		filepath.Join(f.Cluster.Dir(), "logs", "operator.log"))
	f.Operator, err = f.Cluster.StartProcess("operator", []string{
		f.OperatorBinary,
		"--kubeconfig=" + kubeconfig,
		"--broker-image=" + BrokerImage,
		"--leader-elect=false",
		"--metrics-bind-address=0",
		"--health-probe-bind-address=" + f.OperatorHealthAddr,
	}, nil)
	if err != nil {
		return fmt.Errorf("start the operator: %w", err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitReady waits until the MQTTBroker namespace/name has a Ready condition that is True for
// its current generation, calling report (if not nil) whenever the number of ready pods
// changes. On timeout the error says what the broker's conditions were.
func (f *Fleet) WaitReady(ctx context.Context, namespace, name string, report func(ready, want int32)) (*v1.MQTTBroker, error) {
	last := int32(-1)
	var b v1.MQTTBroker
	var lastErr error
	for {
		lastErr = f.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &b)
		if lastErr == nil {
			want := int32(1)
			if b.Spec.Replicas != nil {
				want = *b.Spec.Replicas
			}
			if report != nil && b.Status.ReadyReplicas != last {
				last = b.Status.ReadyReplicas
				report(last, want)
			}
			if c := meta.FindStatusCondition(b.Status.Conditions, v1.ConditionReady); c != nil &&
				c.Status == "True" && c.ObservedGeneration == b.Generation && b.Status.ReadyReplicas == want {
				return &b, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("MQTTBroker %s/%s not Ready: %w (%s)", namespace, name, ctx.Err(), describe(&b, lastErr))
		case <-f.Cluster.Done():
			return nil, fmt.Errorf("the control plane stopped: %w", f.Cluster.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func describe(b *v1.MQTTBroker, err error) string {
	if err != nil {
		return "last get: " + err.Error()
	}
	var parts []string
	for _, c := range b.Status.Conditions {
		parts = append(parts, fmt.Sprintf("%s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message))
	}
	if len(parts) == 0 {
		return "no conditions yet; is the operator running? see logs/operator.log"
	}
	return strings.Join(parts, "; ")
}
