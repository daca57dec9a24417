// Command fleetmq-operator is the FleetMQ Kubernetes operator: a controller-runtime manager
// running the MQTTBroker and MQTTUser reconcilers.
//
// It takes kubebuilder's standard flags and finds its cluster the usual way: --kubeconfig,
// else $KUBECONFIG, else the in-cluster service account, else ~/.kube/config. So
// `make run` drives whatever cluster kubectl points at.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	mqttv1alpha1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/controllers"
)

// defaultBrokerImage runs brokers that set no spec.image: the image of this release, which
// holds both binaries. A release build sets the version with -ldflags
// "-X github.com/fleetmq/fleetmq/broker.Version=<version>".
var defaultBrokerImage = "ghcr.io/fleetmq/fleetmq:" + broker.Version

// skipControllerNameValidation turns off controller-runtime's check that no two
// controllers of the process share a name, which the tests need to run the operator more
// than once in one process. The operator itself runs one manager.
var skipControllerNameValidation = false

// leaderElectionID names the Lease that replicas of the operator compete for.
const leaderElectionID = "fleetmq-operator.mqtt.fleetmq.io"

func main() {
	if err := run(ctrl.SetupSignalHandler(), os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fleetmq-operator:", err)
		os.Exit(1)
	}
}

// options are the command-line settings.
type options struct {
	metricsAddr      string
	metricsSecure    bool
	enableHTTP2      bool
	probeAddr        string
	leaderElect      bool
	leaderElectionNS string
	brokerImage      string
	concurrency      int
	watchNamespaces  []string // empty: every namespace
	zap              zap.Options
}

// parseFlags parses args; flag.ErrHelp is returned for -h.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("fleetmq-operator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080",
		`address the Prometheus metrics endpoint binds to; "0" disables it`)
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true,
		"serve metrics over HTTPS to scrapers the API server authenticates and authorizes (TokenReview and SubjectAccessReview); --metrics-secure=false serves plain HTTP")
	fs.BoolVar(&o.enableHTTP2, "enable-http2", false,
		"allow HTTP/2 on the metrics endpoint; off by default against the HTTP/2 Stream Cancellation and Rapid Reset attacks (CVE-2023-44487)")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081",
		`address the /healthz and /readyz endpoints bind to; "0" disables them`)
	fs.BoolVar(&o.leaderElect, "leader-elect", false,
		"elect a leader, so that of several operator replicas only one reconciles")
	fs.StringVar(&o.leaderElectionNS, "leader-election-namespace", "",
		"namespace of the leader election Lease (default: the operator's own namespace; required out of cluster)")
	fs.StringVar(&o.brokerImage, "broker-image", defaultBrokerImage,
		"image of the broker pods of MQTTBrokers that set no spec.image")
	fs.IntVar(&o.concurrency, "max-concurrent-reconciles", 4,
		"how many MQTTBrokers (and, separately, MQTTUsers) are reconciled at once")
	fs.Func("watch-namespaces",
		"comma-separated namespaces whose MQTTBrokers and MQTTUsers the operator manages (default: every namespace); "+
			"limited to namespaces, it needs its manager rules as a Role in each of them instead of a ClusterRole",
		func(v string) error {
			o.watchNamespaces = nil
			for ns := range strings.SplitSeq(v, ",") {
				ns = strings.TrimSpace(ns)
				if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
					return fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
				}
				if !slices.Contains(o.watchNamespaces, ns) {
					o.watchNamespaces = append(o.watchNamespaces, ns)
				}
			}
			return nil
		})
	config.RegisterFlags(fs) // --kubeconfig
	o.zap = zap.Options{Development: false}
	o.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: fleetmq-operator takes flags only", fs.Args())
	}
	if o.brokerImage == "" {
		return nil, errors.New("--broker-image must not be empty")
	}
	if o.concurrency < 1 {
		return nil, fmt.Errorf("--max-concurrent-reconciles must be at least 1, not %d", o.concurrency)
	}
	return o, nil
}

// run parses args and runs the manager until ctx is cancelled.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap), zap.WriteTo(stderr)))
	log := ctrl.Log.WithName("setup")

	cfg, err := config.GetConfig()
	if err != nil {
		return fmt.Errorf("find the cluster (set --kubeconfig or KUBECONFIG, or run in a pod): %w", err)
	}
	mgr, err := newManager(cfg, o)
	if err != nil {
		return err
	}
	watching := "all"
	if len(o.watchNamespaces) > 0 {
		watching = strings.Join(o.watchNamespaces, ",")
	}
	log.Info("Starting the manager", "host", cfg.Host, "brokerImage", o.brokerImage, "leaderElection", o.leaderElect, "namespaces", watching)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run the manager: %w", err)
	}
	return nil
}

// newManager builds the manager with both reconcilers and the health checks.
func newManager(cfg *rest.Config, o *options) (ctrl.Manager, error) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(mqttv1alpha1.AddToScheme(scheme))

	metrics := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.metricsSecure}
	if o.metricsSecure {
		// Only scrapers whose service account may get /metrics (the metrics-reader
		// ClusterRole) are served, over a self-signed certificate generated at start.
		metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	if !o.enableHTTP2 {
		metrics.TLSOpts = append(metrics.TLSOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	// Secrets the operator does not manage are cached without their data.
	cacheOptions := controllers.CacheOptions()
	if len(o.watchNamespaces) > 0 {
		// Every informer lists and watches these namespaces only, so namespaced Roles
		// are all the operator needs.
		cacheOptions.DefaultNamespaces = make(map[string]cache.Config, len(o.watchNamespaces))
		for _, ns := range o.watchNamespaces {
			cacheOptions.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cacheOptions,
		Metrics:                 metrics,
		Controller:              ctrlconfig.Controller{SkipNameValidation: &skipControllerNameValidation},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        leaderElectionID,
		LeaderElectionNamespace: o.leaderElectionNS,
		// Stepping down at once on SIGTERM lets the next replica take over without
		// waiting out the lease; safe because the manager stops before main returns.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create the manager: %w", err)
	}
	if err := (&controllers.MQTTBrokerReconciler{
		Client:                  mgr.GetClient(),
		Scheme:                  mgr.GetScheme(),
		Recorder:                mgr.GetEventRecorder("fleetmq-operator"),
		BrokerImage:             o.brokerImage,
		MaxConcurrentReconciles: o.concurrency,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the MQTTBroker controller: %w", err)
	}
	if err := (&controllers.MQTTUserReconciler{
		Client:                  mgr.GetClient(),
		Scheme:                  mgr.GetScheme(),
		Recorder:                mgr.GetEventRecorder("fleetmq-operator"),
		MaxConcurrentReconciles: o.concurrency,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the MQTTUser controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add the health check: %w", err)
	}
	// Ready once the caches have synced, so a rolling update of the operator waits for the
	// new replica to see the cluster.
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("informer caches have not synced")
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("add the readiness check: %w", err)
	}
	return mgr, nil
}
