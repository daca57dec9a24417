package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlbuilder "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/controllers/builder"
)

// MQTTBrokerReconciler turns an MQTTBroker, its MQTTUsers and the ConfigMaps and Secrets
// they reference into the objects that run the fleet: the broker's config, ACL and password
// files, its CA and serving certificate, Services, StatefulSet, PodDisruptionBudget, RBAC
// and ServiceMonitor. It writes an object only when what it renders differs from what is in
// the cluster, so an idle resync makes no write, and ACL, user and certificate changes
// reach the pods as file updates without rolling them.
type MQTTBrokerReconciler struct {
	client.Client
	// Scheme resolves kinds and owner references.
	Scheme *runtime.Scheme
	// Recorder emits Events on MQTTBrokers; nil emits none.
	Recorder events.EventRecorder
	// Clock tells the time for certificate validity and condition transitions; nil uses
	// the real clock. Tests move it to make certificates expire.
	Clock clock.PassiveClock
	// BrokerImage runs the broker pods of MQTTBrokers that set no spec.image.
	BrokerImage string
	// MaxConcurrentReconciles bounds parallel reconciles; 0 uses controller-runtime's default.
	MaxConcurrentReconciles int
	// APIReader reads from the API server past the cache: the data of the Secrets and
	// ConfigMaps users reference, which CacheOptions keeps out of the cache. SetupWithManager defaults it to
	// the manager's.
	APIReader client.Reader

	kinds      servedKinds
	referenced *userObjects
}

// brokerScope is one reconcile of one broker: its input and what each phase found. The
// status is computed from it once, at the end.
type brokerScope struct {
	broker *v1.MQTTBroker
	now    time.Time

	paused  bool
	invalid string
	err     error
	acl     *aclOutcome
	tls     *tlsOutcome
	sts     *appsv1.StatefulSet
	requeue time.Duration
}

// requeueAfter asks for the broker to be reconciled again within d (e.g. to renew a
// certificate); the earliest request wins.
func (s *brokerScope) requeueAfter(d time.Duration) {
	if s.requeue == 0 || d < s.requeue {
		s.requeue = d
	}
}

// The operator's own permissions. Least privilege: it reads MQTTBrokers and MQTTUsers,
// writes their status, and creates and updates only the kinds it owns; it deletes only the
// objects that a feature turned off takes away (PodDisruptionBudget, ServiceMonitor).
// Owned objects go away with their MQTTBroker through garbage collection, not the operator.
// It needs get/list/watch on EndpointSlices because it grants them to the broker pods'
// Role, and Kubernetes lets no one grant what they do not hold.
//
// +kubebuilder:rbac:groups=mqtt.fleetmq.io,resources=mqttbrokers,verbs=get;list;watch
// +kubebuilder:rbac:groups=mqtt.fleetmq.io,resources=mqttbrokers/status,verbs=get;patch
// Owner references with blockOwnerDeletion need update on the owner's finalizers where the
// OwnerReferencesPermissionEnforcement admission plugin runs (OpenShift).
// +kubebuilder:rbac:groups=mqtt.fleetmq.io,resources=mqttbrokers/finalizers;mqttusers/finalizers,verbs=update
// +kubebuilder:rbac:groups=mqtt.fleetmq.io,resources=mqttusers,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps;secrets;services;serviceaccounts,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one MQTTBroker's owned objects and status up to date.
func (r *MQTTBrokerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	b := &v1.MQTTBroker{}
	if err := r.Get(ctx, req.NamespacedName, b); err != nil {
		// Owned objects are garbage-collected through their owner references.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !b.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	s := &brokerScope{broker: b, now: r.now()}

	var err error
	if b.Spec.Paused {
		s.paused = true
		err = r.observeStatefulSet(ctx, s)
	} else {
		err = r.reconcileBroker(ctx, s)
	}
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			// The cache was behind a write (ours or another's); retry once it caught up
			// rather than report a failure nobody has to act on.
			logf.FromContext(ctx).V(1).Info("Write conflict, retrying", "err", err.Error())
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		s.err = err
	}
	if serr := r.writeStatus(ctx, b, brokerStatus(s)); serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: s.requeue}, nil
}

