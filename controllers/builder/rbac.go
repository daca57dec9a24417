package builder

import (
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

// ServiceAccount is the identity of the broker pods.
func ServiceAccount(b *v1.MQTTBroker) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: objectMeta(b, ServiceAccountName(b)),
	}
}

// Role grants the broker pods the one thing they read from the API: the EndpointSlices of
// the peers Service, to find each other. Nothing else, and nothing outside the namespace.
func Role(b *v1.MQTTBroker) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: objectMeta(b, ServiceAccountName(b)),
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"discovery.k8s.io"},
			Resources: []string{"endpointslices"},
			Verbs:     []string{"get", "list", "watch"},
		}},
	}
}

// RoleBinding binds Role to ServiceAccount.
func RoleBinding(b *v1.MQTTBroker) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: objectMeta(b, ServiceAccountName(b)),
		RoleRef: rbacv1.RoleRef{
			APIGroup: rbacv1.GroupName,
			Kind:     "Role",
			Name:     ServiceAccountName(b),
		},
		Subjects: []rbacv1.Subject{{
			Kind:      rbacv1.ServiceAccountKind,
			Name:      ServiceAccountName(b),
			Namespace: b.Namespace,
		}},
	}
}
