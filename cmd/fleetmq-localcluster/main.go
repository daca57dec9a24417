// Command fleetmq-localcluster is the driver of `make dev`: it builds fleetmq-broker and
// fleetmq-operator, starts the local Kubernetes cluster of test/cluster (etcd,
// kube-apiserver, kube-controller-manager and a node agent that runs pods as local
// processes), installs the CRDs, runs the operator as a host process under its own
// ServiceAccount and the RBAC of config/rbac, applies config/samples (a 3-replica
// MQTTBroker "fleet" and two MQTTUsers), waits for the fleet to be Ready and prints where to
// reach it. It then runs until Ctrl-C and stops every process it started.
//
//	sudo -E go run ./cmd/fleetmq-localcluster
//	export KUBECONFIG=...   (printed once the fleet is Ready)
//	kubectl get mqttbrokers
//	kubectl scale mqttbroker/fleet --replicas=5
//
// With --no-samples it only brings up the cluster and the operator. It must run as root
// (network namespaces, mounts).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/test/devfleet"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		// The cluster package names its Options fields in hints; say the flag instead.
		msg := strings.NewReplacer("Options.APIServerPort", "--port", "Options.BinDir", "--bin-dir").Replace(err.Error())
		fmt.Fprintln(os.Stderr, "fleetmq-localcluster:", msg)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fleetmq-localcluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		dir        = fs.String("dir", "", "cluster directory for logs, kubeconfigs and pod files (default: a new temporary directory, removed at exit)")
		kubeBinDir = fs.String("bin-dir", os.Getenv("KUBEBUILDER_ASSETS"), "directory with etcd, kube-apiserver, kube-controller-manager and kubectl (default $KUBEBUILDER_ASSETS; else built and cached by hack/kube-binaries.sh)")
		outDir     = fs.String("out-dir", "", "where fleetmq-broker and fleetmq-operator are built (default <repository>/bin)")
		kubeconfig = fs.String("kubeconfig", "", "also copy the admin kubeconfig to this path")
		port       = fs.Int("port", 0, "kube-apiserver port on the pod network's bridge address (0: any free port)")
		noSamples  = fs.Bool("no-samples", false, "do not apply config/samples; bring up the cluster and the operator only")
		timeout    = fs.Duration("ready-timeout", 3*time.Minute, "how long the sample fleet may take to become Ready once everything is built and started")
		verbose    = fs.Bool("v", false, "log the node agent's progress and warnings")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see --help", fs.Arg(0))
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	begin := time.Now()
	// Building is not under the timeout: on a fresh machine the Kubernetes binaries and
	// the operator take many minutes to compile, and killing that build helps nobody.
	// Ctrl-C still stops it.
	f, err := devfleet.Start(ctx, devfleet.Options{
		Dir: *dir, KubeBinDir: *kubeBinDir, BinDir: *outDir, SkipSamples: *noSamples, APIServerPort: *port,
		Progress: stderr, Logger: logger,
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(stderr, "Stopping the operator, the broker pods and the control plane...")
		if err := f.Stop(); err != nil {
			fmt.Fprintln(stderr, "fleetmq-localcluster: stop:", err)
		}
	}()
	kc := f.Cluster.AdminKubeconfig()
	if *kubeconfig != "" {
		data, err := os.ReadFile(kc)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*kubeconfig, data, 0o600); err != nil {
			return fmt.Errorf("copy the kubeconfig to %s: %w", *kubeconfig, err)
		}
		kc = *kubeconfig
	}
	startCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if !*noSamples {
		fmt.Fprintf(stderr, "Waiting for MQTTBroker %s/%s to be Ready...\n", devfleet.SampleNamespace, devfleet.SampleBroker)
		b, err := f.WaitReady(startCtx, devfleet.SampleNamespace, devfleet.SampleBroker, func(ready, want int32) {
			fmt.Fprintf(stderr, "  pods ready %d/%d  (%s)\n", ready, want, time.Since(begin).Round(100*time.Millisecond))
		})
		if err != nil {
			return fmt.Errorf("%w\noperator log: %s; pod logs under %s", err, f.Operator.LogPath(), filepath.Join(f.Cluster.Dir(), "pods"))
		}
		fmt.Fprintf(stdout, "Fleet %s/%s Ready in %s.\n", b.Namespace, b.Name, time.Since(begin).Round(100*time.Millisecond))
		if err := printFleet(ctx, stdout, f, b); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "Local cluster and operator ready in %s.\n", time.Since(begin).Round(100*time.Millisecond))
	}
	fmt.Fprintf(stdout, "  apiserver:   %s\n", f.Cluster.Server())
	fmt.Fprintf(stdout, "  directory:   %s (logs/, pods/)\n", f.Cluster.Dir())
	fmt.Fprintf(stdout, "  operator:    log %s\n", f.Operator.LogPath())
	fmt.Fprintf(stdout, "\n  export KUBECONFIG=%s\n\n", kc)
	fmt.Fprintln(stdout, "Press Ctrl-C to stop.")
	select {
	case <-ctx.Done():
		return nil
	case <-f.Cluster.Done():
		return fmt.Errorf("the control plane stopped: %w", f.Cluster.Err())
	case <-f.Operator.Done():
		return fmt.Errorf("the operator exited (%v); see %s", f.Operator.Err(), f.Operator.LogPath())
	}
}

