package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ListenerProtocol is the wire protocol of a client listener.
// +kubebuilder:validation:Enum=mqtt;mqtts;ws;wss
type ListenerProtocol string

// Listener protocols.
const (
	// ProtocolMQTT is MQTT over plain TCP.
	ProtocolMQTT ListenerProtocol = "mqtt"
	// ProtocolMQTTS is MQTT over TLS.
	ProtocolMQTTS ListenerProtocol = "mqtts"
	// ProtocolWS is MQTT over WebSocket.
	ProtocolWS ListenerProtocol = "ws"
	// ProtocolWSS is MQTT over WebSocket over TLS.
	ProtocolWSS ListenerProtocol = "wss"
)

// UsesTLS reports whether the protocol needs the broker's serving certificate.
func (p ListenerProtocol) UsesTLS() bool { return p == ProtocolMQTTS || p == ProtocolWSS }

// UsesWebSocket reports whether the protocol is carried over WebSocket (and so has a path).
func (p ListenerProtocol) UsesWebSocket() bool { return p == ProtocolWS || p == ProtocolWSS }

// DefaultWebSocketPath is the HTTP path of a ws or wss listener that sets none.
const DefaultWebSocketPath = "/mqtt"

// ClientAuth is whether TLS listeners ask clients for a certificate.
// +kubebuilder:validation:Enum=none;request;require
type ClientAuth string

// Client certificate policies, as in the broker's config file.
const (
	// ClientAuthNone never asks for a client certificate.
	ClientAuthNone ClientAuth = "none"
	// ClientAuthRequest asks for one and verifies it when given, but lets clients without one
	// in (they authenticate with a password).
	ClientAuthRequest ClientAuth = "request"
	// ClientAuthRequire refuses TLS clients without a certificate signed by the broker's CA.
	ClientAuthRequire ClientAuth = "require"
)

// ACLDefaultAction is what the broker does when no ACL rule matches a topic.
// +kubebuilder:validation:Enum=allow;deny
type ACLDefaultAction string

// Default actions.
const (
	// ACLDefaultAllow grants read and write on topics that no rule mentions.
	ACLDefaultAllow ACLDefaultAction = "allow"
	// ACLDefaultDeny refuses topics that no rule mentions.
	ACLDefaultDeny ACLDefaultAction = "deny"
)

// FsyncMode is when the broker's store flushes writes to disk.
// +kubebuilder:validation:Enum=always;batch;none
type FsyncMode string

// Fsync modes.
const (
	// FsyncAlways flushes before each acknowledgement: no acknowledged message is lost on a
	// crash, at the cost of throughput.
	FsyncAlways FsyncMode = "always"
	// FsyncBatch groups the acknowledgements of many messages behind one flush.
	FsyncBatch FsyncMode = "batch"
	// FsyncNone leaves flushing to the operating system: fastest, and a node crash can lose
	// recently acknowledged messages.
	FsyncNone FsyncMode = "none"
)

// SharedSubscriptionStrategy is how a message for a $share group picks one subscriber
// across the fleet.
// +kubebuilder:validation:Enum=round_robin;random;local_first
type SharedSubscriptionStrategy string

// Shared subscription strategies.
const (
	// SharedRoundRobin takes the group's subscribers in turn, across all pods.
	SharedRoundRobin SharedSubscriptionStrategy = "round_robin"
	// SharedRandom picks a subscriber at random.
	SharedRandom SharedSubscriptionStrategy = "random"
	// SharedLocalFirst prefers a subscriber on the pod that received the message and only
	// forwards to a peer when the pod has none.
	SharedLocalFirst SharedSubscriptionStrategy = "local_first"
)

