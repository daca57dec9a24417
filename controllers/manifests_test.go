package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The install manifests, judged by the suite's API server: the Helm chart as the pinned helm
// from hack/helm.sh renders it, and config/default as kustomize's own library (the code in
// `kubectl apply -k`) builds it. Every object goes through a server-side dry run, so the API
// server's schema validation (strict: unknown fields fail), defaulting and admission, Pod
// Security included, judge it as on a real install, and nothing is stored. Cross-references
// the API server does not check (binding -> role, binding -> service account, Service ->
// pods, ServiceMonitor -> Service) are checked here, and the container arguments are fed to
// the operator binary built from cmd/fleetmq-operator, which must accept every flag.

const (
	// chartDir is the Helm chart, relative to this package.
	chartDir = "../charts/fleetmq-operator"
	// chartRelease is the release name the specs install as; with the chart's naming it
	// gives resources the prefix fleetmq-operator.
	chartRelease = "fleetmq-operator"
	// manifestsFieldOwner is the field manager of the dry-run requests.
	manifestsFieldOwner = "fleetmq-manifests-test"
	// helmBuildTimeout bounds hack/helm.sh: building helm on a cold cache takes minutes on
	// two cores; a warm cache answers at once.
	helmBuildTimeout = 20 * time.Minute
	// operatorBuildTimeout bounds building cmd/fleetmq-operator (the test binary has already
	// compiled its dependencies).
	operatorBuildTimeout = 5 * time.Minute
	// manifestStepTimeout bounds one render, build or dry-run pass.
	manifestStepTimeout = 2 * time.Minute

	podSecurityEnforceLabel = "pod-security.kubernetes.io/enforce"
	podSecurityWarnLabel    = "pod-security.kubernetes.io/warn"
)

