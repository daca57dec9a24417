package builder

import (
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

// PodDisruptionBudget limits voluntary disruptions (node drains, upgrades) to
// spec.podDisruptionBudget.maxUnavailable broker pods at once (default 1). It uses
// maxUnavailable rather than minAvailable so that scaling the fleet needs no change here and
// a one-pod fleet can still be drained. It is nil when the spec disables it.
func PodDisruptionBudget(b *v1.MQTTBroker) *policyv1.PodDisruptionBudget {
	spec := b.Spec.PodDisruptionBudget
	if spec.Enabled != nil && !*spec.Enabled {
		return nil
	}
	maxUnavailable := intstr.FromInt32(1)
	if spec.MaxUnavailable != nil {
		maxUnavailable = *spec.MaxUnavailable
	}
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: objectMeta(b, b.Name),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &maxUnavailable,
			Selector:       &metav1.LabelSelector{MatchLabels: SelectorLabels(b)},
		},
	}
}
