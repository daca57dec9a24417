package builder

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

const testImage = "ghcr.io/fleetmq/fleetmq:v0.1.0"

func brokerContainerOf(t *testing.T, sts *appsv1.StatefulSet) corev1.Container {
	t.Helper()
	for _, c := range sts.Spec.Template.Spec.Containers {
		if c.Name == BrokerContainerName {
			return c
		}
	}
	t.Fatal("no broker container")
	return corev1.Container{}
}

// TestStatefulSetRestrictedPodSecurity checks the fields the restricted Pod Security
// Standard requires, for the pod and every container.
func TestStatefulSetRestrictedPodSecurity(t *testing.T) {
	sts := StatefulSet(newBroker(withPersistence("2Gi")), testImage)
	pod := sts.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot and runAsUser 65532", psc)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile must be RuntimeDefault")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("host namespaces are not allowed")
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			t.Errorf("volume %s is a hostPath", v.Name)
		}
	}
	for _, c := range append(pod.InitContainers, pod.Containers...) {
		sc := c.SecurityContext
		if sc == nil {
			t.Fatalf("container %s has no securityContext", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: allowPrivilegeEscalation must be false", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s is privileged", c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: readOnlyRootFilesystem must be true", c.Name)
		}
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
			t.Errorf("container %s must run as non-root", c.Name)
		}
		if sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s capabilities = %+v, want drop ALL and nothing added", c.Name, sc.Capabilities)
		}
		if sc.SeccompProfile != nil && sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("container %s seccomp %s", c.Name, sc.SeccompProfile.Type)
		}
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				t.Errorf("container %s uses hostPort %d", c.Name, p.HostPort)
			}
		}
	}
}

func TestStatefulSetPod(t *testing.T) {
	b := newBroker(withReplicas(3))
	sts := StatefulSet(b, testImage)
	c := brokerContainerOf(t, sts)

	if sts.Name != "fleet" || sts.Spec.ServiceName != "fleet-peers" || *sts.Spec.Replicas != 3 ||
		sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("StatefulSet %s serviceName %s replicas %d policy %s", sts.Name, sts.Spec.ServiceName,
			*sts.Spec.Replicas, sts.Spec.PodManagementPolicy)
	}
	if !reflect.DeepEqual(sts.Spec.Selector.MatchLabels, SelectorLabels(b)) {
		t.Errorf("selector %v", sts.Spec.Selector.MatchLabels)
	}
	if c.Image != testImage || !reflect.DeepEqual(append(c.Command, c.Args...),
		[]string{"fleetmq-broker", "--config", "/etc/fleetmq/config/broker.yaml"}) {
		t.Errorf("container runs %s %v %v", c.Image, c.Command, c.Args)
	}
	if g := sts.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < 30 {
		t.Errorf("terminationGracePeriodSeconds %v leaves no time to drain", g)
	}

	// Mounts: whole volumes (no subPath), so the kubelet's ..data swap reaches the pod.
	wantMounts := map[string]string{ConfigDir: ConfigName(b), ACLDir: ACLName(b), UsersDir: UsersName(b), TLSDir: TLSName(b), DataDir: ""}
	vols := map[string]corev1.Volume{}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		vols[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		want, ok := wantMounts[m.MountPath]
		if !ok {
			t.Errorf("unexpected mount %s", m.MountPath)
			continue
		}
		delete(wantMounts, m.MountPath)
		if m.SubPath != "" || m.SubPathExpr != "" {
			t.Errorf("mount %s uses subPath: live reload would never see changes", m.MountPath)
		}
		if m.MountPath != DataDir && !m.ReadOnly {
			t.Errorf("mount %s must be read-only", m.MountPath)
		}
		v := vols[m.Name]
		var source string
		switch {
		case v.ConfigMap != nil:
			source = v.ConfigMap.Name
		case v.Secret != nil:
			source = v.Secret.SecretName
		case v.EmptyDir != nil:
		default:
			t.Errorf("mount %s has no volume", m.MountPath)
		}
		if source != want {
			t.Errorf("%s mounts %q, want %q", m.MountPath, source, want)
		}
	}
	if len(wantMounts) > 0 {
		t.Errorf("missing mounts: %v", wantMounts)
	}

	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if !reflect.DeepEqual(env, map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace", "POD_IP": "status.podIP"}) {
		t.Errorf("downward API env = %v", env)
	}

	for name, p := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || p.HTTPGet.Port != intstr.FromString(MetricsPortName) {
			t.Errorf("probe %s = %+v", name, p)
		}
	}
	var metricsPort int32
	for _, p := range c.Ports {
		if p.Name == MetricsPortName {
			metricsPort = p.ContainerPort
		}
	}
	if metricsPort != 9090 {
		t.Errorf("metrics container port = %d, want 9090", metricsPort)
	}

	aa := sts.Spec.Template.Spec.Affinity.PodAntiAffinity
	if aa == nil || len(aa.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		aa.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != corev1.LabelHostname ||
		len(aa.RequiredDuringSchedulingIgnoredDuringExecution) != 0 {
		t.Errorf("default affinity = %+v, want a preferred anti-affinity on hostname", aa)
	}
	if sts.Spec.Template.Spec.ServiceAccountName != "fleet-broker" {
		t.Errorf("serviceAccountName %s", sts.Spec.Template.Spec.ServiceAccountName)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 0 {
		t.Error("volumeClaimTemplates without persistence")
	}
}

func TestStatefulSetTemplateAndPersistence(t *testing.T) {
	b := newBroker(withPersistence("5Gi"), func(b *v1.MQTTBroker) {
		b.Spec.Image = "registry.example/fleetmq:custom"
		b.Spec.Persistence.StorageClassName = new("fast")
		b.Spec.Template = v1.BrokerPodTemplate{
			Labels:       map[string]string{"team": "iot", "app.kubernetes.io/name": "hijack"},
			Annotations:  map[string]string{"example.com/note": "x", RestartHashAnnotation: "forged"},
			Resources:    corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}},
			NodeSelector: map[string]string{"pool": "mqtt"},
			Tolerations:  []corev1.Toleration{{Key: "dedicated", Value: "mqtt", Effect: corev1.TaintEffectNoSchedule}},
			Affinity:     &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}},
		}
	})
	sts := StatefulSet(b, testImage)
	pod := sts.Spec.Template
	c := brokerContainerOf(t, sts)
	if c.Image != "registry.example/fleetmq:custom" {
		t.Errorf("image %s, want spec.image over the operator default", c.Image)
	}
	if pod.Labels["team"] != "iot" || pod.Labels["app.kubernetes.io/name"] != "fleetmq-broker" {
		t.Errorf("pod labels %v: template labels added, selector labels kept", pod.Labels)
	}
	if pod.Annotations["example.com/note"] != "x" || pod.Annotations[RestartHashAnnotation] != RestartHash(b) {
		t.Errorf("pod annotations %v: template annotations added, restart hash the operator's", pod.Annotations)
	}
	if c.Resources.Requests.Cpu().String() != "250m" || pod.Spec.NodeSelector["pool"] != "mqtt" ||
		len(pod.Spec.Tolerations) != 1 || pod.Spec.Affinity.NodeAffinity == nil || pod.Spec.Affinity.PodAntiAffinity != nil {
		t.Errorf("template scheduling and resources not applied: %+v", pod.Spec)
	}
	// The rendered object must not share memory with the spec: the reconciler's client
	// writes the server's answer back into it.
	pod.Spec.NodeSelector["pool"] = "changed"
	if b.Spec.Template.NodeSelector["pool"] != "mqtt" {
		t.Error("StatefulSet shares its nodeSelector map with the MQTTBroker spec")
	}

	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("volumeClaimTemplates = %d, want 1", len(sts.Spec.VolumeClaimTemplates))
	}
	pvc := sts.Spec.VolumeClaimTemplates[0]
	if size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; size.String() != "5Gi" || *pvc.Spec.StorageClassName != "fast" {
		t.Errorf("claim = %+v, want 5Gi of fast", pvc.Spec)
	}
	for _, m := range c.VolumeMounts {
		if m.MountPath == DataDir && m.Name != pvc.Name {
			t.Errorf("%s mounts %s, not the claim %s", DataDir, m.Name, pvc.Name)
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == pvc.Name {
			t.Errorf("volume %s shadows the claim template", v.Name)
		}
	}
}

func TestStatefulSetTLSVolume(t *testing.T) {
	own := newBroker(func(b *v1.MQTTBroker) { b.Spec.TLS.SecretName = "my-cert" })
	none := newBroker(withTLSDisabled())
	find := func(b *v1.MQTTBroker) *corev1.Volume {
		for _, v := range StatefulSet(b, testImage).Spec.Template.Spec.Volumes {
			if v.Secret != nil && (v.Secret.SecretName == "my-cert" || v.Secret.SecretName == TLSName(b)) {
				return &v
			}
		}
		return nil
	}
	if v := find(own); v == nil {
		t.Error("spec.tls.secretName is not mounted")
	}
	if v := find(none); v != nil {
		t.Error("a TLS Secret is mounted with TLS disabled; the pod would wait for a Secret that never comes")
	}
}

func TestRestartHash(t *testing.T) {
	base := func(opts ...brokerOpt) *v1.MQTTBroker {
		return newBroker(append([]brokerOpt{withReplicas(3), withRules(rule("a/#", v1.ACLRead))}, opts...)...)
	}
	want := RestartHash(base())
	if RestartHash(base()) != want {
		t.Fatal("the same broker hashes differently")
	}
	same := []struct {
		name string
		opt  brokerOpt
	}{
		{"ACL rules", withRules(rule("b/#", v1.ACLReadWrite))},
		{"default action", withDefaultAction(v1.ACLDefaultAllow)},
		{"ACL ConfigMap refs", func(b *v1.MQTTBroker) {
			b.Spec.Authorization.ACLConfigMapRefs = []v1.ConfigMapKeyReference{{Name: "extra"}}
		}},
		{"limits", withAllLimits()},
		{"allowAnonymous", func(b *v1.MQTTBroker) { b.Spec.Authentication.AllowAnonymous = new(true) }},
		{"log level", func(b *v1.MQTTBroker) { b.Spec.LogLevel = "debug" }},
		{"certificate duration", func(b *v1.MQTTBroker) { b.Spec.TLS.Duration = durationOf(DefaultCertDuration * 2) }},
		{"replicas", withReplicas(7)},
		{"service", func(b *v1.MQTTBroker) { b.Spec.Service.Type = corev1.ServiceTypeLoadBalancer }},
		{"monitoring", func(b *v1.MQTTBroker) { b.Spec.Monitoring.Enabled = new(true) }},
		{"pdb", func(b *v1.MQTTBroker) { b.Spec.PodDisruptionBudget.MaxUnavailable = new(intstr.FromInt32(2)) }},
		{"defaults written out", func(b *v1.MQTTBroker) {
			b.Spec.Listeners = Listeners(b)
			b.Spec.Persistence.Enabled = new(false)
			b.Spec.TLS.ClientAuth = v1.ClientAuthNone
		}},
	}
	for _, tc := range same {
		if got := RestartHash(base(tc.opt)); got != want {
			t.Errorf("changing %s changes the restart hash: it reloads live and must not roll pods", tc.name)
		}
	}
	// Users' content is not even an input: the hash is a function of the broker alone.

	changed := []struct {
		name string
		opt  brokerOpt
	}{
		{"listener port", withListeners(v1.ListenerSpec{Name: "mqtt", Protocol: v1.ProtocolMQTT, Port: 1884})},
		{"listener protocol", withListeners(
			v1.ListenerSpec{Name: "mqtt", Protocol: v1.ProtocolWS, Port: 1883},
			v1.ListenerSpec{Name: "mqtts", Protocol: v1.ProtocolMQTTS, Port: 8883})},
		{"clientAuth (a listener setting)", withClientAuth(v1.ClientAuthRequire)},
		{"image", func(b *v1.MQTTBroker) { b.Spec.Image = "fleetmq:next" }},
		{"persistence", withPersistence("1Gi")},
		{"template labels", func(b *v1.MQTTBroker) { b.Spec.Template.Labels = map[string]string{"a": "b"} }},
		{"template resources", func(b *v1.MQTTBroker) {
			b.Spec.Template.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}
		}},
	}
	for _, tc := range changed {
		if got := RestartHash(base(tc.opt)); got == want {
			t.Errorf("changing %s keeps the restart hash: the pods would never pick it up", tc.name)
		}
	}
	if RestartHash(base(withPersistence("1Gi"))) == RestartHash(base(withPersistence("2Gi"))) {
		t.Error("persistence size is not in the restart hash")
	}
}