var _ = Describe("Install manifests: the Helm chart and kustomize config/default", Ordered, ContinueOnFailure, Label("manifests"), func() {
	var (
		helm        string // the pinned helm binary
		operatorBin string // cmd/fleetmq-operator, to check the Deployment's arguments
		dryRun      *manifestDryRunner
		helmNS      string // namespace the chart is rendered into, restricted Pod Security
	)

	BeforeAll(func(sctx SpecContext) {
		var err error
		helm, err = helmBinary(sctx)
		Expect(err).NotTo(HaveOccurred())

		operatorBin = filepath.Join(GinkgoT().TempDir(), "fleetmq-operator")
		build := exec.CommandContext(sctx, "go", "build", "-o", operatorBin, "github.com/fleetmq/fleetmq/cmd/fleetmq-operator")
		out, err := build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "building cmd/fleetmq-operator:\n%s", out)

		dryRun = newManifestDryRunner()

		// The namespace a user would `helm install -n` into, enforcing the restricted Pod
		// Security Standard; warn mirrors enforce so that a Deployment whose pods would be
		// rejected is reported at dry-run time instead of after the rollout stalls.
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			GenerateName: "fleetmq-helm-",
			Labels:       map[string]string{podSecurityEnforceLabel: "restricted", podSecurityWarnLabel: "restricted"},
		}}
		Expect(k8sClient.Create(sctx, ns)).To(Succeed())
		helmNS = ns.Name
	}, NodeTimeout(helmBuildTimeout+operatorBuildTimeout))

	Describe("the Helm chart", func() {
		It("keeps its CRDs byte-for-byte equal to config/crd/bases", func() {
			expectSameFiles(filepath.Join("..", "config", "crd", "bases"), filepath.Join(chartDir, "files", "crds"))
		})

		It("grants the operator exactly the rules controller-gen generated into config/rbac/role.yaml", func() {
			generated, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
			Expect(err).NotTo(HaveOccurred())
			copied, err := os.ReadFile(filepath.Join(chartDir, "files", "manager-role.yaml"))
			Expect(err).NotTo(HaveOccurred())
			Expect(string(copied)).To(Equal(string(generated)),
				"charts/fleetmq-operator/files/manager-role.yaml is stale: run `make helm-sync`")

			objs := renderChart(helm, helmNS)
			role := findManifest(objs, "ClusterRole", chartRelease+"-manager")
			Expect(role).NotTo(BeNil(), "the chart renders no ClusterRole %s-manager", chartRelease)
			var want map[string]any
			Expect(yaml.Unmarshal(generated, &want)).To(Succeed())
			Expect(role.Object["rules"]).NotTo(BeEmpty())
			Expect(role.Object["rules"]).To(Equal(want["rules"]))
		})

		It("renders the CRDs, kept on uninstall, unless installCRDs is false", func() {
			objs := renderChart(helm, helmNS)
			bases := readBaseCRDs()
			var rendered []string
			for _, obj := range objs {
				if obj.GetKind() != "CustomResourceDefinition" {
					continue
				}
				rendered = append(rendered, obj.GetName())
				base, ok := bases[obj.GetName()]
				Expect(ok).To(BeTrue(), "the chart renders CRD %s, which config/crd/bases lacks", obj.GetName())
				Expect(obj.Object["spec"]).To(Equal(base.Object["spec"]), "the spec of CRD %s differs from config/crd/bases", obj.GetName())
				Expect(obj.GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"),
					"helm uninstall would delete CRD %s and with it every fleet", obj.GetName())
			}
			Expect(rendered).To(ConsistOf(mapKeys(bases)))

			for _, obj := range renderChart(helm, helmNS, "installCRDs=false") {
				Expect(obj.GetKind()).NotTo(Equal("CustomResourceDefinition"))
			}
		})

		DescribeTable("renders objects the API server accepts, that refer to each other correctly",
			func(sctx SpecContext, values ...string) {
				objs := renderChart(helm, helmNS, values...)
				Expect(findManifest(objs, "Deployment", chartRelease)).NotTo(BeNil())
				Expect(checkManifestReferences(objs)).To(BeEmpty())
				Expect(dryRun.apply(sctx, objs, "monitoring.coreos.com")).To(BeEmpty())
				expectOperatorAcceptsArgs(sctx, operatorBin, objs)
			},
			Entry("with the default values"),
			Entry("with every optional object off",
				"metrics.enabled=false", "leaderElection.enabled=false", "installCRDs=false",
				"rbac.aggregateToDefaultRoles=false"),
			Entry("with every optional object on and the scheduling values set",
				"replicaCount=2", "metrics.serviceMonitor.enabled=true", "brokerImage=registry.example/fleetmq:1.2.3",
				"extraArgs={--zap-devel}", "logLevel=debug", "podLabels.team=iot", "podAnnotations.owner=iot",
				"nodeSelector.kubernetes\\.io/os=linux", "tolerations[0].key=dedicated",
				"tolerations[0].operator=Exists", "imagePullSecrets[0].name=registry",
				"serviceAccount.annotations.example\\.com/role=operator", "metrics.service.annotations.example\\.com/scrape=enabled",
				"metrics.serviceMonitor.labels.release=prometheus",
				"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=kubernetes.io/arch",
				"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=In",
				"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values={amd64,arm64}"),
			Entry("with an existing service account", "serviceAccount.create=false", "serviceAccount.name=fleetmq-operator-existing"),
		)

		It("gives broker pods the operator's own image unless brokerImage is set", func() {
			image := "registry.example/fleetmq:9.9.9"
			deploy := renderedDeployment(renderChart(helm, helmNS, "image.repository=registry.example/fleetmq", "image.tag=9.9.9"), chartRelease)
			Expect(deploy.Spec.Template.Spec.Containers[0].Image).To(Equal(image))
			Expect(deploy.Spec.Template.Spec.Containers[0].Args).To(ContainElement("--broker-image=" + image))

			deploy = renderedDeployment(renderChart(helm, helmNS, "brokerImage=registry.example/broker:1"), chartRelease)
			Expect(deploy.Spec.Template.Spec.Containers[0].Args).To(ContainElement("--broker-image=registry.example/broker:1"))
		})

		It("limits the operator to watchNamespaces with a Role in each instead of a ClusterRole", func(sctx SpecContext) {
			objs := renderChart(helm, helmNS, "watchNamespaces={"+helmNS+"}")
			name := chartRelease + "-manager"
			Expect(findManifest(objs, "ClusterRole", name)).To(BeNil(), "a manager ClusterRole is rendered although watchNamespaces is set")
			Expect(findManifest(objs, "ClusterRoleBinding", name)).To(BeNil())
			role := findManifest(objs, "Role", name)
			Expect(role).NotTo(BeNil())
			Expect(role.GetNamespace()).To(Equal(helmNS))
			generated, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
			Expect(err).NotTo(HaveOccurred())
			var manager rbacv1.ClusterRole
			Expect(yaml.Unmarshal(generated, &manager)).To(Succeed())
			var rendered rbacv1.Role
			Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(role.Object, &rendered)).To(Succeed())
			Expect(rendered.Rules).To(Equal(manager.Rules), "the Role's rules differ from config/rbac/role.yaml")
			binding := findManifest(objs, "RoleBinding", name)
			Expect(binding).NotTo(BeNil())
			Expect(binding.GetNamespace()).To(Equal(helmNS))
			Expect(renderedDeployment(objs, chartRelease).Spec.Template.Spec.Containers[0].Args).To(ContainElement("--watch-namespaces=" + helmNS))
			Expect(checkManifestReferences(objs)).To(BeEmpty())
			Expect(dryRun.apply(sctx, objs, "monitoring.coreos.com")).To(BeEmpty())
			expectOperatorAcceptsArgs(sctx, operatorBin, objs)
		}, NodeTimeout(manifestStepTimeout))

		It("refuses more than one replica without leader election", func(sctx SpecContext) {
			_, stderr, err := helmTemplate(sctx, helm, helmNS, "replicaCount=2", "leaderElection.enabled=false")
			Expect(err).To(HaveOccurred())
			Expect(stderr).To(ContainSubstring("replicaCount > 1 needs leaderElection.enabled"))
		})

		It("reports values that break the restricted Pod Security Standard", func(sctx SpecContext) {
			// The control for the dry runs above: their empty warning lists mean something
			// only if the API server does warn about a non-compliant pod template here.
			objs := renderChart(helm, helmNS, "securityContext.allowPrivilegeEscalation=true")
			failures := dryRun.apply(sctx, objs, "monitoring.coreos.com")
			Expect(failures).To(ContainElement(SatisfyAll(
				ContainSubstring("Deployment"), ContainSubstring("PodSecurity"), ContainSubstring("allowPrivilegeEscalation"))))
		})

		It("rejects misspelt or mistyped values instead of ignoring them", func(sctx SpecContext) {
			for _, value := range []string{"replicaCont=2", "podAnnotations.example\\.com/scrape=true", "metrics.port=https"} {
				_, stderr, err := helmTemplate(sctx, helm, helmNS, value)
				Expect(err).To(HaveOccurred(), "helm template --set %s", value)
				Expect(stderr).To(ContainSubstring("don't meet the specifications of the schema"), "helm template --set %s", value)
			}
		})

		It("passes helm lint --strict", func(sctx SpecContext) {
			for _, values := range [][]string{nil, {"metrics.serviceMonitor.enabled=true", "installCRDs=false"}} {
				args := []string{"lint", "--strict", chartDir}
				for _, v := range values {
					args = append(args, "--set", v)
				}
				out, err := helmCommand(sctx, helm, args...).CombinedOutput()
				Expect(err).NotTo(HaveOccurred(), "helm %s:\n%s", strings.Join(args, " "), out)
			}
		}, NodeTimeout(manifestStepTimeout))
	})

	Describe("kustomize config/default", func() {
		It("builds objects the API server accepts, that refer to each other correctly", func(sctx SpecContext) {
			objs := kustomizeBuild(filepath.Join("..", "config", "default"))
			deploy := renderedDeployment(objs, "fleetmq-controller-manager")
			Expect(deploy.Namespace).To(Equal("fleetmq-system"))
			ns := findManifest(objs, "Namespace", "fleetmq-system")
			Expect(ns).NotTo(BeNil(), "config/default renders no fleetmq-system Namespace")
			Expect(ns.GetLabels()).To(HaveKeyWithValue(podSecurityEnforceLabel, "restricted"))
			Expect(checkManifestReferences(objs)).To(BeEmpty())
			Expect(dryRun.apply(sctx, objs)).To(BeEmpty())
			expectOperatorAcceptsArgs(sctx, operatorBin, objs)
		}, NodeTimeout(manifestStepTimeout))

		It("grants the operator the generated manager-role", func() {
			objs := kustomizeBuild(filepath.Join("..", "config", "default"))
			role := findManifest(objs, "ClusterRole", "fleetmq-manager-role")
			Expect(role).NotTo(BeNil())
			binding := findManifest(objs, "ClusterRoleBinding", "fleetmq-manager-rolebinding")
			Expect(binding).NotTo(BeNil())
			roleName, _, _ := unstructured.NestedString(binding.Object, "roleRef", "name")
			Expect(roleName).To(Equal("fleetmq-manager-role"))
		})

		It("gives broker pods the image that `make deploy IMG=...` sets", func(sctx SpecContext) {
			// make deploy runs `kustomize edit set image fleetmq=$(IMG)` in a copy of
			// config/; this does the same edit to config/manager's images.
			dir := copyConfigTree()
			setKustomizeImage(filepath.Join(dir, "manager", "kustomization.yaml"), "fleetmq", "registry.example/fleetmq", "2.0.0")
			objs := kustomizeBuild(filepath.Join(dir, "default"))
			container := renderedDeployment(objs, "fleetmq-controller-manager").Spec.Template.Spec.Containers[0]
			Expect(container.Image).To(Equal("registry.example/fleetmq:2.0.0"))
			Expect(expandContainerArgs(container, "fleetmq-system")).To(ContainElement("--broker-image=registry.example/fleetmq:2.0.0"))
			expectOperatorAcceptsArgs(sctx, operatorBin, objs)
		}, NodeTimeout(manifestStepTimeout))

		It("confines the operator to its own namespace with config/namespaced", func(sctx SpecContext) {
			// prefix is the namePrefix of an overlay, on top of config/default's fleetmq-.
			expectNamespaced := func(objs []*unstructured.Unstructured, ns, prefix string) {
				GinkgoHelper()
				Expect(findManifest(objs, "ClusterRole", prefix+"fleetmq-manager-role")).To(BeNil())
				Expect(findManifest(objs, "ClusterRoleBinding", prefix+"fleetmq-manager-rolebinding")).To(BeNil())
				role := findManifest(objs, "Role", prefix+"fleetmq-manager-role")
				Expect(role).NotTo(BeNil(), "no Role %sfleetmq-manager-role", prefix)
				Expect(role.GetNamespace()).To(Equal(ns))
				generated := kustomizeBuild(filepath.Join("..", "config", "rbac"))
				wantRules, _, _ := unstructured.NestedSlice(findManifest(generated, "ClusterRole", "manager-role").Object, "rules")
				gotRules, _, _ := unstructured.NestedSlice(role.Object, "rules")
				Expect(gotRules).To(Equal(wantRules), "the Role holds other rules than config/rbac/role.yaml")

				binding := &rbacv1.RoleBinding{}
				raw := findManifest(objs, "RoleBinding", prefix+"fleetmq-manager-rolebinding")
				Expect(raw).NotTo(BeNil(), "no RoleBinding %sfleetmq-manager-rolebinding", prefix)
				Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(raw.Object, binding)).To(Succeed())
				Expect(binding.Namespace).To(Equal(ns))
				Expect(binding.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: prefix + "fleetmq-manager-role"}))
				Expect(binding.Subjects).To(ConsistOf(rbacv1.Subject{Kind: "ServiceAccount", Name: prefix + "fleetmq-controller-manager", Namespace: ns}))

				deploy := renderedDeployment(objs, prefix+"fleetmq-controller-manager")
				Expect(deploy.Namespace).To(Equal(ns))
				Expect(expandContainerArgs(deploy.Spec.Template.Spec.Containers[0], ns)).To(ContainElement("--watch-namespaces=" + ns))
				Expect(checkManifestReferences(objs)).To(BeEmpty())
			}
			objs := kustomizeBuild(filepath.Join("..", "config", "namespaced"))
			expectNamespaced(objs, "fleetmq-system", "")
			Expect(dryRun.apply(sctx, objs)).To(BeEmpty())
			expectOperatorAcceptsArgs(sctx, operatorBin, objs)

			// An overlay per namespace, as the kustomization says: namespace moves the Role,
			// its binding and what the operator watches along, and namePrefix keeps the
			// cluster-wide objects of two installs (the metrics-auth ClusterRoleBinding, which
			// names the install's ServiceAccount) apart. The CRDs are shared.
			dir := copyConfigTree()
			seen := map[string]string{}
			for _, ns := range []string{"iot-prod", "iot-staging"} {
				Expect(os.MkdirAll(filepath.Join(dir, ns), 0o755)).To(Succeed())
				Expect(os.WriteFile(filepath.Join(dir, ns, "kustomization.yaml"),
					[]byte(fmt.Sprintf("resources: [../namespaced]\nnamespace: %s\nnamePrefix: %s-\n", ns, ns)), 0o644)).To(Succeed())
				objs := kustomizeBuild(filepath.Join(dir, ns))
				expectNamespaced(objs, ns, ns+"-")
				for _, o := range objs {
					if o.GetNamespace() != "" || o.GetKind() == "CustomResourceDefinition" || o.GetKind() == "Namespace" {
						continue
					}
					key := o.GetKind() + "/" + o.GetName()
					Expect(seen).NotTo(HaveKey(key), "%s is in the installs for both %s and %s", key, seen[key], ns)
					seen[key] = ns
				}
			}
		}, NodeTimeout(manifestStepTimeout))

		It("scrapes the metrics Service when config/prometheus is enabled", func(sctx SpecContext) {
			dir := copyConfigTree()
			kustomization := filepath.Join(dir, "default", "kustomization.yaml")
			data, err := os.ReadFile(kustomization)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(data)).To(ContainSubstring("#- ../prometheus"))
			Expect(os.WriteFile(kustomization, bytes.Replace(data, []byte("#- ../prometheus"), []byte("- ../prometheus"), 1), 0o644)).To(Succeed())

			objs := kustomizeBuild(filepath.Join(dir, "default"))
			monitor := findManifest(objs, "ServiceMonitor", "fleetmq-controller-manager-metrics-monitor")
			Expect(monitor).NotTo(BeNil())
			Expect(monitor.GetNamespace()).To(Equal("fleetmq-system"))
			Expect(checkManifestReferences(objs)).To(BeEmpty())
			Expect(dryRun.apply(sctx, objs, "monitoring.coreos.com")).To(BeEmpty())
		}, NodeTimeout(manifestStepTimeout))
	})
})

