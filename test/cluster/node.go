package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// The node agent is the local cluster's kubelet and scheduler in one: it registers a Node,
// keeps its lease fresh, binds every unscheduled pod to it, and runs each bound pod through
// a podWorker. It talks to the apiserver as the cluster admin.

const (
	// leaseDuration and leaseRenewInterval are the kubelet's defaults.
	leaseDuration      = 40 * time.Second
	leaseRenewInterval = 10 * time.Second
	// nodeStatusInterval is how often the Node's Ready condition heartbeat is refreshed.
	nodeStatusInterval = time.Minute
	// pvLabel marks the PersistentVolumes the node agent creates for claims.
	pvLabel = "fleetmq.io/local-node"
)

type nodeAgent struct {
	c      *Cluster
	client kubernetes.Interface
	name   string
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	factory      informers.SharedInformerFactory
	podLister    corelisters.PodLister
	cmLister     corelisters.ConfigMapLister
	secretLister corelisters.SecretLister
	pvcLister    corelisters.PersistentVolumeClaimLister
	svcLister    corelisters.ServiceLister
	hostsDirty   chan struct{}
	binds        workqueue.TypedRateLimitingInterface[string]

	// broadcaster sends the events of the node (as the kubelet) and of the binder (as the
	// default scheduler), so `kubectl describe pod` tells what happened.
	broadcaster record.EventBroadcaster
	events      record.EventRecorder
	schedEvents record.EventRecorder

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	stopped bool
}

func newNodeAgent(c *Cluster, client kubernetes.Interface, name string) *nodeAgent {
	ctx, cancel := context.WithCancel(context.Background())
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return &nodeAgent{
		broadcaster: broadcaster,
		events:      broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: name}),
		schedEvents: broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: corev1.DefaultSchedulerName}),
		c:           c, client: client, name: name, log: c.log.With("component", "node"),
		ctx: ctx, cancel: cancel,
		workers:    map[types.UID]*podWorker{},
		hostsDirty: make(chan struct{}, 1),
		binds: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "bind"}),
	}
}

// start registers the Node, starts the informers and the loops, and returns once the caches
// are synced.
func (a *nodeAgent) start(ctx context.Context) error {
	if err := a.registerNode(ctx); err != nil {
		return err
	}
	a.factory = informers.NewSharedInformerFactory(a.client, 0)
	pods := a.factory.Core().V1().Pods()
	cms := a.factory.Core().V1().ConfigMaps()
	secrets := a.factory.Core().V1().Secrets()
	pvcs := a.factory.Core().V1().PersistentVolumeClaims()
	services := a.factory.Core().V1().Services()
	a.podLister, a.cmLister, a.secretLister, a.pvcLister = pods.Lister(), cms.Lister(), secrets.Lister(), pvcs.Lister()
	a.svcLister = services.Lister()

	_, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.podChanged(obj) },
		UpdateFunc: func(_, obj any) { a.podChanged(obj) },
		DeleteFunc: func(obj any) { a.podChanged(obj) },
	})
	if err != nil {
		return err
	}
	// A ConfigMap or Secret edit reaches the pods of its namespace at once (the kubelet
	// waits up to a minute; the e2e suite measures GitOps latency, so the agent does not).
	nsChanged := cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) { a.namespaceChanged(obj) },
		AddFunc:    func(obj any) { a.namespaceChanged(obj) },
		DeleteFunc: func(obj any) { a.namespaceChanged(obj) },
	}
	if _, err := cms.Informer().AddEventHandler(nsChanged); err != nil {
		return err
	}
	if _, err := secrets.Informer().AddEventHandler(nsChanged); err != nil {
		return err
	}
	hosts := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { a.hostsChanged() },
		UpdateFunc: func(_, _ any) { a.hostsChanged() },
		DeleteFunc: func(any) { a.hostsChanged() },
	}
	if _, err := services.Informer().AddEventHandler(hosts); err != nil {
		return err
	}
	if _, err := pods.Informer().AddEventHandler(hosts); err != nil {
		return err
	}
	if _, err := pvcs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) { a.claimDeleted(obj) },
	}); err != nil {
		return err
	}
	a.factory.Start(a.ctx.Done())
	for typ, ok := range a.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("the node agent's %v cache did not sync: %v", typ, ctx.Err())
		}
	}
	a.wg.Add(3)
	go func() { defer a.wg.Done(); a.heartbeat() }()
	go func() { defer a.wg.Done(); a.bindLoop() }()
	go func() { defer a.wg.Done(); a.hostsLoop() }()
	return nil
}

