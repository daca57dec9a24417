package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	mqttv1alpha1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

// The tests run the operator more than once in this process.
func init() { skipControllerNameValidation = true }

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.metricsAddr != ":8080" || o.probeAddr != ":8081" {
		t.Errorf("metrics %q, probes %q; want kubebuilder's :8080 and :8081", o.metricsAddr, o.probeAddr)
	}
	if !o.metricsSecure || o.enableHTTP2 {
		t.Error("metrics must default to HTTPS with authorization and without HTTP/2, as kubebuilder's scaffold")
	}
	if o.leaderElect {
		t.Error("leader election is on by default; kubebuilder's default (and make run's) is off")
	}
	if o.brokerImage != defaultBrokerImage || !strings.HasPrefix(o.brokerImage, "ghcr.io/fleetmq/fleetmq:") {
		t.Errorf("broker image %q", o.brokerImage)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{
		"--leader-elect", "--metrics-bind-address=0", "--metrics-secure=false", "--health-probe-bind-address=127.0.0.1:9440",
		"--broker-image=registry.example/fleetmq:1.2.3", "--zap-log-level=debug",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.leaderElect || o.metricsAddr != "0" || o.metricsSecure || o.probeAddr != "127.0.0.1:9440" || o.brokerImage != "registry.example/fleetmq:1.2.3" {
		t.Errorf("parsed %+v", o)
	}
	if o.zap.Level == nil {
		t.Error("--zap-log-level was not bound")
	}
}

func TestParseFlagsWatchNamespaces(t *testing.T) {
	o, err := parseFlags([]string{"--watch-namespaces=team-a, team-b,team-a"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.watchNamespaces, ",") != "team-a,team-b" {
		t.Errorf("namespaces %q, want team-a and team-b once each", o.watchNamespaces)
	}
	if o, _ := parseFlags(nil, io.Discard); len(o.watchNamespaces) != 0 {
		t.Errorf("default namespaces %q, want none (every namespace)", o.watchNamespaces)
	}
}

func TestParseFlagsRejects(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--broker-image="}, "--broker-image must not be empty"},
		{[]string{"--max-concurrent-reconciles=0"}, "--max-concurrent-reconciles must be at least 1"},
		{[]string{"run"}, "fleetmq-operator takes flags only"},
		{[]string{"--metrics-addr=:8080"}, "flag provided but not defined"},
		{[]string{"--watch-namespaces=team-a,Team_B"}, `namespace "Team_B"`},
		{[]string{"--watch-namespaces="}, `namespace ""`},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestRunAgainstKubeconfig runs the operator as `make run` does, against an API server it
// finds through KUBECONFIG, and checks that it serves its probes, serves metrics over HTTPS
// to an authorized scraper only, reconciles an MQTTBroker with the --broker-image value, and
// stops cleanly when cancelled.
func TestRunAgainstKubeconfig(t *testing.T) {
	env, cfg := startAPIServer(t)
	useKubeconfigOf(t, env, envtest.User{Name: "operator-test", Groups: []string{"system:masters"}})

	metricsAddr, probeAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{
			"--metrics-bind-address=" + metricsAddr,
			"--health-probe-bind-address=" + probeAddr,
			"--broker-image=registry.example/fleetmq:run-test",
		}, &logs)
	}()

	waitFor(t, done, &logs, "/readyz to answer 200", func() bool { return httpStatus("http://"+probeAddr+"/readyz") == http.StatusOK })
	if s := httpStatus("http://" + probeAddr + "/healthz"); s != http.StatusOK {
		t.Errorf("/healthz answered %d", s)
	}

	c := adminClient(t, cfg)
	b := &mqttv1alpha1.MQTTBroker{}
	b.Namespace, b.Name = "default", "fleet"
	if err := c.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	sts := &appsv1.StatefulSet{}
	waitFor(t, done, &logs, "the StatefulSet of MQTTBroker default/fleet", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "fleet"}, sts) == nil
	})
	if img := sts.Spec.Template.Spec.Containers[0].Image; img != "registry.example/fleetmq:run-test" {
		t.Errorf("broker image %q, want the --broker-image value", img)
	}

	// Metrics: refused without credentials, served to a service account that may read them.
	metricsURL := "https://" + metricsAddr + "/metrics"
	if s, _ := scrape(t, metricsURL, ""); s != http.StatusUnauthorized {
		t.Errorf("an anonymous scrape got %d, want 401", s)
	}
	token := scraperToken(t, ctx, cfg, c)
	status, metrics := scrape(t, metricsURL, token)
	if status != http.StatusOK {
		t.Fatalf("an authorized scrape got %d: %s", status, metrics)
	}
	if !strings.Contains(metrics, `controller_runtime_reconcile_total{controller="mqttbroker"`) {
		t.Errorf("/metrics has no reconcile counter of the mqttbroker controller")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after cancellation, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the manager did not stop within 30s of cancellation")
	}
}