// reconcileBroker runs the phases in the order the pods need their inputs: files and
// certificates before the StatefulSet that mounts them. It stops at the first API error;
// the retry starts over.
func (r *MQTTBrokerReconciler) reconcileBroker(ctx context.Context, s *brokerScope) error {
	if err := builder.Validate(s.broker); err != nil {
		s.invalid = err.Error()
		return r.observeStatefulSet(ctx, s)
	}
	phases := []func(context.Context, *brokerScope) error{
		r.reconcileUsersAndACL,
		r.reconcileConfig,
		r.reconcileTLS,
		r.reconcileRBAC,
		r.reconcileServices,
		r.reconcileStatefulSet,
		r.reconcilePodDisruptionBudget,
		r.reconcileServiceMonitor,
	}
	for _, phase := range phases {
		if err := phase(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// reconcileUsersAndACL renders the password file and the ACL. The password file always
// follows the users. The ACL is replaced only by one that renders and parses: when a
// referenced ConfigMap is missing or holds a line the broker refuses, the last good ACL stays
// in force and ACLSynced says which object and line to fix.
func (r *MQTTBrokerReconciler) reconcileUsersAndACL(ctx context.Context, s *brokerScope) error {
	b := s.broker
	current := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: builder.UsersName(b)}, current); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("get users Secret: %w", err)
	}
	users, err := r.gatherUsers(ctx, b, current.Data[builder.PasswdKey])
	if err != nil {
		return err
	}
	if err := r.apply(ctx, s, builder.UsersSecret(b, builder.PasswordFile(users))); err != nil {
		return err
	}

	sources, problem, err := r.gatherACLSources(ctx, b)
	if err != nil {
		return err
	}
	var acl []byte
	if problem == nil {
		acl, err = builder.RenderACL(b, users, sources)
		if err != nil {
			problem = &aclSourceProblem{v1.ReasonACLInvalid, err.Error() + "; the last good ACL stays in force"}
		}
	}
	if problem == nil {
		if err := r.apply(ctx, s, builder.ACLConfigMap(b, acl)); err != nil {
			return err
		}
		s.acl = &aclOutcome{synced: true, reason: v1.ReasonACLRendered, revision: builder.Revision(acl),
			message: fmt.Sprintf("ConfigMap %s holds the ACL of spec.authorization, %d MQTTUsers and %d ConfigMaps",
				builder.ACLName(b), len(users), len(sources))}
		return nil
	}

	s.acl = &aclOutcome{reason: problem.reason, message: problem.message}
	live := &corev1.ConfigMap{}
	err = r.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: builder.ACLName(b)}, live)
	switch {
	case err == nil:
		s.acl.revision = builder.Revision([]byte(live.Data[builder.ACLKey]))
		return nil
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("get ACL ConfigMap: %w", err)
	}
	// There is no last good ACL: the pods cannot start without one, so give them the ACL
	// without the failing sources (without the users too, if theirs is what fails).
	for _, fallback := range [][]builder.User{users, nil} {
		if acl, err := builder.RenderACL(b, fallback, nil); err == nil {
			s.acl.revision = builder.Revision(acl)
			return r.apply(ctx, s, builder.ACLConfigMap(b, acl))
		}
	}
	return nil
}

func (r *MQTTBrokerReconciler) reconcileConfig(ctx context.Context, s *brokerScope) error {
	cm, err := builder.ConfigMap(s.broker)
	if err != nil {
		// Validate passed, so this is a rendering bug; say so rather than loop silently.
		return fmt.Errorf("render the broker config: %w", err)
	}
	return r.apply(ctx, s, cm)
}