// helmBinary returns the helm that hack/helm.sh builds (or finds in its cache), or
// $FLEETMQ_HELM when set.
func helmBinary(ctx context.Context) (string, error) {
	if bin := os.Getenv("FLEETMQ_HELM"); bin != "" {
		return bin, nil
	}
	script := filepath.Join("..", "hack", "helm.sh")
	cmd := exec.CommandContext(ctx, script)
	// The first build takes minutes; let its progress through instead of hanging silently.
	cmd.Stderr = GinkgoWriter
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s failed (run it by hand to see why): %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// helmCommand runs helm isolated from the user's helm configuration, repositories and
// plugins.
func helmCommand(ctx context.Context, helm string, args ...string) *exec.Cmd {
	home := GinkgoT().TempDir()
	cmd := exec.CommandContext(ctx, helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	return cmd
}

// helmTemplate renders the chart as release chartRelease in namespace with `--set` values.
func helmTemplate(ctx context.Context, helm, namespace string, values ...string) (stdout []byte, stderr string, err error) {
	args := []string{"template", chartRelease, chartDir, "--namespace", namespace}
	for _, v := range values {
		args = append(args, "--set", v)
	}
	cmd := helmCommand(ctx, helm, args...)
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	stdout, err = cmd.Output()
	return stdout, errBuf.String(), err
}

// renderChart renders the chart and decodes the objects, failing the spec on any error.
func renderChart(helm, namespace string, values ...string) []*unstructured.Unstructured {
	GinkgoHelper()
	ctx, cancel := context.WithTimeout(context.Background(), manifestStepTimeout)
	defer cancel()
	out, stderr, err := helmTemplate(ctx, helm, namespace, values...)
	Expect(err).NotTo(HaveOccurred(), "helm template --set %s:\n%s", strings.Join(values, ","), stderr)
	objs, err := decodeManifestObjects(out)
	Expect(err).NotTo(HaveOccurred(), "decoding the output of helm template --set %s", strings.Join(values, ","))
	Expect(objs).NotTo(BeEmpty())
	return objs
}

// kustomizeBuild builds a kustomization directory with kustomize's library, as
// `kubectl apply -k` and `kustomize build` do.
func kustomizeBuild(dir string) []*unstructured.Unstructured {
	GinkgoHelper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	Expect(err).NotTo(HaveOccurred(), "kustomize build %s", dir)
	out, err := resources.AsYaml()
	Expect(err).NotTo(HaveOccurred())
	objs, err := decodeManifestObjects(out)
	Expect(err).NotTo(HaveOccurred(), "decoding the output of kustomize build %s", dir)
	Expect(objs).NotTo(BeEmpty())
	return objs
}

// decodeManifestObjects splits a multi-document YAML stream into objects; documents holding
// only comments (helm's "# Source:" lines of empty templates) are skipped.
func decodeManifestObjects(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		obj := map[string]any{}
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(objs)+1, err)
		}
		if len(obj) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("document %d has no apiVersion, kind or metadata.name: %v", len(objs)+1, obj)
		}
		objs = append(objs, u)
	}
}

