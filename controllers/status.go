package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/controllers/builder"
)

// reasonInvalidSpec: the spec passes the CRD's validation but cannot be rendered into pods
// (builder.Validate says why); nothing is changed until it is fixed.
const reasonInvalidSpec = "InvalidSpec"

// aclOutcome is what the ACL phase found, for the ACLSynced condition and aclRevision.
type aclOutcome struct {
	synced   bool
	reason   string
	message  string
	revision string
}

// brokerStatus computes the status of s.broker from what the reconcile found. Everything
// the status says is derived here, in one place, so each condition has one definition.
func brokerStatus(s *brokerScope) *v1.MQTTBrokerStatus {
	b := s.broker
	st := b.Status.DeepCopy()
	st.ObservedGeneration = b.Generation
	st.Selector = labels.SelectorFromSet(builder.SelectorLabels(b)).String()
	st.Endpoints = endpoints(b)
	st.Replicas, st.ReadyReplicas = 0, 0
	if s.sts != nil {
		st.Replicas, st.ReadyReplicas = s.sts.Status.Replicas, s.sts.Status.ReadyReplicas
	}
	if s.acl != nil {
		st.ACLRevision = s.acl.revision
	}
	if s.tls != nil {
		st.TLS = nil
		if s.tls.notAfter != nil {
			st.TLS = &v1.TLSStatus{NotAfter: &metav1.Time{Time: s.tls.notAfter.Truncate(time.Second)}}
		}
	}

	set := func(t string, ok bool, reason, format string, args ...any) {
		status := metav1.ConditionFalse
		if ok {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: t, Status: status, Reason: reason, Message: fmt.Sprintf(format, args...),
			ObservedGeneration: b.Generation, LastTransitionTime: metav1.NewTime(s.now),
		})
	}

	if s.acl != nil {
		set(v1.ConditionACLSynced, s.acl.synced, s.acl.reason, "%s", s.acl.message)
	}
	if s.tls != nil {
		set(v1.ConditionTLSReady, s.tls.status == metav1.ConditionTrue, s.tls.reason, "%s", s.tls.message)
	}

	desired := builder.Replicas(b)
	rollReason, rollMessage, rolledOut := rollout(b, s.sts, desired)

	// Available: some pod serves clients, whatever else is going on.
	switch {
	case desired == 0 && st.ReadyReplicas == 0:
		set(v1.ConditionAvailable, false, v1.ReasonScaledToZero, "spec.replicas is 0: no broker pod runs")
	case st.ReadyReplicas > 0:
		set(v1.ConditionAvailable, true, v1.ReasonPodsReady, "%d of %d broker pods are ready", st.ReadyReplicas, desired)
	default:
		set(v1.ConditionAvailable, false, v1.ReasonPodsNotReady, "no broker pod is ready yet (%d desired)", desired)
	}

	// Degraded: something needs a person.
	problem := s.problem()
	if problem != nil {
		set(v1.ConditionDegraded, true, problem.reason, "%s", problem.message)
	} else {
		set(v1.ConditionDegraded, false, v1.ReasonReconciled, "nothing needs attention")
	}

	// Progressing and Ready.
	switch {
	case s.paused:
		set(v1.ConditionProgressing, false, v1.ReasonPaused, "spec.paused is true: the operator changes nothing until it is set to false")
		set(v1.ConditionReady, false, v1.ReasonPaused, "spec.paused is true: changes to the spec are not applied")
	case problem != nil:
		set(v1.ConditionProgressing, !rolledOut, rollReason, "%s", rollMessage)
		set(v1.ConditionReady, false, problem.reason, "%s", problem.message)
	case s.tls != nil && s.tls.status != metav1.ConditionTrue && s.tls.reason != v1.ReasonTLSDisabled:
		set(v1.ConditionProgressing, true, s.tls.reason, "%s", s.tls.message)
		set(v1.ConditionReady, false, s.tls.reason, "%s", s.tls.message)
	case !rolledOut:
		set(v1.ConditionProgressing, true, rollReason, "%s", rollMessage)
		set(v1.ConditionReady, false, rollReason, "%s", rollMessage)
	case desired == 0:
		set(v1.ConditionProgressing, false, v1.ReasonReconciled, "the fleet matches the spec")
		set(v1.ConditionReady, true, v1.ReasonScaledToZero, "spec.replicas is 0 and no broker pod runs")
	default:
		set(v1.ConditionProgressing, false, v1.ReasonReconciled, "the fleet matches the spec")
		set(v1.ConditionReady, true, v1.ReasonPodsReady, "all %d broker pods are ready on the current spec", desired)
	}
	return st
}

