package builder

import (
	"encoding/json"
	"maps"
	"path"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/broker/config"
)

const (
	// brokerUID is the non-root user and group the broker runs as (distroless "nonroot").
	brokerUID = 65532
	// terminationGracePeriod leaves a stopping pod time to hand its sessions to peers and
	// drain its clients before it is killed.
	terminationGracePeriod = 60
	// dataVolume names the volume (or claim template) mounted at DataDir.
	dataVolume = "data"
	// defaultPersistenceSize is the volume size without spec.persistence.size.
	defaultPersistenceSize = "1Gi"
	// secretFileMode makes mounted keys and hashes readable by the broker's group only;
	// the kubelet gives the files to fsGroup.
	secretFileMode = 0o440
)

// StatefulSet runs the broker pods of b. image is used when spec.image is empty (the
// operator's own release image). Pods are created in parallel, since peers find each other
// whatever the order, and find each other through PeersName.
//
// Files are mounted as whole ConfigMap and Secret volumes (never subPath), so the kubelet's
// atomic ..data swap reaches running pods and the broker reloads them live. The pod template
// changes only when a restart-required setting does: its RestartHashAnnotation hashes those
// and nothing else. volumeClaimTemplates cannot change after creation; the reconciler must
// not try to update them.
func StatefulSet(b *v1.MQTTBroker, image string) *appsv1.StatefulSet {
	if b.Spec.Image != "" {
		image = b.Spec.Image
	}
	tpl := &b.Spec.Template
	podLabels := mergeMaps(tpl.Labels, Labels(b))
	podAnnotations := mergeMaps(tpl.Annotations, map[string]string{RestartHashAnnotation: RestartHash(b)})

	sts := &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: objectMeta(b, b.Name),
		Spec: appsv1.StatefulSetSpec{
			Replicas:            new(Replicas(b)),
			Selector:            &metav1.LabelSelector{MatchLabels: SelectorLabels(b)},
			ServiceName:         PeersName(b),
			PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: podAnnotations},
				Spec: corev1.PodSpec{
					ServiceAccountName:            ServiceAccountName(b),
					AutomountServiceAccountToken:  new(true), // peers are discovered from EndpointSlices
					EnableServiceLinks:            new(false),
					TerminationGracePeriodSeconds: new(int64(terminationGracePeriod)),
					SecurityContext:               podSecurityContext(),
					Containers:                    []corev1.Container{brokerContainer(b, image)},
					Volumes:                       volumes(b),
					Affinity:                      affinity(b),
					NodeSelector:                  maps.Clone(tpl.NodeSelector),
					Tolerations:                   cloneTolerations(tpl.Tolerations),
					PriorityClassName:             tpl.PriorityClassName,
					ImagePullSecrets:              slices.Clone(tpl.ImagePullSecrets),
				},
			},
		},
	}
	if persistenceEnabled(b) {
		sts.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{dataClaim(b)}
	}
	return sts
}