// findManifest returns the object of kind and name, or nil.
func findManifest(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, obj := range objs {
		if obj.GetKind() == kind && obj.GetName() == name {
			return obj
		}
	}
	return nil
}

// renderedDeployment returns the named Deployment of objs, typed.
func renderedDeployment(objs []*unstructured.Unstructured, name string) *appsv1.Deployment {
	GinkgoHelper()
	obj := findManifest(objs, "Deployment", name)
	Expect(obj).NotTo(BeNil(), "no Deployment %s among the rendered objects", name)
	deploy := &appsv1.Deployment{}
	Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, deploy)).To(Succeed())
	Expect(deploy.Spec.Template.Spec.Containers).NotTo(BeEmpty())
	return deploy
}

// manifestDryRunner sends objects to the API server as server-side dry runs and collects
// what it answers, warnings included.
type manifestDryRunner struct {
	c        client.Client
	warnings *warningCollector
}

func newManifestDryRunner() *manifestDryRunner {
	GinkgoHelper()
	w := &warningCollector{}
	restCfg := rest.CopyConfig(cfg)
	restCfg.WarningHandler = w
	restCfg.WarningHandlerWithContext = nil
	c, err := client.New(restCfg, client.Options{
		Scheme: testScheme,
		// A misspelt field must fail, as `kubectl apply` makes it, not vanish silently.
		FieldValidation: metav1.FieldValidationStrict,
	})
	Expect(err).NotTo(HaveOccurred())
	return &manifestDryRunner{c: c, warnings: w}
}