// stop stops every pod (SIGTERM, then SIGKILL after Options.StopGrace) and the agent's
// loops. Pod objects stay in the API: the cluster is going away with them.
func (a *nodeAgent) stop() {
	a.mu.Lock()
	a.stopped = true
	workers := make([]*podWorker, 0, len(a.workers))
	for _, w := range a.workers {
		workers = append(workers, w)
	}
	a.mu.Unlock()
	a.cancel()
	a.binds.ShutDown()
	for _, w := range workers {
		<-w.done
	}
	a.wg.Wait()
	a.broadcaster.Shutdown()
	if a.factory != nil {
		a.factory.Shutdown()
	}
}

func (a *nodeAgent) nodeLabels() map[string]string {
	return map[string]string{
		corev1.LabelHostname:   a.name,
		corev1.LabelOSStable:   runtime.GOOS,
		corev1.LabelArchStable: runtime.GOARCH,
	}
}

// registerNode creates (or takes over) the Node and reports it Ready.
func (a *nodeAgent) registerNode(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.name, Labels: a.nodeLabels()}}
	_, err := a.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register the node %s: %w", a.name, err)
	}
	if err := a.updateNodeStatus(ctx); err != nil {
		return err
	}
	// The TaintNodesByCondition admission plugin marks a new node not-ready; the node
	// lifecycle controller, which would lift it once the node reports Ready, is not run
	// here (it would evict pods of a node whose agent paused in a debugger).
	node, err = a.client.CoreV1().Nodes().Get(ctx, a.name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read the node %s: %w", a.name, err)
	}
	var taints []corev1.Taint
	for _, t := range node.Spec.Taints {
		if t.Key != corev1.TaintNodeNotReady && t.Key != corev1.TaintNodeUnreachable {
			taints = append(taints, t)
		}
	}
	if len(taints) != len(node.Spec.Taints) {
		node.Spec.Taints = taints
		if _, err := a.client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("lift the not-ready taint of node %s: %w", a.name, err)
		}
	}
	return nil
}

func (a *nodeAgent) updateNodeStatus(ctx context.Context) error {
	node, err := a.client.CoreV1().Nodes().Get(ctx, a.name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read the node %s: %w", a.name, err)
	}
	now := metav1.NewTime(time.Now())
	capacity := nodeCapacity()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
		for _, old := range node.Status.Conditions {
			if old.Type == t && old.Status == s {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	node.Status.Capacity = capacity
	node.Status.Allocatable = capacity
	node.Status.Conditions = []corev1.NodeCondition{
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "the local node does not track memory pressure"),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "the local node does not track disk pressure"),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "the local node does not track PID pressure"),
		cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "the fleetmq local node agent is posting ready status"),
	}
	gw := a.c.net.gateway.String()
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: gw}, {Type: corev1.NodeHostName, Address: a.name}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(a.c.logsPort)
	node.Status.NodeInfo = corev1.NodeSystemInfo{
		OperatingSystem:         runtime.GOOS,
		OSImage:                 osImage(),
		KernelVersion:           strings.TrimSpace(readFileString("/proc/sys/kernel/osrelease")),
		Architecture:            runtime.GOARCH,
		KubeletVersion:          "fleetmq-local",
		ContainerRuntimeVersion: "fleetmq-local://1",
		MachineID:               a.c.net.id,
		SystemUUID:              a.c.net.id,
		BootID:                  a.c.net.id,
	}
	_, err = a.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("report the node %s ready: %w", a.name, err)
	}
	return nil
}