func (r *MQTTBrokerReconciler) reconcileRBAC(ctx context.Context, s *brokerScope) error {
	b := s.broker
	for _, obj := range []client.Object{builder.ServiceAccount(b), builder.Role(b), builder.RoleBinding(b)} {
		if err := r.apply(ctx, s, obj); err != nil {
			return err
		}
	}
	return nil
}

func (r *MQTTBrokerReconciler) reconcileServices(ctx context.Context, s *brokerScope) error {
	for _, svc := range []*corev1.Service{builder.ClientService(s.broker), builder.PeersService(s.broker)} {
		if err := r.apply(ctx, s, svc); err != nil {
			return err
		}
	}
	return nil
}

func (r *MQTTBrokerReconciler) reconcileStatefulSet(ctx context.Context, s *brokerScope) error {
	if err := r.apply(ctx, s, builder.StatefulSet(s.broker, r.BrokerImage)); err != nil {
		return err
	}
	return r.observeStatefulSet(ctx, s)
}

// observeStatefulSet reads the StatefulSet for the replica counts and rollout state in status.
func (r *MQTTBrokerReconciler) observeStatefulSet(ctx context.Context, s *brokerScope) error {
	sts := &appsv1.StatefulSet{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(s.broker), sts); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get StatefulSet: %w", err)
	}
	if metav1.IsControlledBy(sts, s.broker) {
		s.sts = sts
	}
	return nil
}

func (r *MQTTBrokerReconciler) reconcilePodDisruptionBudget(ctx context.Context, s *brokerScope) error {
	if pdb := builder.PodDisruptionBudget(s.broker); pdb != nil {
		return r.apply(ctx, s, pdb)
	}
	return r.remove(ctx, s, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.broker.Namespace, Name: s.broker.Name}})
}

// reconcileServiceMonitor keeps the ServiceMonitor while monitoring is on and the
// prometheus-operator's CRD is installed. Without the CRD monitoring is skipped, not an
// error: the pods serve /metrics either way.
func (r *MQTTBrokerReconciler) reconcileServiceMonitor(ctx context.Context, s *brokerScope) error {
	served, err := r.kinds.served(r.RESTMapper(), builder.ServiceMonitorGVK, s.now)
	if err != nil || !served {
		if err == nil && builder.ServiceMonitor(s.broker) != nil {
			logf.FromContext(ctx).V(1).Info("Monitoring is enabled but the ServiceMonitor kind is not served; skipping it")
		}
		return err
	}
	if sm := builder.ServiceMonitor(s.broker); sm != nil {
		return r.apply(ctx, s, sm)
	}
	sm := &unstructured.Unstructured{}
	sm.SetGroupVersionKind(builder.ServiceMonitorGVK)
	sm.SetNamespace(s.broker.Namespace)
	sm.SetName(s.broker.Name)
	return r.remove(ctx, s, sm)
}

// apply ensures one owned object and records an Event when it was created or changed.
func (r *MQTTBrokerReconciler) apply(ctx context.Context, s *brokerScope, desired client.Object) error {
	op, err := r.ensureOwned(ctx, s.broker, desired)
	if err != nil {
		return err
	}
	switch op {
	case controllerutil.OperationResultCreated:
		r.event(s.broker, corev1.EventTypeNormal, "Created", "Create", "Created %s %s", r.kindOf(desired), desired.GetName())
	case controllerutil.OperationResultUpdated:
		logf.FromContext(ctx).Info("Updated owned object", "kind", r.kindOf(desired), "name", desired.GetName())
		r.event(s.broker, corev1.EventTypeNormal, "Updated", "Update", "Updated %s %s", r.kindOf(desired), desired.GetName())
	}
	return nil
}