// apply dry-runs every object and returns one line per object the API server rejected or
// warned about. Namespaces are created for real, since nothing can be validated in a
// namespace that does not exist; objects that already exist (the suite's CRDs) are
// dry-run applied instead of created. Objects of absentGroups are skipped while the API
// server does not serve their group (the Prometheus Operator's, say).
func (d *manifestDryRunner) apply(ctx context.Context, objs []*unstructured.Unstructured, absentGroups ...string) []string {
	var failures []string
	ordered := slices.Clone(objs)
	rank := func(o *unstructured.Unstructured) int {
		switch o.GetKind() {
		case "Namespace":
			return 0
		case "CustomResourceDefinition":
			return 1
		}
		return 2
	}
	slices.SortStableFunc(ordered, func(a, b *unstructured.Unstructured) int { return rank(a) - rank(b) })

	for _, obj := range ordered {
		gvk := obj.GroupVersionKind()
		id := fmt.Sprintf("%s %s", gvk.Kind, client.ObjectKeyFromObject(obj))
		d.warnings.take()
		err := d.applyOne(ctx, obj)
		if meta.IsNoMatchError(err) && slices.Contains(absentGroups, gvk.Group) {
			GinkgoWriter.Printf("Skipping %s: the API server does not serve %s\n", id, gvk.GroupVersion())
			continue
		}
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", id, err))
		}
		for _, w := range d.warnings.take() {
			failures = append(failures, fmt.Sprintf("%s: warning: %s", id, w))
		}
	}
	return failures
}

