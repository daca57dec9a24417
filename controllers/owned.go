package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

// appliedHashAnnotation holds a hash of what the operator last wrote to an owned object (its
// labels, annotations and the fields the operator owns, as rendered). Comparing it with the
// hash of the freshly rendered object finds every change the operator wants to make, including
// removals from lists that a field-by-field "is the live object a superset" check cannot see;
// the field check then only has to find edits made by others.
const appliedHashAnnotation = "mqtt.fleetmq.io/applied-hash"

// restartedAtAnnotation is what `kubectl rollout restart` puts on a pod template. It is kept
// when the operator rewrites the template, so that a rewrite does not undo a restart a person
// asked for (or roll the pods a second time).
const restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// ownedKind knows which fields of one kind of object the operator owns.
type ownedKind struct {
	// apply copies the owned fields from desired onto live, leaving the rest of live (server
	// defaults, fields others own) alone.
	apply func(live, desired client.Object)
	// matches reports whether live's owned fields still hold what desired sets. Fields that
	// desired leaves empty are the API server's to default and are not compared.
	matches func(live, desired client.Object) bool
}

// ownedKinds lists how each kind the broker controller writes is compared and updated.
var ownedKinds = map[string]ownedKind{
	"ConfigMap": {
		apply: func(live, desired client.Object) {
			l, d := live.(*corev1.ConfigMap), desired.(*corev1.ConfigMap)
			l.Data, l.BinaryData = d.Data, d.BinaryData
		},
		matches: func(live, desired client.Object) bool {
			l, d := live.(*corev1.ConfigMap), desired.(*corev1.ConfigMap)
			return equality.Semantic.DeepEqual(l.Data, d.Data) && equality.Semantic.DeepEqual(l.BinaryData, d.BinaryData)
		},
	},
	"Secret": {
		apply: func(live, desired client.Object) {
			live.(*corev1.Secret).Data = desired.(*corev1.Secret).Data
		},
		matches: func(live, desired client.Object) bool {
			return equality.Semantic.DeepEqual(live.(*corev1.Secret).Data, desired.(*corev1.Secret).Data)
		},
	},
	"Service": {
		apply: func(live, desired client.Object) {
			l, d := live.(*corev1.Service), desired.(*corev1.Service)
			// Keep node ports the API server allocated, so a reconcile does not move them.
			allocated := make(map[string]int32)
			for _, p := range l.Spec.Ports {
				allocated[p.Name] = p.NodePort
			}
			ports := make([]corev1.ServicePort, len(d.Spec.Ports))
			copy(ports, d.Spec.Ports)
			if d.Spec.Type == corev1.ServiceTypeNodePort || d.Spec.Type == corev1.ServiceTypeLoadBalancer {
				for i := range ports {
					if ports[i].NodePort == 0 {
						ports[i].NodePort = allocated[ports[i].Name]
					}
				}
			}
			l.Spec.Type = d.Spec.Type
			l.Spec.Ports = ports
			l.Spec.Selector = d.Spec.Selector
			l.Spec.PublishNotReadyAddresses = d.Spec.PublishNotReadyAddresses
			if d.Spec.SessionAffinity != "" {
				l.Spec.SessionAffinity = d.Spec.SessionAffinity
			}
			if d.Spec.ExternalTrafficPolicy != "" {
				l.Spec.ExternalTrafficPolicy = d.Spec.ExternalTrafficPolicy
			}
		},
		matches: func(live, desired client.Object) bool {
			l, d := live.(*corev1.Service), desired.(*corev1.Service)
			return len(l.Spec.Ports) == len(d.Spec.Ports) && derivative(d.Spec, l.Spec)
		},
	},
	"StatefulSet": {
		apply: func(live, desired client.Object) {
			l, d := live.(*appsv1.StatefulSet), desired.(*appsv1.StatefulSet)
			restartedAt, restarted := l.Spec.Template.Annotations[restartedAtAnnotation]
			l.Spec.Replicas = d.Spec.Replicas
			l.Spec.Template = *d.Spec.Template.DeepCopy()
			if restarted {
				if l.Spec.Template.Annotations == nil {
					l.Spec.Template.Annotations = map[string]string{}
				}
				l.Spec.Template.Annotations[restartedAtAnnotation] = restartedAt
			}
			l.Spec.UpdateStrategy = d.Spec.UpdateStrategy
			l.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			l.Spec.RevisionHistoryLimit = d.Spec.RevisionHistoryLimit
			l.Spec.PersistentVolumeClaimRetentionPolicy = d.Spec.PersistentVolumeClaimRetentionPolicy
			// Selector, serviceName, podManagementPolicy and volumeClaimTemplates are
			// immutable; they are set at creation and never rendered differently.
		},
		matches: func(live, desired client.Object) bool {
			l, d := live.(*appsv1.StatefulSet), desired.(*appsv1.StatefulSet)
			return len(l.Spec.Template.Spec.Containers) == len(d.Spec.Template.Spec.Containers) &&
				len(l.Spec.Template.Spec.Volumes) == len(d.Spec.Template.Spec.Volumes) &&
				derivative(d.Spec, l.Spec)
		},
	},
	"PodDisruptionBudget": {
		apply: func(live, desired client.Object) {
			live.(*policyv1.PodDisruptionBudget).Spec = desired.(*policyv1.PodDisruptionBudget).Spec
		},
		matches: func(live, desired client.Object) bool {
			return derivative(desired.(*policyv1.PodDisruptionBudget).Spec, live.(*policyv1.PodDisruptionBudget).Spec)
		},
	},
	"ServiceAccount": {
		apply: func(live, desired client.Object) {
			l, d := live.(*corev1.ServiceAccount), desired.(*corev1.ServiceAccount)
			l.AutomountServiceAccountToken = d.AutomountServiceAccountToken
		},
		matches: func(live, desired client.Object) bool {
			l, d := live.(*corev1.ServiceAccount), desired.(*corev1.ServiceAccount)
			return equality.Semantic.DeepEqual(l.AutomountServiceAccountToken, d.AutomountServiceAccountToken)
		},
	},
	"Role": {
		apply: func(live, desired client.Object) {
			live.(*rbacv1.Role).Rules = desired.(*rbacv1.Role).Rules
		},
		matches: func(live, desired client.Object) bool {
			return equality.Semantic.DeepEqual(live.(*rbacv1.Role).Rules, desired.(*rbacv1.Role).Rules)
		},
	},
	"RoleBinding": {
		apply: func(live, desired client.Object) {
			// roleRef is immutable and always names the broker's own Role.
			live.(*rbacv1.RoleBinding).Subjects = desired.(*rbacv1.RoleBinding).Subjects
		},
		matches: func(live, desired client.Object) bool {
			l, d := live.(*rbacv1.RoleBinding), desired.(*rbacv1.RoleBinding)
			return equality.Semantic.DeepEqual(l.Subjects, d.Subjects) && l.RoleRef == d.RoleRef
		},
	},
}