func brokerContainer(b *v1.MQTTBroker, image string) corev1.Container {
	ports := []corev1.ContainerPort{}
	for _, l := range Listeners(b) {
		ports = append(ports, corev1.ContainerPort{Name: l.Name, ContainerPort: l.Port, Protocol: corev1.ProtocolTCP})
	}
	ports = append(ports, corev1.ContainerPort{Name: MetricsPortName, ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP})

	mounts := []corev1.VolumeMount{
		{Name: "config", MountPath: ConfigDir, ReadOnly: true},
		{Name: "acl", MountPath: ACLDir, ReadOnly: true},
		{Name: "users", MountPath: UsersDir, ReadOnly: true},
	}
	if TLSEnabled(b) {
		mounts = append(mounts, corev1.VolumeMount{Name: "tls", MountPath: TLSDir, ReadOnly: true})
	}
	mounts = append(mounts, corev1.VolumeMount{Name: dataVolume, MountPath: DataDir})

	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString(MetricsPortName), Scheme: corev1.URISchemeHTTP,
		}}}
	}
	readiness := probe("/readyz")
	readiness.PeriodSeconds, readiness.TimeoutSeconds, readiness.FailureThreshold = 5, 2, 3
	liveness := probe("/healthz")
	liveness.InitialDelaySeconds, liveness.PeriodSeconds, liveness.TimeoutSeconds, liveness.FailureThreshold = 10, 10, 5, 6

	fieldEnv := func(name, fieldPath string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: fieldPath},
		}}
	}
	return corev1.Container{
		Name:    BrokerContainerName,
		Image:   image,
		Command: []string{BrokerBinary},
		Args:    []string{"--config", path.Join(ConfigDir, ConfigKey)},
		Ports:   ports,
		Env: []corev1.EnvVar{
			fieldEnv("POD_NAME", "metadata.name"),
			fieldEnv("POD_NAMESPACE", "metadata.namespace"),
			fieldEnv("POD_IP", "status.podIP"),
		},
		Resources:                *b.Spec.Template.Resources.DeepCopy(),
		VolumeMounts:             mounts,
		ReadinessProbe:           readiness,
		LivenessProbe:            liveness,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             new(true),
			RunAsUser:                new(int64(brokerUID)),
			RunAsGroup:               new(int64(brokerUID)),
			AllowPrivilegeEscalation: new(false),
			Privileged:               new(false),
			ReadOnlyRootFilesystem:   new(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

// podSecurityContext meets the restricted Pod Security Standard. fsGroup lets the non-root
// broker write its volume and read the 0440 Secret files.
func podSecurityContext() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:        new(true),
		RunAsUser:           new(int64(brokerUID)),
		RunAsGroup:          new(int64(brokerUID)),
		FSGroup:             new(int64(brokerUID)),
		FSGroupChangePolicy: new(corev1.FSGroupChangeOnRootMismatch),
		SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func volumes(b *v1.MQTTBroker) []corev1.Volume {
	configMap := func(name, cm string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm}},
		}}
	}
	secret := func(name, s string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: s, DefaultMode: new(int32(secretFileMode))},
		}}
	}
	vs := []corev1.Volume{
		configMap("config", ConfigName(b)),
		configMap("acl", ACLName(b)),
		secret("users", UsersName(b)),
	}
	if TLSEnabled(b) {
		vs = append(vs, secret("tls", TLSSecretName(b)))
	}
	if !persistenceEnabled(b) {
		// The store still needs a writable place under a read-only root filesystem.
		vs = append(vs, corev1.Volume{Name: dataVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	return vs
}

// affinity is spec.template.affinity, or a preference to spread the pods over nodes, so
// that losing one node takes down as few brokers as possible (a preference, so a fleet
// still schedules on fewer nodes than pods).
func affinity(b *v1.MQTTBroker) *corev1.Affinity {
	if a := b.Spec.Template.Affinity; a != nil {
		return a.DeepCopy()
	}
	return &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 100,
			PodAffinityTerm: corev1.PodAffinityTerm{
				LabelSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(b)},
				TopologyKey:   corev1.LabelHostname,
			},
		}},
	}}
}

func cloneTolerations(ts []corev1.Toleration) []corev1.Toleration {
	if ts == nil {
		return nil
	}
	out := make([]corev1.Toleration, len(ts))
	for i := range ts {
		ts[i].DeepCopyInto(&out[i])
	}
	return out
}

// persistence is spec.persistence with its defaults filled in.
type persistence struct {
	Enabled          bool    `json:"enabled"`
	Size             string  `json:"size,omitempty"`
	StorageClassName *string `json:"storageClassName,omitempty"`
	Fsync            string  `json:"fsync,omitempty"`
}

func persistenceOf(b *v1.MQTTBroker) persistence {
	p := persistence{Enabled: persistenceEnabled(b)}
	if !p.Enabled {
		return p
	}
	size := persistenceSize(b)
	p.Size = size.String()
	p.StorageClassName = b.Spec.Persistence.StorageClassName
	p.Fsync = string(b.Spec.Persistence.Fsync)
	if p.Fsync == "" {
		p.Fsync = string(v1.FsyncBatch)
	}
	return p
}

func persistenceSize(b *v1.MQTTBroker) resource.Quantity {
	if s := b.Spec.Persistence.Size; s != nil {
		return s.DeepCopy()
	}
	return resource.MustParse(defaultPersistenceSize)
}

func dataClaim(b *v1.MQTTBroker) corev1.PersistentVolumeClaim {
	return corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: dataVolume, Labels: Labels(b)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: b.Spec.Persistence.StorageClassName,
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: persistenceSize(b)},
			},
		},
	}
}

// RestartHash hashes the settings of b that a running broker cannot apply: the listeners
// and metrics address as rendered into broker.yaml (the broker reports changes to them as
// restartRequired), persistence, the pod template and the image. ACL, users, certificates,
// limits, authentication and log level reload live and are deliberately left out, so
// changing them never rolls the pods. Defaults are filled in first, so writing out a
// default value does not restart anything.
func RestartHash(b *v1.MQTTBroker) string {
	c := BrokerConfig(b)
	data, err := json.Marshal(struct {
		Version     int                  `json:"v"`
		Image       string               `json:"image,omitempty"`
		Listeners   []config.Listener    `json:"listeners"`
		Metrics     config.Metrics       `json:"metrics"`
		Persistence persistence          `json:"persistence"`
		Template    v1.BrokerPodTemplate `json:"template"`
	}{1, b.Spec.Image, c.Listeners, c.Metrics, persistenceOf(b), b.Spec.Template})
	if err != nil {
		// Every field is plain data; a failure is a programming error, not an input one.
		panic("builder: hashing restart settings: " + err.Error())
	}
	return Revision(data)
}