func (d *manifestDryRunner) applyOne(ctx context.Context, obj *unstructured.Unstructured) error {
	obj = obj.DeepCopy()
	if obj.GetKind() == "Namespace" {
		// Pods are checked against the enforce level, Deployments only against warn: mirror
		// it so the Deployment's dry run reports pods the namespace would reject.
		lbls := obj.GetLabels()
		if level, ok := lbls[podSecurityEnforceLabel]; ok {
			lbls[podSecurityWarnLabel] = level
			obj.SetLabels(lbls)
		}
		if err := d.c.Create(ctx, obj, client.FieldOwner(manifestsFieldOwner)); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		return nil
	}
	namespaced, err := d.c.IsObjectNamespaced(obj)
	if err != nil {
		return err
	}
	if namespaced && obj.GetNamespace() == "" {
		return errors.New("namespaced object without metadata.namespace: it would land in whatever namespace kubectl or helm defaults to")
	}
	err = d.c.Create(ctx, obj, client.DryRunAll, client.FieldOwner(manifestsFieldOwner))
	if apierrors.IsAlreadyExists(err) {
		err = d.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.DryRunAll, client.FieldOwner(manifestsFieldOwner))
	}
	return err
}

// warningCollector keeps the warnings the API server sends (Warning headers).
type warningCollector struct {
	mu   sync.Mutex
	msgs []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *warningCollector) HandleWarningHeader(code int, agent, text string) {
	if code != 299 || text == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

// take returns the warnings since the last take.
func (w *warningCollector) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	msgs := w.msgs
	w.msgs = nil
	return msgs
}