// unstructuredKind owns the spec of an object the operator knows only as unstructured
// (ServiceMonitor, cert-manager Certificate).
var unstructuredKind = ownedKind{
	apply: func(live, desired client.Object) {
		l, d := live.(*unstructured.Unstructured), desired.(*unstructured.Unstructured)
		l.Object["spec"] = jsonValue(d.Object["spec"])
	},
	matches: func(live, desired client.Object) bool {
		want := jsonValue(desired.(*unstructured.Unstructured).Object["spec"])
		return want != nil && derivative(want, live.(*unstructured.Unstructured).Object["spec"])
	},
}

// jsonValue returns v as decoded JSON ([]any, map[string]any, int64, float64...), the types
// a live unstructured object holds, so equal values compare equal whatever Go types the
// builder used. It returns nil when v does not encode.
func jsonValue(v any) any {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	// utiljson decodes whole numbers as int64, as the API machinery does.
	var decoded any
	if err := utiljson.Unmarshal(raw, &decoded); err != nil {
		return nil
	}
	return decoded
}

// derivative reports whether live holds every value that desired sets. Unlike
// equality.Semantic.DeepDerivative it treats zero numbers and false as unset too, because
// the API server defaults those (a probe's successThreshold 0 becomes 1), and it requires a
// list that desired sets to have the same length in live, so an element someone added or
// removed is noticed. The semantic equalities (quantities, times) still apply. A change the
// operator makes is found by the applied hash; this only has to find edits by others.
func derivative(desired, live any) bool {
	return deriveValue(reflect.ValueOf(desired), reflect.ValueOf(live))
}