// TestRunWithNamespacedRBAC runs the operator limited to one namespace as a user whose
// only permissions are the manager rules of config/rbac/role.yaml as a Role there: it
// starts, reconciles an MQTTBroker in its namespace without a single forbidden request,
// and leaves one in another namespace alone.
func TestRunWithNamespacedRBAC(t *testing.T) {
	env, cfg := startAPIServer(t)
	c := adminClient(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	data, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var manager rbacv1.ClusterRole
	if err := yaml.Unmarshal(data, &manager); err != nil || len(manager.Rules) == 0 {
		t.Fatalf("config/rbac/role.yaml: %v (%d rules)", err, len(manager.Rules))
	}
	const user = "scoped-operator"
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "fleetmq-manager"}, Rules: manager.Rules},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "fleetmq-manager"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "fleetmq-manager"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		},
	} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	useKubeconfigOf(t, env, envtest.User{Name: user})

	probeAddr := freeAddr(t)
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--watch-namespaces=team-a", "--metrics-bind-address=0", "--health-probe-bind-address=" + probeAddr}, &logs)
	}()
	waitFor(t, done, &logs, "/readyz to answer 200", func() bool { return httpStatus("http://"+probeAddr+"/readyz") == http.StatusOK })

	for _, ns := range []string{"team-b", "team-a"} { // team-b first: it has had its chance when team-a is done
		b := &mqttv1alpha1.MQTTBroker{}
		b.Namespace, b.Name = ns, "fleet"
		if err := c.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, done, &logs, "the StatefulSet of MQTTBroker team-a/fleet", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "fleet"}, &appsv1.StatefulSet{}) == nil
	})
	waitFor(t, done, &logs, "MQTTBroker team-a/fleet's status", func() bool {
		b := &mqttv1alpha1.MQTTBroker{}
		return c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "fleet"}, b) == nil && len(b.Status.Conditions) > 0
	})
	if err := c.Get(ctx, client.ObjectKey{Namespace: "team-b", Name: "fleet"}, &appsv1.StatefulSet{}); !apierrors.IsNotFound(err) {
		t.Errorf("the StatefulSet of team-b/fleet: %v; want none, team-b is not watched", err)
	}
	if b := (&mqttv1alpha1.MQTTBroker{}); c.Get(ctx, client.ObjectKey{Namespace: "team-b", Name: "fleet"}, b) == nil && len(b.Status.Conditions) > 0 {
		t.Errorf("team-b/fleet has status %v; want none", b.Status.Conditions)
	}
	if log := logs.String(); strings.Contains(log, "forbidden") {
		t.Errorf("the operator made forbidden requests:\n%s", log)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run returned %v after cancellation, want nil", err)
	}
}

// startAPIServer starts kube-apiserver and etcd with the CRDs installed, stopped when the
// test ends.
func startAPIServer(t *testing.T) (*envtest.Environment, *rest.Config) {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Skip("KUBEBUILDER_ASSETS is unset: run with KUBEBUILDER_ASSETS=$(hack/kube-binaries.sh) to start an API server")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start the API server: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop the API server: %v", err)
		}
	})
	return env, cfg
}

// useKubeconfigOf points KUBECONFIG, where the operator finds its cluster, at a kubeconfig
// of a new user of env.
func useKubeconfigOf(t *testing.T, env *envtest.Environment, u envtest.User) {
	t.Helper()
	user, err := env.AddUser(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", path)
}

// adminClient is a client with envtest's admin credentials, for the test's own requests.
func adminClient(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(mqttv1alpha1.AddToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// freeAddr returns a 127.0.0.1 address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls cond for up to 30s, failing early if the operator exits.
func waitFor(t *testing.T, done <-chan error, logs *syncBuffer, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case err := <-done:
			t.Fatalf("the operator exited (%v) while waiting for %s; its log:\n%s", err, what, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; the operator's log:\n%s", what, logs.String())
		}
	}
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// scrape GETs url over TLS (the operator's certificate is self-signed) with an optional
// bearer token and returns the status and body.
func scrape(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // self-signed, and only the authorization is under test
	}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// scraperToken creates a ServiceAccount that may GET /metrics, as the metrics-reader
// ClusterRole grants, and returns a token for it.
func scraperToken(t *testing.T, ctx context.Context, cfg *rest.Config, c client.Client) string {
	t.Helper()
	objs := []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "scraper"}},
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "test-metrics-reader"},
			Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "test-metrics-reader"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "test-metrics-reader"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "default", Name: "scraper"}},
		},
	}
	for _, obj := range objs {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, "scraper", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("request a token for the scraper: %v", err)
	}
	return tr.Status.Token
}

// syncBuffer is a bytes.Buffer the operator's logger and the test can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