// osImage is the machine's PRETTY_NAME from os-release, as the kubelet reports it.
func osImage() string {
	for _, line := range strings.Split(readFileString("/etc/os-release"), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return "Linux"
}

func readFileString(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

// heartbeat renews the node lease and refreshes the node status until the agent stops.
func (a *nodeAgent) heartbeat() {
	lastStatus := time.Now()
	tick := time.NewTicker(leaseRenewInterval)
	defer tick.Stop()
	for {
		if err := a.renewLease(); err != nil && a.ctx.Err() == nil {
			a.log.Warn("Cannot renew the node lease", "err", err)
		}
		if time.Since(lastStatus) >= nodeStatusInterval {
			if err := a.updateNodeStatus(a.ctx); err != nil && a.ctx.Err() == nil {
				a.log.Warn("Cannot update the node status", "err", err)
			} else {
				lastStatus = time.Now()
			}
		}
		select {
		case <-a.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (a *nodeAgent) renewLease() error {
	leases := a.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	dur := int32(leaseDuration / time.Second)
	lease, err := leases.Get(a.ctx, a.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(a.ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: a.name},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &a.name, LeaseDurationSeconds: &dur, RenewTime: &now},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = &a.name, &dur, &now
	_, err = leases.Update(a.ctx, lease, metav1.UpdateOptions{})
	return err
}

// podChanged routes a pod event: unscheduled pods to the binder, this node's pods to their
// worker (creating it for a new pod).
func (a *nodeAgent) podChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	switch pod.Spec.NodeName {
	case "":
		if pod.DeletionTimestamp == nil {
			if key, err := cache.MetaNamespaceKeyFunc(pod); err == nil {
				a.binds.Add(key)
			}
		}
	case a.name:
		a.mu.Lock()
		w, ok := a.workers[pod.UID]
		if !ok && !a.stopped && pod.DeletionTimestamp == nil && a.currentExists(pod) {
			w = newPodWorker(a, pod)
			a.workers[pod.UID] = w
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				w.run()
				a.mu.Lock()
				delete(a.workers, w.uid)
				a.mu.Unlock()
			}()
		}
		a.mu.Unlock()
		if w != nil {
			w.notify()
		}
	}
}

// currentExists reports whether pod is still in the cache, so that a delete event does not
// start a worker for a pod that is gone.
func (a *nodeAgent) currentExists(pod *corev1.Pod) bool {
	p, err := a.podLister.Pods(pod.Namespace).Get(pod.Name)
	return err == nil && p.UID == pod.UID
}

// namespaceChanged wakes the workers of every pod in the object's namespace: one of them
// may mount or read the ConfigMap or Secret that changed.
func (a *nodeAgent) namespaceChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, w := range a.workers {
		if w.namespace == m.GetNamespace() {
			w.notify()
		}
	}
}

// bindLoop binds unscheduled pods to the node, the scheduler's job on a one-node cluster. A
// pod whose nodeSelector the node does not match stays Pending, marked Unschedulable.
func (a *nodeAgent) bindLoop() {
	for {
		key, quit := a.binds.Get()
		if quit {
			return
		}
		err := a.bind(key)
		if err != nil && a.ctx.Err() == nil {
			a.log.Warn("Cannot bind a pod to the node", "pod", key, "err", err)
			a.binds.AddRateLimited(key)
		} else {
			a.binds.Forget(key)
		}
		a.binds.Done(key)
	}
}

func (a *nodeAgent) bind(key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := a.podLister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil {
		return nil
	}
	if s := pod.Spec.SchedulerName; s != "" && s != corev1.DefaultSchedulerName {
		return nil // another scheduler's pod
	}
	if !labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(a.nodeLabels())) {
		return a.markUnschedulable(pod, fmt.Sprintf("0/1 nodes are available: 1 node(s) didn't match Pod's node selector %v.", pod.Spec.NodeSelector))
	}
	err = a.client.CoreV1().Pods(ns).Bind(a.ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: a.name},
	}, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // deleted, or bound meanwhile
	}
	if err == nil {
		a.schedEvents.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", ns, name, a.name)
	}
	return err
}

func (a *nodeAgent) markUnschedulable(pod *corev1.Pod, msg string) error {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message == msg {
			return nil
		}
	}
	p := pod.DeepCopy()
	var conds []corev1.PodCondition
	for _, c := range p.Status.Conditions {
		if c.Type != corev1.PodScheduled {
			conds = append(conds, c)
		}
	}
	a.schedEvents.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "%s", msg)
	p.Status.Conditions = append(conds, corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: msg, LastTransitionTime: metav1.Now(),
	})
	_, err := a.client.CoreV1().Pods(p.Namespace).UpdateStatus(a.ctx, p, metav1.UpdateOptions{})
	return err
}