// problem is the first thing that needs a person, in the order a person should look at
// them, or nil.
func (s *brokerScope) problem() *aclSourceProblem {
	switch {
	case s.invalid != "":
		return &aclSourceProblem{reasonInvalidSpec, s.invalid}
	case s.err != nil:
		return &aclSourceProblem{v1.ReasonReconcileFailed, s.err.Error()}
	case s.acl != nil && !s.acl.synced:
		return &aclSourceProblem{s.acl.reason, s.acl.message}
	case s.tls != nil && s.tls.status != metav1.ConditionTrue && s.tls.reason != v1.ReasonTLSDisabled && s.tls.reason != v1.ReasonReconciling:
		return &aclSourceProblem{s.tls.reason, s.tls.message}
	}
	return nil
}

// rollout tells whether the StatefulSet runs the current pod template on every desired
// replica, all ready, and if not, why, as a condition reason and message.
func rollout(b *v1.MQTTBroker, sts *appsv1.StatefulSet, desired int32) (reason, message string, done bool) {
	switch {
	case sts == nil:
		return v1.ReasonReconciling, fmt.Sprintf("waiting for StatefulSet %s to be created", b.Name), false
	case sts.Status.ObservedGeneration < sts.Generation:
		return v1.ReasonReconciling, fmt.Sprintf("waiting for the StatefulSet controller to observe generation %d of StatefulSet %s",
			sts.Generation, b.Name), false
	case sts.Spec.Replicas != nil && *sts.Spec.Replicas != desired:
		return v1.ReasonScaling, fmt.Sprintf("scaling StatefulSet %s to %d replicas", b.Name, desired), false
	case sts.Status.UpdatedReplicas < desired ||
		(sts.Status.UpdateRevision != "" && sts.Status.CurrentRevision != sts.Status.UpdateRevision && desired > 0):
		return v1.ReasonRollingUpdate, fmt.Sprintf("%d of %d broker pods run the current pod template",
			sts.Status.UpdatedReplicas, desired), false
	case sts.Status.Replicas != desired:
		return v1.ReasonScaling, fmt.Sprintf("%d broker pods exist, %d desired", sts.Status.Replicas, desired), false
	case sts.Status.ReadyReplicas < desired:
		return v1.ReasonPodsNotReady, fmt.Sprintf("%d of %d broker pods are ready", sts.Status.ReadyReplicas, desired), false
	}
	return v1.ReasonReconciled, "the fleet matches the spec", true
}

// endpoints are the in-cluster URLs of the client listeners, through the client Service.
func endpoints(b *v1.MQTTBroker) []v1.ListenerEndpoint {
	host := fmt.Sprintf("%s.%s.svc", b.Name, b.Namespace)
	var out []v1.ListenerEndpoint
	for _, l := range builder.Listeners(b) {
		url := fmt.Sprintf("%s://%s:%d", l.Protocol, host, l.Port)
		if l.Protocol.UsesWebSocket() {
			path := l.Path
			if path == "" {
				path = v1.DefaultWebSocketPath
			}
			url += path
		}
		out = append(out, v1.ListenerEndpoint{Name: l.Name, Protocol: l.Protocol, URL: url})
	}
	return out
}

// writeStatus writes next as b's status when it differs from what b has, and emits a
// Warning Event when a condition turns bad or its complaint changes. An idle resync gets
// here with an equal status and writes nothing.
func (r *MQTTBrokerReconciler) writeStatus(ctx context.Context, b *v1.MQTTBroker, next *v1.MQTTBrokerStatus) error {
	for _, t := range []string{v1.ConditionACLSynced, v1.ConditionTLSReady, v1.ConditionDegraded} {
		cur := meta.FindStatusCondition(next.Conditions, t)
		bad := cur != nil && (cur.Status == metav1.ConditionFalse) != (t == v1.ConditionDegraded)
		if !bad || cur.Reason == v1.ReasonTLSDisabled || cur.Reason == v1.ReasonReconciling {
			continue
		}
		if t == v1.ConditionDegraded && meta.IsStatusConditionFalse(next.Conditions, v1.ConditionACLSynced) {
			continue // the ACLSynced warning already says it
		}
		if prev := meta.FindStatusCondition(b.Status.Conditions, t); prev == nil || prev.Status != cur.Status || prev.Message != cur.Message {
			r.event(b, corev1.EventTypeWarning, cur.Reason, "Reconcile", "%s", cur.Message)
		}
	}
	if equality.Semantic.DeepEqual(&b.Status, next) {
		return nil
	}
	patched := b.DeepCopy()
	patched.Status = *next
	if err := r.Status().Patch(ctx, patched, client.MergeFrom(b)); err != nil {
		return fmt.Errorf("update status of MQTTBroker %s: %w", klog.KObj(b), err)
	}
	return nil
}