// checkManifestReferences returns what in objs refers to something objs lack, or to the
// wrong thing: the API server accepts such objects, and the operator then fails at run time
// (forbidden everywhere, a Service with no endpoints, a ServiceMonitor scraping nothing).
func checkManifestReferences(objs []*unstructured.Unstructured) []string {
	var problems []string
	has := func(kind, namespace, name string) bool {
		for _, o := range objs {
			if o.GetKind() == kind && o.GetNamespace() == namespace && o.GetName() == name {
				return true
			}
		}
		return false
	}
	var deployments []*appsv1.Deployment
	var services []*corev1.Service
	for _, obj := range objs {
		switch obj.GetKind() {
		case "Deployment":
			d := &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, d); err != nil {
				problems = append(problems, fmt.Sprintf("Deployment %s: %v", obj.GetName(), err))
				continue
			}
			deployments = append(deployments, d)
		case "Service":
			s := &corev1.Service{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, s); err != nil {
				problems = append(problems, fmt.Sprintf("Service %s: %v", obj.GetName(), err))
				continue
			}
			services = append(services, s)
		}
	}

	for _, obj := range objs {
		id := fmt.Sprintf("%s %s", obj.GetKind(), client.ObjectKeyFromObject(obj))
		switch obj.GetKind() {
		case "RoleBinding", "ClusterRoleBinding":
			kind, _, _ := unstructured.NestedString(obj.Object, "roleRef", "kind")
			name, _, _ := unstructured.NestedString(obj.Object, "roleRef", "name")
			roleNS := ""
			if kind == "Role" {
				roleNS = obj.GetNamespace()
			}
			if !has(kind, roleNS, name) {
				problems = append(problems, fmt.Sprintf("%s binds %s %q, which is not among the objects", id, kind, name))
			}
			subjects, _, _ := unstructured.NestedSlice(obj.Object, "subjects")
			for _, s := range subjects {
				subject, _ := s.(map[string]any)
				if subject["kind"] != "ServiceAccount" {
					continue
				}
				saNS, _ := subject["namespace"].(string)
				saName, _ := subject["name"].(string)
				if !has("ServiceAccount", saNS, saName) && !deploymentRunsAs(deployments, saNS, saName) {
					problems = append(problems, fmt.Sprintf("%s binds service account %s/%s, which no object creates and no Deployment runs as", id, saNS, saName))
				}
			}
		case "ServiceMonitor":
			var selector metav1.LabelSelector
			sel, _, _ := unstructured.NestedMap(obj.Object, "spec", "selector")
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(sel, &selector); err != nil {
				problems = append(problems, fmt.Sprintf("%s: selector: %v", id, err))
				continue
			}
			endpoints, _, _ := unstructured.NestedSlice(obj.Object, "spec", "endpoints")
			var ports []string
			for _, e := range endpoints {
				port, _ := e.(map[string]any)["port"].(string)
				ports = append(ports, port)
			}
			if !monitorSelectsService(services, obj.GetNamespace(), &selector, ports) {
				problems = append(problems, fmt.Sprintf("%s selects no Service in %s with a port named %v", id, obj.GetNamespace(), ports))
			}
		}
	}

	for _, d := range deployments {
		id := fmt.Sprintf("Deployment %s/%s", d.Namespace, d.Name)
		sa := d.Spec.Template.Spec.ServiceAccountName
		if sa == "" || sa == "default" {
			problems = append(problems, id+" runs as the namespace's default service account, which has none of the operator's permissions")
		}
		selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || !selector.Matches(labels.Set(d.Spec.Template.Labels)) {
			problems = append(problems, id+"'s selector does not match its own pod template")
		}
	}
	for _, s := range services {
		if !serviceSelectsDeployment(deployments, s) {
			problems = append(problems, fmt.Sprintf("Service %s/%s selects no Deployment's pods on a container port its targetPort names", s.Namespace, s.Name))
		}
	}
	return problems
}

// deploymentRunsAs tells whether a Deployment in namespace runs as service account name,
// which then exists outside the manifests (serviceAccount.create=false).
func deploymentRunsAs(deployments []*appsv1.Deployment, namespace, name string) bool {
	for _, d := range deployments {
		if d.Namespace == namespace && d.Spec.Template.Spec.ServiceAccountName == name {
			return true
		}
	}
	return false
}

// serviceSelectsDeployment tells whether s selects the pods of one of deployments, and
// every port's targetPort is a port of their containers.
func serviceSelectsDeployment(deployments []*appsv1.Deployment, s *corev1.Service) bool {
	for _, d := range deployments {
		if d.Namespace != s.Namespace || len(s.Spec.Selector) == 0 ||
			!labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			continue
		}
		all := true
		for _, p := range s.Spec.Ports {
			found := false
			for _, c := range d.Spec.Template.Spec.Containers {
				for _, cp := range c.Ports {
					if (p.TargetPort.StrVal != "" && cp.Name == p.TargetPort.StrVal) ||
						(p.TargetPort.StrVal == "" && cp.ContainerPort == p.TargetPort.IntVal) {
						found = true
					}
				}
			}
			all = all && found
		}
		if all {
			return true
		}
	}
	return false
}

// monitorSelectsService tells whether a Service in namespace matches selector and has a
// port named like each of ports.
func monitorSelectsService(services []*corev1.Service, namespace string, selector *metav1.LabelSelector, ports []string) bool {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil || sel.Empty() {
		return false
	}
	for _, s := range services {
		if s.Namespace != namespace || !sel.Matches(labels.Set(s.Labels)) {
			continue
		}
		all := true
		for _, name := range ports {
			all = all && slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == name })
		}
		if all {
			return true
		}
	}
	return false
}