// requestPodToken asks the TokenRequest API for a token bound to the pod, as the kubelet
// does for projected service-account tokens.
func (a *nodeAgent) requestPodToken(pod *corev1.Pod, audience string, exp int64) ([]byte, time.Time, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	var auds []string
	if audience != "" {
		auds = []string{audience}
	}
	tr, err := a.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(a.ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         auds,
			ExpirationSeconds: &exp,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("request a token for service account %s/%s: %w", pod.Namespace, sa, err)
	}
	return []byte(tr.Status.Token), tr.Status.ExpirationTimestamp.Time, nil
}

// claimDir binds a PersistentVolumeClaim to a local PersistentVolume (the node agent is the
// provisioner and the binder) and returns its directory, which outlives the pods that use
// it: a StatefulSet pod that is deleted and recreated finds its data again.
func (a *nodeAgent) claimDir(ns, name string) (string, error) {
	pvc, err := a.pvcLister.PersistentVolumeClaims(ns).Get(name)
	if err != nil {
		return "", fmt.Errorf("persistentvolumeclaim %q: %w", name, err)
	}
	if pvc.DeletionTimestamp != nil {
		return "", fmt.Errorf("persistentvolumeclaim %q is being deleted", name)
	}
	pvName := "pvc-" + string(pvc.UID)
	if pvc.Spec.VolumeName != "" && pvc.Spec.VolumeName != pvName {
		return "", fmt.Errorf("persistentvolumeclaim %q is bound to %s, which the local node did not provision", name, pvc.Spec.VolumeName)
	}
	dir := filepath.Join(a.c.dir, "pv", pvName)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", err
	}
	if pvc.Status.Phase == corev1.ClaimBound {
		return dir, nil
	}
	size, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		size = resource.MustParse("1Gi")
	}
	modes := pvc.Spec.AccessModes
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	hostPathType := corev1.HostPathDirectoryOrCreate
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName, Labels: map[string]string{pvLabel: a.name}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   modes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              class,
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: ns, Name: name, UID: pvc.UID},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &hostPathType}},
		},
	}
	ctx := a.ctx
	created, err := a.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = a.client.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{})
	}
	if err != nil {
		return "", fmt.Errorf("provision a volume for claim %q: %w", name, err)
	}
	if created.Status.Phase != corev1.VolumeBound {
		created.Status.Phase = corev1.VolumeBound
		if _, err := a.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return "", fmt.Errorf("mark volume %s bound: %w", pvName, err)
		}
	}
	claim := pvc.DeepCopy()
	if claim.Spec.VolumeName == "" {
		claim.Spec.VolumeName = pvName
		if claim.Annotations == nil {
			claim.Annotations = map[string]string{}
		}
		claim.Annotations["pv.kubernetes.io/bind-completed"] = "yes"
		claim.Annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
		if claim, err = a.client.CoreV1().PersistentVolumeClaims(ns).Update(ctx, claim, metav1.UpdateOptions{}); err != nil {
			return "", fmt.Errorf("bind claim %q to %s: %w", name, pvName, err)
		}
	}
	claim.Status.Phase = corev1.ClaimBound
	claim.Status.AccessModes = modes
	claim.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: size}
	if _, err := a.client.CoreV1().PersistentVolumeClaims(ns).UpdateStatus(ctx, claim, metav1.UpdateOptions{}); err != nil {
		return "", fmt.Errorf("mark claim %q bound: %w", name, err)
	}
	return dir, nil
}

// claimDeleted reclaims the volume of a deleted claim (reclaim policy Delete): the PV
// object and its directory.
func (a *nodeAgent) claimDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pvc, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok {
		return
	}
	pvName := "pvc-" + string(pvc.UID)
	err := a.client.CoreV1().PersistentVolumes().Delete(a.ctx, pvName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) && a.ctx.Err() == nil {
		a.log.Warn("Cannot delete the volume of a deleted claim", "volume", pvName, "err", err)
	}
	_ = os.RemoveAll(filepath.Join(a.c.dir, "pv", pvName))
}

// worker returns the worker of the pod namespace/name, if it runs here.
func (a *nodeAgent) worker(namespace, name string) *podWorker {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, w := range a.workers {
		if w.namespace == namespace && w.name == name {
			select {
			case <-w.done:
				continue
			default:
			}
			return w
		}
	}
	return nil
}