func deriveValue(d, l reflect.Value) bool {
	if !d.IsValid() {
		return true
	}
	if !l.IsValid() {
		return d.IsZero()
	}
	if d.Type() != l.Type() {
		if d.Kind() == reflect.Interface || l.Kind() == reflect.Interface {
			return deriveValue(elem(d), elem(l))
		}
		return false
	}
	if eq, ok := equality.Semantic.Equalities[d.Type()]; ok {
		return d.IsZero() || eq.Call([]reflect.Value{d, l})[0].Bool()
	}
	switch d.Kind() {
	case reflect.Pointer, reflect.Interface:
		if d.IsNil() {
			return true
		}
		if l.IsNil() {
			return false
		}
		return deriveValue(d.Elem(), l.Elem())
	case reflect.Struct:
		for i := range d.NumField() {
			if !deriveValue(d.Field(i), l.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if d.Len() == 0 {
			return true
		}
		if d.Len() != l.Len() {
			return false
		}
		for i := range d.Len() {
			if !deriveValue(d.Index(i), l.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		for _, k := range d.MapKeys() {
			if !deriveValue(d.MapIndex(k), l.MapIndex(k)) {
				return false
			}
		}
		return true
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return true
	}
	// Scalars: zero is the API server's to default. Unexported fields cannot be read.
	if !d.CanInterface() || !l.CanInterface() {
		return true
	}
	return d.IsZero() || d.Interface() == l.Interface()
}

// elem unwraps an interface value.
func elem(v reflect.Value) reflect.Value {
	if v.Kind() == reflect.Interface && !v.IsNil() {
		return v.Elem()
	}
	return v
}

// ensureOwned creates desired, controlled by b, or brings the live object's owned fields
// back to desired. It writes only when something differs, so reconciling an unchanged
// broker sends no request. It returns what it did.
func (r *MQTTBrokerReconciler) ensureOwned(ctx context.Context, b *v1.MQTTBroker, desired client.Object) (controllerutil.OperationResult, error) {
	gvk, err := apiutil.GVKForObject(desired, r.Scheme)
	if err != nil {
		return controllerutil.OperationResultNone, fmt.Errorf("kind of %T: %w", desired, err)
	}
	kind, ok := ownedKinds[gvk.Kind]
	if _, isUnstructured := desired.(*unstructured.Unstructured); isUnstructured {
		kind, ok = unstructuredKind, true
	}
	if !ok {
		return controllerutil.OperationResultNone, fmt.Errorf("no owned-field rules for %s", gvk.Kind)
	}
	what := fmt.Sprintf("%s %s/%s", gvk.Kind, desired.GetNamespace(), desired.GetName())

	hash, err := renderedHash(desired)
	if err != nil {
		return controllerutil.OperationResultNone, fmt.Errorf("hash %s: %w", what, err)
	}
	setAnnotation(desired, appliedHashAnnotation, hash)

	live := desired.DeepCopyObject().(client.Object)
	if err := r.Get(ctx, client.ObjectKeyFromObject(desired), live); err != nil {
		if !apierrors.IsNotFound(err) {
			return controllerutil.OperationResultNone, fmt.Errorf("get %s: %w", what, err)
		}
		if rv := desired.GetResourceVersion(); rv != "" {
			// desired was computed from a version that is gone: retry from scratch.
			return controllerutil.OperationResultNone, fmt.Errorf("%s was deleted after it was read (resourceVersion %s)", what, rv)
		}
		if err := controllerutil.SetControllerReference(b, desired, r.Scheme); err != nil {
			return controllerutil.OperationResultNone, fmt.Errorf("own %s: %w", what, err)
		}
		if err := r.Create(ctx, desired); err != nil {
			return controllerutil.OperationResultNone, fmt.Errorf("create %s: %w", what, err)
		}
		return controllerutil.OperationResultCreated, nil
	}

	if rv := desired.GetResourceVersion(); rv != "" && rv != live.GetResourceVersion() {
		// desired was computed from an older version of the object (see
		// reconcileOperatorTLS): retry with what is there now.
		return controllerutil.OperationResultNone, apierrors.NewConflict(
			schema.GroupResource{Group: gvk.Group, Resource: strings.ToLower(gvk.Kind) + "s"}, desired.GetName(),
			fmt.Errorf("%s changed since it was read (resourceVersion %s, now %s)", what, rv, live.GetResourceVersion()))
	}
	desired.SetResourceVersion("")

	if owner := metav1.GetControllerOf(live); owner != nil && owner.UID != b.UID {
		return controllerutil.OperationResultNone, fmt.Errorf(
			"%s already exists and is controlled by %s %s: delete it, or give the MQTTBroker another name", what, owner.Kind, owner.Name)
	}
	if metav1.IsControlledBy(live, b) && live.GetAnnotations()[appliedHashAnnotation] == hash &&
		containsAll(live.GetLabels(), desired.GetLabels()) && containsAll(live.GetAnnotations(), desired.GetAnnotations()) &&
		kind.matches(live, desired) {
		return controllerutil.OperationResultNone, nil
	}

	// Adopt an object nobody controls (e.g. left by an earlier MQTTBroker of the same name)
	// and bring it to the rendered state.
	updated := live.DeepCopyObject().(client.Object)
	updated.SetLabels(mergeMaps(updated.GetLabels(), desired.GetLabels()))
	updated.SetAnnotations(mergeMaps(updated.GetAnnotations(), desired.GetAnnotations()))
	kind.apply(updated, desired)
	if err := controllerutil.SetControllerReference(b, updated, r.Scheme); err != nil {
		return controllerutil.OperationResultNone, fmt.Errorf("own %s: %w", what, err)
	}
	if err := r.Update(ctx, updated); err != nil {
		return controllerutil.OperationResultNone, fmt.Errorf("update %s: %w", what, err)
	}
	return controllerutil.OperationResultUpdated, nil
}

// deleteOwned deletes the object named like obj if b controls it: a feature turned off
// (PodDisruptionBudget, ServiceMonitor) takes its object away. Objects of others stay.
func (r *MQTTBrokerReconciler) deleteOwned(ctx context.Context, b *v1.MQTTBroker, obj client.Object) (bool, error) {
	if err := r.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, b) {
		return false, nil
	}
	if err := r.Delete(ctx, obj, client.Preconditions{UID: ptrTo(obj.GetUID())}); client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("delete %T %s: %w", obj, client.ObjectKeyFromObject(obj), err)
	}
	return true, nil
}

// renderedHash hashes what the builder rendered: labels, annotations and everything outside
// metadata. The builders are deterministic, so an unchanged broker hashes the same.
func renderedHash(obj client.Object) (string, error) {
	var content any
	if u, ok := obj.(*unstructured.Unstructured); ok {
		rest := make(map[string]any, len(u.Object))
		for k, v := range u.Object {
			if k != "metadata" {
				rest[k] = v
			}
		}
		content = map[string]any{"labels": u.GetLabels(), "annotations": u.GetAnnotations(), "content": rest}
	} else {
		c := obj.DeepCopyObject().(client.Object)
		om, ok := any(c).(metav1.ObjectMetaAccessor)
		if !ok {
			return "", fmt.Errorf("%T has no ObjectMeta", obj)
		}
		*om.GetObjectMeta().(*metav1.ObjectMeta) = metav1.ObjectMeta{Labels: obj.GetLabels(), Annotations: obj.GetAnnotations()}
		c.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
		content = c
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8]), nil
}

func setAnnotation(obj client.Object, key, value string) {
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[key] = value
	obj.SetAnnotations(a)
}

// containsAll reports whether have holds every key of want with the same value.
func containsAll(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// mergeMaps returns base overlaid by over.
func mergeMaps(base, over map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }
