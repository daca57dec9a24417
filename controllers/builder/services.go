package builder

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

// ClientService is the Service clients connect to, named after the broker: one port per
// listener, of spec.service.type with spec.service.annotations. It reaches ready pods only.
// The metrics port is not on it, so a LoadBalancer never exposes metrics.
func ClientService(b *v1.MQTTBroker) *corev1.Service {
	meta := objectMeta(b, b.Name)
	meta.Labels[ServiceRoleLabel] = "client"
	if len(b.Spec.Service.Annotations) > 0 {
		meta.Annotations = maps.Clone(b.Spec.Service.Annotations)
	}
	typ := b.Spec.Service.Type
	if typ == "" {
		typ = corev1.ServiceTypeClusterIP
	}
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: SelectorLabels(b),
			Ports:    listenerPorts(b),
		},
	}
}

// PeersService is the headless Service that gives each pod the DNS name
// <pod>.<name>-peers.<namespace>.svc and whose EndpointSlices the brokers watch to find
// their peers. It publishes pods before they are ready, because a starting pod must reach
// its peers to become ready. It also carries the metrics port the ServiceMonitor scrapes,
// so every pod is scraped, ready or not.
func PeersService(b *v1.MQTTBroker) *corev1.Service {
	meta := objectMeta(b, PeersName(b))
	meta.Labels[ServiceRoleLabel] = "peers"
	ports := append(listenerPorts(b), corev1.ServicePort{
		Name:       MetricsPortName,
		Protocol:   corev1.ProtocolTCP,
		Port:       MetricsPort,
		TargetPort: intstr.FromInt32(MetricsPort),
	})
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			Type:                     corev1.ServiceTypeClusterIP,
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true,
			Selector:                 SelectorLabels(b),
			Ports:                    ports,
		},
	}
}

// listenerPorts are the Service ports of b's listeners, named after them.
func listenerPorts(b *v1.MQTTBroker) []corev1.ServicePort {
	var ports []corev1.ServicePort
	for _, l := range Listeners(b) {
		ports = append(ports, corev1.ServicePort{
			Name:       l.Name,
			Protocol:   corev1.ProtocolTCP,
			Port:       l.Port,
			TargetPort: intstr.FromInt32(l.Port),
		})
	}
	return ports
}
