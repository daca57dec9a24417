package controllers

import (
	"context"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The operator watches Secrets cluster-wide: it owns some (CA, serving certificate, password
// files, generated credentials) and must notice changes to the ones users reference
// (passwordSecretRef, tls.secretName). Holding every Secret of the cluster with its data in
// the manager's cache would keep all of the cluster's credentials in the operator's memory,
// and cost memory in proportion to them. So the cache keeps the data of the operator's own
// Secrets only; of every other Secret it keeps the metadata, enough to watch it, and the
// data of the few that a user references is read from the API server when their
// resourceVersion changes (userSecrets).

// managedByLabel and operatorName mark every object the operator writes.
const (
	managedByLabel = "app.kubernetes.io/managed-by"
	operatorName   = "fleetmq-operator"
)

// CacheOptions are the manager cache options the reconcilers are written for: Secrets that
// the operator does not manage are cached without their data.
func CacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Transform: dropForeignSecretData},
	}}
}

// dropForeignSecretData is the cache transform of CacheOptions.
func dropForeignSecretData(obj any) (any, error) {
	if s, ok := obj.(*corev1.Secret); ok && !managedByOperator(s) {
		s.Data, s.StringData = nil, nil
	}
	return obj, nil
}

func managedByOperator(s *corev1.Secret) bool { return s.Labels[managedByLabel] == operatorName }

// userSecrets reads Secrets with their data whether or not the operator manages them: its
// own from the cache, any other from the API server, once per resourceVersion that the
// cache reports. It keeps what it read while the Secret is still being read: data nobody
// asked for within userSecretIdle is dropped (a user deleted, a reference changed).
type userSecrets struct {
	cached client.Reader // the manager's cache (CacheOptions)
	api    client.Reader // the API server
	now    func() time.Time

	mu        sync.Mutex
	data      map[types.NamespacedName]secretData
	lastSweep time.Time
}

// userSecretIdle is how long userSecrets keeps data that is not read. Dropping data that
// is still referenced costs one read from the API server at the next reconcile; keeping
// data that is not would hold a credential the operator no longer needs.
const userSecretIdle = time.Hour

type secretData struct {
	resourceVersion string
	data            map[string][]byte
	lastRead        time.Time
}

func newUserSecrets(cached, api client.Reader) *userSecrets {
	return &userSecrets{cached: cached, api: api, now: time.Now, data: map[types.NamespacedName]secretData{}}
}

// Get reads the Secret key into s, data included.
func (u *userSecrets) Get(ctx context.Context, key types.NamespacedName, s *corev1.Secret) error {
	if err := u.cached.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			u.forget(key)
		}
		return err
	}
	now := u.now()
	u.mu.Lock()
	u.sweepLocked(now)
	if managedByOperator(s) || u.api == nil {
		u.mu.Unlock()
		return nil
	}
	known, ok := u.data[key]
	if ok && known.resourceVersion == s.ResourceVersion {
		known.lastRead = now
		u.data[key] = known
		u.mu.Unlock()
		s.Data = maps.Clone(known.data)
		return nil
	}
	u.mu.Unlock()
	if err := u.api.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			u.forget(key)
		}
		return err
	}
	u.mu.Lock()
	u.data[key] = secretData{resourceVersion: s.ResourceVersion, data: maps.Clone(s.Data), lastRead: now}
	u.mu.Unlock()
	return nil
}

// sweepLocked drops data not read within userSecretIdle, at most once a minute.
func (u *userSecrets) sweepLocked(now time.Time) {
	if now.Sub(u.lastSweep) < time.Minute {
		return
	}
	u.lastSweep = now
	for key, d := range u.data {
		if now.Sub(d.lastRead) > userSecretIdle {
			delete(u.data, key)
		}
	}
}

func (u *userSecrets) forget(key types.NamespacedName) {
	u.mu.Lock()
	delete(u.data, key)
	u.mu.Unlock()
}
