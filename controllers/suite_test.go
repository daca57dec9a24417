package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	mqttv1alpha1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

// The suite runs every spec in this package against one real kube-apiserver and etcd
// (envtest) with the CRDs from config/crd/bases installed, plus the real cert-manager
// Certificate and prometheus-operator ServiceMonitor CRDs (thirdPartyCRDs). Specs that need the reconcilers
// get them from a controller-runtime manager that the suite starts when any are registered.

var (
	// testScheme knows the built-in kinds and the mqtt.fleetmq.io kinds.
	testScheme = runtime.NewScheme()
	// testEnv is the API server and etcd the suite runs against.
	testEnv *envtest.Environment
	// cfg reaches testEnv with admin rights.
	cfg *rest.Config
	// k8sClient reads and writes straight to the API server, without a cache, so a spec
	// always sees the latest state.
	k8sClient client.Client
	// ctx lives for the whole suite; cancelling it stops the manager.
	ctx    context.Context
	cancel context.CancelFunc

	// managerCache is the suite manager's cache, for specs that check what it holds.
	managerCache cache.Cache

	// managerWrites records every write the manager's client sends, so specs can check that
	// an idle resync writes nothing.
	managerWrites = &writeRecorder{}
)

// reconcilerSetups register the reconcilers under test with the suite's manager. A
// controller's test file adds its setup from an init function, e.g.
//
//	func init() {
//		reconcilerSetups = append(reconcilerSetups, func(mgr ctrl.Manager) error {
//			return (&MQTTBrokerReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr)
//		})
//	}
//
// With none registered the suite starts no manager and only the API server is under test.
var reconcilerSetups []func(mgr ctrl.Manager) error

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(testScheme))
	utilruntime.Must(mqttv1alpha1.AddToScheme(testScheme))
}

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.Background())

	assets, err := kubebuilderAssets()
	Expect(err).NotTo(HaveOccurred())

	optionalCRDs, err := thirdPartyCRDDir()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, optionalCRDs)

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases"), optionalCRDs},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		// envtest's 20 s default is too short for a loaded 2-core machine
		// (CI, or a laptop compiling): kube-apiserver alone can take a minute.
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred(), "starting kube-apiserver and etcd from %s", assets)
	Expect(cfg).NotTo(BeNil())

	k8sClient, err = client.New(cfg, client.Options{Scheme: testScheme})
	Expect(err).NotTo(HaveOccurred())

	if len(reconcilerSetups) == 0 {
		return
	}
	mgrCfg := rest.CopyConfig(cfg)
	mgrCfg.Wrap(managerWrites.wrap)
	mgr, err := ctrl.NewManager(mgrCfg, ctrl.Options{
		Scheme: testScheme,
		Cache:  CacheOptions(),
		// Specs run in parallel with other packages' tests: bind nothing.
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	Expect(err).NotTo(HaveOccurred())
	managerCache = mgr.GetCache()
	for _, setup := range reconcilerSetups {
		Expect(setup(mgr)).To(Succeed())
	}
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed(), "running the manager")
	}()
})

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// thirdPartyCRDs are the CRDs of the optional kinds the operator writes when they are
// served: cert-manager's Certificate (spec.tls.issuerRef) and the prometheus-operator's
// ServiceMonitor (spec.monitoring). They come from those projects' Go modules at pinned
// versions, so the specs run against the real schemas.
var thirdPartyCRDs = []struct{ module, version, file string }{
	{"github.com/cert-manager/cert-manager", "v1.21.2", "deploy/crds/cert-manager.io_certificates.yaml"},
	{"github.com/prometheus-operator/prometheus-operator", "v0.85.0", "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"},
}

// thirdPartyCRDDir downloads the modules of thirdPartyCRDs through the Go module proxy (or
// finds them in the module cache) and copies their CRDs into a new directory.
func thirdPartyCRDDir() (string, error) {
	dir, err := os.MkdirTemp("", "fleetmq-optional-crds-")
	if err != nil {
		return "", err
	}
	for _, c := range thirdPartyCRDs {
		cmd := exec.Command("go", "mod", "download", "-json", c.module+"@"+c.version)
		// Outside this module, so that the download cannot touch go.mod or go.sum.
		cmd.Dir = dir
		out, err := cmd.Output()
		var info struct{ Dir, Error string }
		if jerr := json.Unmarshal(out, &info); jerr != nil || info.Error != "" || err != nil {
			return "", fmt.Errorf("go mod download %s@%s: %v %s", c.module, c.version, err, info.Error)
		}
		data, err := os.ReadFile(filepath.Join(info.Dir, c.file))
		if err != nil {
			return "", fmt.Errorf("CRD of %s@%s: %w", c.module, c.version, err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(c.file)), data, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// kubebuilderAssets returns the directory holding kube-apiserver and etcd: KUBEBUILDER_ASSETS
// when set (make test sets it), otherwise what hack/kube-binaries.sh builds or finds in its
// cache, so that `go test ./controllers/...` works in a fresh clone too.
func kubebuilderAssets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	script := filepath.Join("..", "hack", "kube-binaries.sh")
	cmd := exec.Command(script, "kube-apiserver", "etcd", "kubectl")
	// The first build takes minutes; let its progress through instead of hanging silently.
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("KUBEBUILDER_ASSETS is unset and %s failed (run it by hand to see why): %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// apiWrite is one mutating request sent to the API server.
type apiWrite struct {
	// Method is the HTTP method: POST, PUT, PATCH or DELETE.
	Method string
	// Path is the request path, e.g. /api/v1/namespaces/ns/configmaps/fleet-acl.
	Path string
}

func (w apiWrite) String() string { return w.Method + " " + w.Path }

// writeRecorder records the writes that pass through an HTTP transport. Reads (GET, and so
// LIST and WATCH) are not recorded.
type writeRecorder struct {
	mu     sync.Mutex
	writes []apiWrite
}

// wrap is a transport.WrapperFunc for rest.Config.Wrap.
func (r *writeRecorder) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		switch req.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			r.mu.Lock()
			r.writes = append(r.writes, apiWrite{Method: req.Method, Path: req.URL.Path})
			r.mu.Unlock()
		}
		return next.RoundTrip(req)
	})
}

// mark returns a position to pass to since.
func (r *writeRecorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.writes)
}

// since returns the writes recorded after mark whose path contains pathPart ("" for all).
func (r *writeRecorder) since(mark int, pathPart string) []apiWrite {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []apiWrite
	for _, w := range r.writes[mark:] {
		if strings.Contains(w.Path, pathPart) {
			out = append(out, w)
		}
	}
	return out
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