// printFleet prints where clients reach each broker pod and where the credentials and the
// CA are. The pods are reachable from this host on their pod IPs (the cluster has no
// Service data plane, so the status URLs, which name the Service, resolve only in a real
// cluster).
func printFleet(ctx context.Context, w io.Writer, f *devfleet.Fleet, b *v1.MQTTBroker) error {
	var pods corev1.PodList
	if err := f.Client.List(ctx, &pods, client.InNamespace(b.Namespace), client.MatchingLabels{"app.kubernetes.io/instance": b.Name}); err != nil {
		return fmt.Errorf("list the broker pods: %w", err)
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	fmt.Fprintln(w, "  MQTT endpoints (reachable from this host):")
	for _, p := range pods.Items {
		var ports []string
		for _, l := range b.Spec.Listeners {
			ports = append(ports, fmt.Sprintf("%s://%s:%d%s", l.Protocol, p.Status.PodIP, l.Port, l.Path))
		}
		fmt.Fprintf(w, "    %-10s %s\n", p.Name, strings.Join(ports, "  "))
	}
	for _, e := range b.Status.Endpoints {
		fmt.Fprintf(w, "  in-cluster:  %s\n", e.URL)
	}
	var users v1.MQTTUserList
	if err := f.Client.List(ctx, &users, client.InNamespace(b.Namespace)); err != nil {
		return fmt.Errorf("list the MQTTUsers: %w", err)
	}
	fmt.Fprintln(w, "  credentials:")
	for _, u := range users.Items {
		switch {
		case u.Spec.Authentication.PasswordSecretRef != nil:
			fmt.Fprintf(w, "    %-10s password in Secret %s key %s (kubectl get secret %s -o jsonpath='{.data.%s}' | base64 -d)\n",
				u.Name, u.Spec.Authentication.PasswordSecretRef.Name, u.Spec.Authentication.PasswordSecretRef.Key,
				u.Spec.Authentication.PasswordSecretRef.Name, u.Spec.Authentication.PasswordSecretRef.Key)
		case u.Status.SecretName != "":
			fmt.Fprintf(w, "    %-10s generated, in Secret %s keys username and password\n", u.Name, u.Status.SecretName)
		default:
			fmt.Fprintf(w, "    %-10s (no credentials Secret reported yet)\n", u.Name)
		}
	}
	fmt.Fprintf(w, "  CA:          kubectl get secret %s-ca -o jsonpath='{.data.ca\\.crt}' | base64 -d > ca.crt\n", b.Name)
	return nil
}