// remove deletes an owned object that the spec no longer asks for.
func (r *MQTTBrokerReconciler) remove(ctx context.Context, s *brokerScope, obj client.Object) error {
	kind := r.kindOf(obj)
	deleted, err := r.deleteOwned(ctx, s.broker, obj)
	if err != nil {
		return err
	}
	if deleted {
		r.event(s.broker, corev1.EventTypeNormal, "Deleted", "Delete", "Deleted %s %s, which the spec no longer asks for", kind, obj.GetName())
	}
	return nil
}

func (r *MQTTBrokerReconciler) kindOf(obj client.Object) string {
	gvk, err := apiutil.GVKForObject(obj, r.Scheme)
	if err != nil {
		return fmt.Sprintf("%T", obj)
	}
	return gvk.Kind
}

func (r *MQTTBrokerReconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

func (r *MQTTBrokerReconciler) event(b *v1.MQTTBroker, eventType, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(b, nil, eventType, reason, action, note, args...)
	}
}

// SetupWithManager registers the reconciler and its watches with mgr: the MQTTBrokers,
// every kind they own, their MQTTUsers, and the Secrets and ConfigMaps that users and
// brokers reference, so that a change in git reaches the fleet without waiting for a resync.
func (r *MQTTBrokerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := ensureIndexes(context.Background(), mgr); err != nil {
		return err
	}
	if r.Scheme == nil {
		r.Scheme = mgr.GetScheme()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	r.referenced = newUserObjects(r.Client, r.APIReader)
	if r.BrokerImage == "" {
		return errors.New("MQTTBrokerReconciler needs BrokerImage, the image of brokers that set no spec.image")
	}
	return ctrl.NewControllerManagedBy(mgr).
		// Status writes (ours) do not change the generation; annotations and labels let a
		// person nudge a reconcile.
		For(&v1.MQTTBroker{}, ctrlbuilder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.Secret{}).
		Owns(&corev1.Service{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		// A user's status changes are the user controller's; only its spec matters here.
		Watches(&v1.MQTTUser{}, handler.EnqueueRequestsFromMapFunc(brokerOfUser),
			ctrlbuilder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.brokersOfSecret)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.brokersOfConfigMap)).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Named("mqttbroker").
		Complete(r)
}

// brokerOfUser maps an MQTTUser to its broker.
func brokerOfUser(_ context.Context, obj client.Object) []reconcile.Request {
	return requestsFor(obj.GetNamespace(), obj.(*v1.MQTTUser).Spec.BrokerRef.Name)
}

// brokersOfSecret maps a Secret to the brokers that read it: through a user (its password
// or generated credentials) or directly (a serving certificate the broker does not own).
func (r *MQTTBrokerReconciler) brokersOfSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	ns := obj.GetNamespace()
	var names []string
	var users v1.MQTTUserList
	if err := r.List(ctx, &users, client.InNamespace(ns), client.MatchingFields{userSecretIndex: obj.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "Listing MQTTUsers for a Secret event failed", "secret", obj.GetName())
	}
	for _, u := range users.Items {
		names = append(names, u.Spec.BrokerRef.Name)
	}
	names = append(names, r.brokersMatching(ctx, ns, brokerSecretIndex, obj.GetName())...)
	return requestsFor(ns, names...)
}

// brokersOfConfigMap maps a ConfigMap to the brokers whose ACL includes it.
func (r *MQTTBrokerReconciler) brokersOfConfigMap(ctx context.Context, obj client.Object) []reconcile.Request {
	return requestsFor(obj.GetNamespace(), r.brokersMatching(ctx, obj.GetNamespace(), brokerConfigMapIndex, obj.GetName())...)
}

func (r *MQTTBrokerReconciler) brokersMatching(ctx context.Context, ns, index, value string) []string {
	var list v1.MQTTBrokerList
	if err := r.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{index: value}); err != nil {
		logf.FromContext(ctx).Error(err, "Listing MQTTBrokers for a watch event failed", "index", index, "value", value)
		return nil
	}
	names := make([]string, 0, len(list.Items))
	for _, b := range list.Items {
		names = append(names, b.Name)
	}
	return names
}
