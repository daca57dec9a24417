package builder

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

// ServiceMonitorGVK is the prometheus-operator kind ServiceMonitor returns. It is built as
// unstructured so the operator needs neither the prometheus-operator module nor its CRD
// installed (the reconciler skips it when the kind is unknown).
var ServiceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// ServiceMonitor has Prometheus scrape /metrics on every broker pod through the peers
// Service, which lists pods whether ready or not (a pod that fails readiness is the one
// whose metrics matter most). Labels from spec.monitoring.serviceMonitor.labels let a
// Prometheus serviceMonitorSelector pick it up. It is nil when monitoring is disabled.
func ServiceMonitor(b *v1.MQTTBroker) *unstructured.Unstructured {
	if m := b.Spec.Monitoring.Enabled; m == nil || !*m {
		return nil
	}
	labels := map[string]any{}
	for k, v := range mergeMaps(b.Spec.Monitoring.ServiceMonitor.Labels, Labels(b)) {
		labels[k] = v
	}
	selector := map[string]any{ServiceRoleLabel: "peers"}
	for k, v := range SelectorLabels(b) {
		selector[k] = v
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{
			"name":      b.Name,
			"namespace": b.Namespace,
			"labels":    labels,
		},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": selector},
			"endpoints": []any{map[string]any{
				"port":   MetricsPortName,
				"path":   "/metrics",
				"scheme": "http",
			}},
		},
	}}
	u.SetGroupVersionKind(ServiceMonitorGVK)
	return u
}
