package controllers

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The operator watches Secrets and ConfigMaps cluster-wide: it owns some (CA, serving
// certificate, password files, generated credentials, config and ACL) and must notice
// changes to the ones users reference (passwordSecretRef, tls.secretName,
// aclConfigMapRefs). Holding every Secret and ConfigMap of the cluster with its data in the
// manager's cache would keep all of the cluster's credentials in the operator's memory, and
// cost memory in proportion to everything anyone stores in them. So the cache keeps the
// data of the operator's own objects only; of every other Secret and ConfigMap it keeps the
// metadata, enough to watch it, and the data of the few that users reference is read from
// the API server when their resourceVersion changes (userObjects).

// managedByLabel and operatorName mark every object the operator writes.
const (
	managedByLabel = "app.kubernetes.io/managed-by"
	operatorName   = "fleetmq-operator"
)

// CacheOptions are the manager cache options the reconcilers are written for: Secrets and
// ConfigMaps that the operator does not manage are cached without their data.
func CacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}:    {Transform: dropForeignData},
		&corev1.ConfigMap{}: {Transform: dropForeignData},
	}}
}

// dropForeignData is the cache transform of CacheOptions.
func dropForeignData(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Secret:
		if !managedByOperator(o) {
			o.Data, o.StringData = nil, nil
		}
	case *corev1.ConfigMap:
		if !managedByOperator(o) {
			o.Data, o.BinaryData = nil, nil
		}
	}
	return obj, nil
}

func managedByOperator(obj client.Object) bool {
	return obj.GetLabels()[managedByLabel] == operatorName
}

// userObjects reads Secrets and ConfigMaps with their data whether or not the operator
// manages them: its own from the cache, any other from the API server, once per
// resourceVersion that the cache reports. It keeps what it read while the object is still
// being read: data nobody asked for within userObjectIdle is dropped (a user deleted, a
// reference changed).
type userObjects struct {
	cached client.Reader // the manager's cache (CacheOptions)
	api    client.Reader // the API server
	now    func() time.Time

	mu        sync.Mutex
	read      map[objectKey]readObject
	lastSweep time.Time
}

// userObjectIdle is how long userObjects keeps data that is not read. Dropping data that
// is still referenced costs one read from the API server at the next reconcile; keeping
// data that is not would hold a credential the operator no longer needs.
const userObjectIdle = time.Hour

// objectKey names one object of one Go type (*v1.Secret or *v1.ConfigMap).
type objectKey struct {
	kind string
	types.NamespacedName
}

type readObject struct {
	obj      client.Object // as the API server returned it; never handed out, only copied
	lastRead time.Time
}

func newUserObjects(cached, api client.Reader) *userObjects {
	return &userObjects{cached: cached, api: api, now: time.Now, read: map[objectKey]readObject{}}
}

// Get reads the object key into obj (a *corev1.Secret or *corev1.ConfigMap), data
// included.
func (u *userObjects) Get(ctx context.Context, key types.NamespacedName, obj client.Object) error {
	k := objectKey{kind: fmt.Sprintf("%T", obj), NamespacedName: key}
	if err := u.cached.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			u.forget(k)
		}
		return err
	}
	now := u.now()
	u.mu.Lock()
	u.sweepLocked(now)
	if managedByOperator(obj) || u.api == nil {
		u.mu.Unlock()
		return nil
	}
	known, ok := u.read[k]
	if ok && known.obj.GetResourceVersion() == obj.GetResourceVersion() {
		known.lastRead = now
		u.read[k] = known
		u.mu.Unlock()
		copyObject(obj, known.obj)
		return nil
	}
	u.mu.Unlock()
	if err := u.api.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			u.forget(k)
		}
		return err
	}
	u.mu.Lock()
	u.read[k] = readObject{obj: obj.DeepCopyObject().(client.Object), lastRead: now}
	u.mu.Unlock()
	return nil
}

// copyObject sets *dst to a deep copy of *src; both are the same pointer type.
func copyObject(dst, src client.Object) {
	reflect.ValueOf(dst).Elem().Set(reflect.ValueOf(src.DeepCopyObject()).Elem())
}

// sweepLocked drops data not read within userObjectIdle, at most once a minute.
func (u *userObjects) sweepLocked(now time.Time) {
	if now.Sub(u.lastSweep) < time.Minute {
		return
	}
	u.lastSweep = now
	for k, r := range u.read {
		if now.Sub(r.lastRead) > userObjectIdle {
			delete(u.read, k)
		}
	}
}

func (u *userObjects) forget(k objectKey) {
	u.mu.Lock()
	delete(u.read, k)
	u.mu.Unlock()
}