// expandContainerArgs expands $(VAR) in the container's arguments as the kubelet does, for
// variables set to a value or to the pod's namespace (downward API), which is namespace.
func expandContainerArgs(c corev1.Container, namespace string) []string {
	args := slices.Clone(c.Args)
	for i := range args {
		for _, e := range c.Env {
			value := e.Value
			if e.ValueFrom != nil {
				if f := e.ValueFrom.FieldRef; f == nil || f.FieldPath != "metadata.namespace" {
					continue
				}
				value = namespace
			}
			args[i] = strings.ReplaceAll(args[i], "$("+e.Name+")", value)
		}
	}
	return args
}

// expectOperatorAcceptsArgs runs the operator binary with the arguments of every Deployment
// in objs and -h: it parses all flags before it sees -h and exits 0 only when it knows each
// one, so a flag the chart passes but the operator lacks (renamed, say) fails here rather
// than as a crash-looping pod.
func expectOperatorAcceptsArgs(ctx context.Context, operatorBin string, objs []*unstructured.Unstructured) {
	GinkgoHelper()
	checked := 0
	for _, obj := range objs {
		if obj.GetKind() != "Deployment" {
			continue
		}
		for _, c := range renderedDeployment(objs, obj.GetName()).Spec.Template.Spec.Containers {
			Expect(c.Command).To(Equal([]string{"/fleetmq-operator"}), "container %s", c.Name)
			args := expandContainerArgs(c, obj.GetNamespace())
			for _, a := range args {
				Expect(a).NotTo(ContainSubstring("$("), "container %s: argument %q refers to an undefined variable", c.Name, a)
			}
			runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			out, err := exec.CommandContext(runCtx, operatorBin, append(args, "-h")...).CombinedOutput()
			cancel()
			Expect(err).NotTo(HaveOccurred(), "fleetmq-operator rejects the arguments %q of Deployment %s:\n%s", args, obj.GetName(), out)
			checked++
		}
	}
	Expect(checked).To(BeNumerically(">", 0), "no Deployment among the objects")
}

// expectSameFiles fails unless dirs want and got hold the same *.yaml files with the same
// bytes.
func expectSameFiles(want, got string) {
	GinkgoHelper()
	list := func(dir string) []string {
		names, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		for i := range names {
			names[i] = filepath.Base(names[i])
		}
		return names
	}
	wantNames := list(want)
	Expect(wantNames).NotTo(BeEmpty(), "no YAML files in %s", want)
	Expect(list(got)).To(ConsistOf(wantNames), "%s holds other files than %s: run `make helm-sync`", got, want)
	for _, name := range wantNames {
		w, err := os.ReadFile(filepath.Join(want, name))
		Expect(err).NotTo(HaveOccurred())
		g, err := os.ReadFile(filepath.Join(got, name))
		Expect(err).NotTo(HaveOccurred())
		Expect(string(g)).To(Equal(string(w)), "%s differs from %s: run `make helm-sync`", filepath.Join(got, name), filepath.Join(want, name))
	}
}

// readBaseCRDs returns the CRDs of config/crd/bases by name.
func readBaseCRDs() map[string]*unstructured.Unstructured {
	GinkgoHelper()
	files, err := filepath.Glob(filepath.Join("..", "config", "crd", "bases", "*.yaml"))
	Expect(err).NotTo(HaveOccurred())
	crds := map[string]*unstructured.Unstructured{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		Expect(err).NotTo(HaveOccurred())
		objs, err := decodeManifestObjects(data)
		Expect(err).NotTo(HaveOccurred(), "decoding %s", f)
		for _, o := range objs {
			crds[o.GetName()] = o
		}
	}
	Expect(crds).NotTo(BeEmpty())
	return crds
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// copyConfigTree copies ../config into a temporary directory, for specs that edit it the way
// a user or `make deploy` would.
func copyConfigTree() string {
	GinkgoHelper()
	dst := filepath.Join(GinkgoT().TempDir(), "config")
	Expect(os.CopyFS(dst, os.DirFS(filepath.Join("..", "config")))).To(Succeed())
	return dst
}

// setKustomizeImage sets the newName and newTag of the image called name in a
// kustomization file, as `kustomize edit set image name=newName:newTag` does.
func setKustomizeImage(path, name, newName, newTag string) {
	GinkgoHelper()
	data, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	var k map[string]any
	Expect(yaml.Unmarshal(data, &k)).To(Succeed())
	images, _ := k["images"].([]any)
	found := false
	for _, i := range images {
		image, _ := i.(map[string]any)
		if image["name"] == name {
			image["newName"], image["newTag"] = newName, newTag
			found = true
		}
	}
	Expect(found).To(BeTrue(), "%s has no image named %s", path, name)
	out, err := yaml.Marshal(k)
	Expect(err).NotTo(HaveOccurred())
	Expect(os.WriteFile(path, out, 0o644)).To(Succeed())
}