// MQTTBrokerSpec is the desired state of a broker fleet.
// +kubebuilder:validation:XValidation:rule="!has(self.listeners) || !self.listeners.exists(l, l.protocol in ['mqtts', 'wss']) || !has(self.tls) || !has(self.tls.enabled) || self.tls.enabled",message="listeners with protocol mqtts or wss need TLS: set spec.tls.enabled to true, or change those listeners to mqtt or ws"
type MQTTBrokerSpec struct {
	// replicas is the number of broker pods. They peer with each other and act as one
	// broker. Changed by `kubectl scale` and HorizontalPodAutoscalers through the scale
	// subresource; 0 stops every pod and keeps persistent volumes.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:XValidation:rule="self >= 0",message="replicas must be 0 or more; use 0 to stop every broker pod"
	Replicas *int32 `json:"replicas,omitempty"`

	// image is the container image of the broker pods. Empty uses the fleetmq image the
	// operator was released with.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// listeners are the network endpoints clients connect to; each is a port of the client
	// Service. Changing a port restarts the pods; the default is mqtt on 1883 and mqtts on 8883.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:default={{name: "mqtt", protocol: "mqtt", port: 1883}, {name: "mqtts", protocol: "mqtts", port: 8883}}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(l, self.exists_one(m, m.port == l.port))",message="listener ports must be unique: give each listener its own port"
	Listeners []ListenerSpec `json:"listeners,omitempty"`

	// service configures the client Service named after the MQTTBroker.
	// +optional
	// +kubebuilder:default={}
	Service ServiceSpec `json:"service,omitzero"`

	// tls configures the certificates of TLS listeners (mqtts, wss) and of peer links. By
	// default the operator runs its own CA; set issuerRef to use cert-manager or secretName to
	// bring your own certificate.
	// +optional
	// +kubebuilder:default={}
	TLS TLSSpec `json:"tls,omitzero"`

	// authentication configures how clients prove who they are. Users and their passwords
	// are MQTTUser objects that reference this broker.
	// +optional
	// +kubebuilder:default={}
	Authentication AuthenticationSpec `json:"authentication,omitzero"`

	// authorization configures the ACL: what each client may publish and subscribe to,
	// beyond the acls of each MQTTUser. ACL changes apply live, without restarting pods.
	// +optional
	// +kubebuilder:default={}
	Authorization AuthorizationSpec `json:"authorization,omitzero"`

	// persistence keeps sessions, queued messages and retained messages on a volume per
	// pod, so they survive restarts.
	// +optional
	// +kubebuilder:default={}
	Persistence PersistenceSpec `json:"persistence,omitzero"`

	// limits bound what each client and each broker pod may use. Unset fields use the
	// broker's defaults, written on each field.
	// +optional
	Limits LimitsSpec `json:"limits,omitzero"`

	// peering configures how the pods of the fleet share work.
	// +optional
	// +kubebuilder:default={}
	Peering PeeringSpec `json:"peering,omitzero"`

	// podDisruptionBudget limits how many broker pods voluntary disruptions (node drains,
	// cluster upgrades) may take down at once.
	// +optional
	// +kubebuilder:default={}
	PodDisruptionBudget PodDisruptionBudgetSpec `json:"podDisruptionBudget,omitzero"`

	// monitoring configures Prometheus scraping of the brokers' metrics.
	// +optional
	// +kubebuilder:default={}
	Monitoring MonitoringSpec `json:"monitoring,omitzero"`

	// template overrides parts of the broker pods: resources, scheduling, labels and
	// annotations. Changes here restart the pods.
	// +optional
	Template BrokerPodTemplate `json:"template,omitzero"`

	// logLevel is the broker's log level: debug, info, warn or error. Empty uses info.
	// +optional
	// +kubebuilder:validation:Enum=debug;info;warn;error
	LogLevel string `json:"logLevel,omitempty"`

	// paused stops the operator from changing anything it owns for this broker (status is
	// still reported). Use it to investigate a fleet by hand; set it back to false to resume.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// ListenerSpec is one client listener.
// +kubebuilder:validation:XValidation:rule="self.port != 9090",message="port 9090 is the broker's metrics and health port: give this listener another port"
// +kubebuilder:validation:XValidation:rule="self.name != 'metrics'",message="the listener name metrics is taken by the broker's metrics port: choose another name"
// +kubebuilder:validation:XValidation:rule="!has(self.path) || self.protocol in ['ws', 'wss']",message="path applies only to ws and wss listeners: remove it or set protocol to ws or wss"
// +kubebuilder:validation:XValidation:rule="!has(self.trustedProxies) || (has(self.proxyProtocol) && self.proxyProtocol)",message="trustedProxies applies only with proxyProtocol: true"
type ListenerSpec struct {
	// name identifies the listener: it names the Service port and the status endpoint. At
	// most 15 lowercase letters, digits and '-', as Service port names allow.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// protocol is mqtt (TCP), mqtts (TLS), ws (WebSocket) or wss (WebSocket over TLS).
	// +required
	Protocol ListenerProtocol `json:"protocol"`

	// port is the TCP port the pods and the client Service listen on.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`

	// path is the HTTP path of a ws or wss listener. Empty uses /mqtt.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^/[^\s]*$`
	Path string `json:"path,omitempty"`

	// proxyProtocol expects every connection to this listener to start with a PROXY
	// protocol v1 or v2 header, as a load balancer sends it (AWS NLB with proxy protocol
	// enabled, HAProxy's send-proxy): the brokers then know clients by their own addresses,
	// not the load balancer's. A connection without the header is closed. Changing it
	// restarts the pods.
	// +optional
	ProxyProtocol bool `json:"proxyProtocol,omitempty"`

	// trustedProxies are the addresses or CIDR ranges (e.g. 10.0.0.0/16) of the load
	// balancers allowed to connect to a proxyProtocol listener; connections from anywhere
	// else are closed, so that no client can claim another's address. Empty trusts every
	// peer: then keep everything but the load balancer from reaching the port.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(a, isCIDR(a) || isIP(a))",message="listeners[].trustedProxies: each entry must be an IP address or a CIDR range such as 10.0.0.0/16"
	TrustedProxies []string `json:"trustedProxies,omitempty"`
}

// ServiceSpec configures the client Service.
type ServiceSpec struct {
	// type is the Service type: ClusterIP (in-cluster clients only), NodePort or LoadBalancer.
	// +optional
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	Type corev1.ServiceType `json:"type,omitempty"`

	// annotations are added to the client Service, e.g. for a cloud load balancer.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// TLSSpec configures certificates. With neither issuerRef nor secretName the operator
// creates a CA (<name>-ca) and a serving certificate (<name>-tls) and renews it itself. The
// CA certificate lasts ten years and is renewed with the same key a year before it expires,
// so certificates it issued, and clients that trust the old one, keep working.
// +kubebuilder:validation:XValidation:rule="!(has(self.issuerRef) && has(self.secretName))",message="set either tls.issuerRef (cert-manager issues the certificate) or tls.secretName (you provide it), not both"
// +kubebuilder:validation:XValidation:rule="!has(self.enabled) || self.enabled || (!has(self.issuerRef) && !has(self.secretName))",message="tls.issuerRef and tls.secretName need TLS: remove them or set tls.enabled to true"
// +kubebuilder:validation:XValidation:rule="!has(self.duration) || !has(self.renewBefore) || duration(self.renewBefore) < duration(self.duration)",message="tls.renewBefore must be shorter than tls.duration, e.g. duration: 2160h with renewBefore: 720h"
type TLSSpec struct {
	// enabled turns on certificates for TLS listeners and mutual TLS between peers. When
	// false, listeners must be mqtt or ws and peers talk in plain text.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`

	// issuerRef has cert-manager issue the serving certificate (a Certificate named
	// <name>-tls). cert-manager must be installed.
	// +optional
	IssuerRef *IssuerReference `json:"issuerRef,omitempty"`

	// secretName names a kubernetes.io/tls Secret in this namespace that you manage, holding
	// tls.crt, tls.key and (to verify clients and peers) ca.crt. Its SANs must cover the
	// Services and pod names; the operator does not renew it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName,omitempty"`

	// clientAuth is whether TLS listeners ask clients for a certificate signed by the
	// broker's CA: none, request (verify when given) or require. MQTTUsers that
	// authenticate with a client certificate need request or require.
	// +optional
	// +kubebuilder:default=none
	ClientAuth ClientAuth `json:"clientAuth,omitempty"`

	// duration is how long certificates issued by the operator CA or cert-manager are valid,
	// e.g. 2160h (90 days). At least 1h.
	// +optional
	// +kubebuilder:default="2160h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h')",message="tls.duration must be at least 1h, e.g. 2160h"
	Duration *metav1.Duration `json:"duration,omitempty"`

	// renewBefore is how long before expiry a certificate is renewed, e.g. 720h (30 days).
	// Renewal does not restart pods: the brokers reload the files.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5m')",message="tls.renewBefore must be at least 5m, e.g. 720h"
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`
}

// IssuerReference names a cert-manager Issuer or ClusterIssuer.
type IssuerReference struct {
	// name of the issuer.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// kind of the issuer: Issuer (in this namespace) or ClusterIssuer, or the kind of an
	// external issuer.
	// +optional
	// +kubebuilder:default=Issuer
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind,omitempty"`

	// group of the issuer's API.
	// +optional
	// +kubebuilder:default=cert-manager.io
	// +kubebuilder:validation:MinLength=1
	Group string `json:"group,omitempty"`
}

// AuthenticationSpec configures client authentication.
type AuthenticationSpec struct {
	// allowAnonymous lets clients connect without a username. Off by default: every client
	// needs an MQTTUser (or a client certificate when tls.clientAuth is require).
	// +optional
	// +kubebuilder:default=false
	AllowAnonymous *bool `json:"allowAnonymous,omitempty"`
}

// AuthorizationSpec configures the ACL rendered into the <name>-acl ConfigMap.
type AuthorizationSpec struct {
	// defaultAction applies to topics that no rule matches: deny (the default) or allow.
	// +optional
	// +kubebuilder:default=deny
	DefaultAction ACLDefaultAction `json:"defaultAction,omitempty"`

	// rules apply to every client. In their topics, %c stands for the client identifier and
	// %u for the username, e.g. {topic: "clients/%c/#", access: readwrite}.
	// +optional
	// +listType=map
	// +listMapKey=topic
	// +kubebuilder:validation:MaxItems=256
	Rules []ACLRule `json:"rules,omitempty"`

	// aclConfigMapRefs name ConfigMaps in this namespace whose key holds ACL lines in the
	// broker's ACL file format. They are appended in list order; a line that does not parse
	// is reported on the ACLSynced condition and the last good ACL stays in force.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	ACLConfigMapRefs []ConfigMapKeyReference `json:"aclConfigMapRefs,omitempty"`
}

// ConfigMapKeyReference names one key of a ConfigMap in the same namespace.
type ConfigMapKeyReference struct {
	// name of the ConfigMap.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key in the ConfigMap's data that holds the ACL lines.
	// +optional
	// +kubebuilder:default=acl
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// PersistenceSpec configures a volume per broker pod. Enabling, sizing and the storage class
// are fixed at creation, because a StatefulSet's volume claims cannot change.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.enabled) || (has(self.enabled) && self.enabled == oldSelf.enabled)",message="persistence.enabled cannot change after creation: create a new MQTTBroker to add or remove storage"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.size) || (has(self.size) && quantity(string(self.size)).compareTo(quantity(string(oldSelf.size))) == 0)",message="persistence.size cannot change after creation: resize the PersistentVolumeClaims by hand if the storage class allows expansion"
// +kubebuilder:validation:XValidation:rule="has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",message="persistence.storageClassName cannot change after creation: create a new MQTTBroker to move to another storage class"
type PersistenceSpec struct {
	// enabled gives each broker pod a PersistentVolumeClaim for its store. When false,
	// state lives in memory and is lost when a pod restarts (peers keep what they replicated).
	// +optional
	// +kubebuilder:default=false
	Enabled *bool `json:"enabled,omitempty"`

	// size of each pod's volume, a quantity such as 1Gi or 500Mi.
	// +optional
	// +kubebuilder:default="1Gi"
	// +kubebuilder:validation:XValidation:rule="isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))",message="persistence.size must be a positive quantity such as 1Gi or 500Mi"
	Size *resource.Quantity `json:"size,omitempty"`

	// storageClassName is the StorageClass of the volumes. Empty uses the cluster's default.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	StorageClassName *string `json:"storageClassName,omitempty"`

	// fsync is when the store flushes to disk: always (before every acknowledgement),
	// batch (one flush for many acknowledgements) or none (left to the OS).
	// +optional
	// +kubebuilder:default=batch
	Fsync FsyncMode `json:"fsync,omitempty"`
}

// LimitsSpec bounds resource use. The fields and their meaning are those of the broker's
// config file (limits section); unset fields use the broker's defaults.
type LimitsSpec struct {
	// maxConnections is the most concurrent client connections per pod. Unset or 0: unlimited.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxConnections *int32 `json:"maxConnections,omitempty"`

	// maxPacketSize is the largest packet accepted and sent, in bytes. Default 1048576 (1 MiB).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=268435455
	MaxPacketSize *int32 `json:"maxPacketSize,omitempty"`

	// receiveMaximum is how many QoS 1 and 2 messages a client may have unacknowledged
	// towards the broker, announced in CONNACK. Default 1024.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	ReceiveMaximum *int32 `json:"receiveMaximum,omitempty"`

	// maxInflight caps QoS 1 and 2 messages in flight to one client, whatever the client's
	// own Receive Maximum. Default 1024.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	MaxInflight *int32 `json:"maxInflight,omitempty"`

	// maxQueuedMessages is the most messages queued for one session, online or offline;
	// beyond it new messages are dropped and counted. Default 10000.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxQueuedMessages *int32 `json:"maxQueuedMessages,omitempty"`

	// maxQueuedBytes is the most payload bytes queued for one session. Default 67108864 (64 MiB).
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxQueuedBytes *int64 `json:"maxQueuedBytes,omitempty"`

	// maxSessionExpiry caps the Session Expiry Interval a client may ask for, in seconds.
	// Unset or 0: no cap.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	MaxSessionExpiry *int64 `json:"maxSessionExpiry,omitempty"`

	// maxKeepAlive caps the Keep Alive a client may ask for, in seconds; MQTT 5 clients are
	// told with Server Keep Alive. Unset or 0: no cap.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	MaxKeepAlive *int32 `json:"maxKeepAlive,omitempty"`

	// topicAliasMaximum is how many topic aliases a client may set. Default 65535; 0
	// disables topic aliases.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	TopicAliasMaximum *int32 `json:"topicAliasMaximum,omitempty"`

	// maxTopicLength is the longest topic name or filter, in bytes. Default 65535.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	MaxTopicLength *int32 `json:"maxTopicLength,omitempty"`

	// maxTopicLevels is the most '/'-separated levels in a topic. Default 128.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxTopicLevels *int32 `json:"maxTopicLevels,omitempty"`

	// maxRetainedMessages is the most retained messages kept. Unset or 0: unlimited.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxRetainedMessages *int32 `json:"maxRetainedMessages,omitempty"`
}

// PeeringSpec configures how the pods of a fleet cooperate.
type PeeringSpec struct {
	// sharedSubscriptionStrategy is how a message for a $share group picks one subscriber
	// across all pods: round_robin, random, or local_first (a subscriber on the receiving
	// pod when there is one).
	// +optional
	// +kubebuilder:default=round_robin
	SharedSubscriptionStrategy SharedSubscriptionStrategy `json:"sharedSubscriptionStrategy,omitempty"`
}

// PodDisruptionBudgetSpec configures the PodDisruptionBudget of the broker pods.
type PodDisruptionBudgetSpec struct {
	// enabled creates a PodDisruptionBudget named after the MQTTBroker.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`

	// maxUnavailable is how many broker pods (a number, or a percentage such as "25%") may
	// be down at once during voluntary disruptions.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^[0-9]+%$')",message="podDisruptionBudget.maxUnavailable must be a number of pods (0 or more) or a percentage such as 25%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}

// MonitoringSpec configures Prometheus scraping. Every broker pod serves metrics whether or
// not this is enabled; it only decides whether a ServiceMonitor is created.
type MonitoringSpec struct {
	// enabled creates a ServiceMonitor for the prometheus-operator, if its CRD is installed.
	// +optional
	// +kubebuilder:default=false
	Enabled *bool `json:"enabled,omitempty"`

	// serviceMonitor configures the ServiceMonitor.
	// +optional
	ServiceMonitor ServiceMonitorSpec `json:"serviceMonitor,omitzero"`
}

// ServiceMonitorSpec configures the ServiceMonitor object.
type ServiceMonitorSpec struct {
	// labels are added to the ServiceMonitor, so that a Prometheus serviceMonitorSelector
	// picks it up (e.g. release: prometheus).
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
}

// BrokerPodTemplate overrides parts of the broker pods. The operator fills in everything
// else (containers, probes, volumes, security context).
type BrokerPodTemplate struct {
	// labels are added to the broker pods. app.kubernetes.io/name and
	// app.kubernetes.io/instance are the operator's (they select the pods).
	// +optional
	// +kubebuilder:validation:XValidation:rule="!('app.kubernetes.io/name' in self) && !('app.kubernetes.io/instance' in self)",message="template.labels must not set app.kubernetes.io/name or app.kubernetes.io/instance: the operator selects the broker pods by them"
	Labels map[string]string `json:"labels,omitempty"`

	// annotations are added to the broker pods.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`

	// resources are the compute requests and limits of the broker container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitzero"`

	// nodeSelector restricts the broker pods to nodes with these labels.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations let the broker pods run on tainted nodes.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// affinity replaces the default scheduling preference, which spreads the broker pods
	// over nodes (preferred pod anti-affinity).
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// priorityClassName is the PriorityClass of the broker pods.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// imagePullSecrets name Secrets used to pull the broker image from a private registry.
	// +optional
	// +listType=atomic
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
}

// MQTTBrokerStatus is the observed state of a broker fleet.
type MQTTBrokerStatus struct {
	// observedGeneration is the metadata.generation the status describes. The conditions
	// are current only when it equals metadata.generation.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// replicas is the number of broker pods that exist (the scale subresource's status).
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// readyReplicas is the number of broker pods that are ready for clients.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// selector is the label selector of the broker pods, in string form, for the scale
	// subresource (HorizontalPodAutoscalers read it).
	// +optional
	Selector string `json:"selector,omitempty"`

	// conditions are Ready, Available, Progressing, Degraded, TLSReady and ACLSynced.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// endpoints are the in-cluster URLs of the client listeners, one per listener.
	// +optional
	// +listType=map
	// +listMapKey=name
	Endpoints []ListenerEndpoint `json:"endpoints,omitempty"`

	// tls reports the serving certificate.
	// +optional
	TLS *TLSStatus `json:"tls,omitempty"`

	// aclRevision identifies the ACL content in the <name>-acl ConfigMap (a hash of it). It
	// changes exactly when the rendered ACL changes.
	// +optional
	ACLRevision string `json:"aclRevision,omitempty"`
}

// ListenerEndpoint is where clients reach one listener.
type ListenerEndpoint struct {
	// name of the listener in spec.listeners.
	// +required
	Name string `json:"name"`

	// protocol of the listener.
	// +required
	Protocol ListenerProtocol `json:"protocol"`

	// url clients connect to, e.g. mqtts://fleet.default.svc:8883 or
	// wss://fleet.default.svc:8084/mqtt.
	// +required
	URL string `json:"url"`
}

// TLSStatus reports the serving certificate in use.
type TLSStatus struct {
	// notAfter is when the serving certificate expires.
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`
}

// MQTTBroker is a fleet of FleetMQ broker pods that act as one MQTT broker: clients may
// connect to any pod, and subscriptions, shared subscriptions, retained messages and
// sessions span the fleet. Scale it with `kubectl scale mqttbroker/<name> --replicas=N`.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=mqb,categories=fleetmq
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type==\"Ready\")].status",description="Whether every broker pod is ready on the current spec"
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=".spec.replicas",description="Desired broker pods"
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=".status.endpoints[0].url",description="URL of the first listener"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 52 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="MQTTBroker names must start with a letter, hold only lowercase letters, digits and '-', and be at most 52 characters: they name Services and a StatefulSet whose pods add a suffix"
type MQTTBroker struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata; its name names every owned object.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired fleet.
	// +optional
	// +kubebuilder:default={}
	Spec MQTTBrokerSpec `json:"spec,omitzero"`

	// status is the observed fleet, written by the operator.
	// +optional
	Status MQTTBrokerStatus `json:"status,omitzero"`
}

// MQTTBrokerList is a list of MQTTBrokers.
// +kubebuilder:object:root=true
type MQTTBrokerList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the MQTTBrokers.
	Items []MQTTBroker `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MQTTBroker{}, &MQTTBrokerList{})
}
