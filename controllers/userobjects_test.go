package controllers

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// secretCache is a client.Reader of Secrets held in a map, standing in for the manager's
// cache.
type secretCache struct {
	client.Reader
	objects map[types.NamespacedName]*corev1.Secret
}

func (c *secretCache) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	s, ok := c.objects[key]
	if !ok {
		return apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
	}
	s.DeepCopyInto(obj.(*corev1.Secret))
	return nil
}

// countingReader counts the Gets that reach the API server.
type countingReader struct {
	client.Reader
	gets int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets++
	return c.Reader.Get(ctx, key, obj, opts...)
}

// TestUserObjects checks what userObjects reads where: the operator's own Secrets from the
// cache, a user's from the API server once per resourceVersion, and nothing kept for a
// Secret that is gone or no longer read.
func TestUserObjects(t *testing.T) {
	ctx := context.Background()
	userKey := types.NamespacedName{Namespace: "ns", Name: "alice-password"}
	ownKey := types.NamespacedName{Namespace: "ns", Name: "fleet-users"}
	user := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: userKey.Namespace, Name: userKey.Name},
		Data:       map[string][]byte{"password": []byte("one")},
	}
	own := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ownKey.Namespace, Name: ownKey.Name, Labels: map[string]string{managedByLabel: operatorName}},
		Data:       map[string][]byte{"passwd": []byte("alice:$7$...")},
	}
	server := fake.NewClientBuilder().WithObjects(user, own).Build()
	// The cache holds what the API server held when it last synced, through the transform
	// of CacheOptions.
	cache := &secretCache{objects: map[types.NamespacedName]*corev1.Secret{}}
	sync := func() {
		t.Helper()
		for _, key := range []types.NamespacedName{userKey, ownKey} {
			s := &corev1.Secret{}
			if err := server.Get(ctx, key, s); err != nil {
				if !apierrors.IsNotFound(err) {
					t.Fatal(err)
				}
				delete(cache.objects, key)
				continue
			}
			if _, err := dropForeignData(s); err != nil {
				t.Fatal(err)
			}
			cache.objects[key] = s
		}
	}
	sync()
	api := &countingReader{Reader: server}
	now := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	u := newUserObjects(cache, api)
	u.now = func() time.Time { return now }

	read := func(key types.NamespacedName) (string, error) {
		t.Helper()
		s := &corev1.Secret{}
		err := u.Get(ctx, key, s)
		return string(s.Data["password"]) + string(s.Data["passwd"]), err
	}
	expect := func(key types.NamespacedName, want string, wantGets int) {
		t.Helper()
		got, err := read(key)
		if err != nil {
			t.Fatalf("Get %s: %v", key, err)
		}
		if got != want || api.gets != wantGets {
			t.Fatalf("Get %s = %q after %d API reads, want %q after %d", key, got, api.gets, want, wantGets)
		}
	}

	if cached := cache.objects[userKey]; len(cached.Data) != 0 {
		t.Fatalf("the cache holds the user's Secret with data %v, want it without", cached.Data)
	}
	expect(ownKey, "alice:$7$...", 0) // the operator's own: from the cache
	expect(userKey, "one", 1)         // a user's: from the API server...
	expect(userKey, "one", 1)         // ...once per resourceVersion

	user.Data["password"] = []byte("two")
	if err := server.Update(ctx, user); err != nil {
		t.Fatal(err)
	}
	expect(userKey, "one", 1) // the cache has not seen the change yet
	sync()
	expect(userKey, "two", 2)

	// Data not read for a while is dropped, and read again when needed.
	now = now.Add(userObjectIdle + 2*time.Minute)
	expect(ownKey, "alice:$7$...", 2) // any read sweeps
	u.mu.Lock()
	kept := len(u.read)
	u.mu.Unlock()
	if kept != 0 {
		t.Fatalf("%d Secrets' data kept after %v unread", kept, userObjectIdle)
	}
	expect(userKey, "two", 3)

	// A deleted Secret is not found, and its data is forgotten.
	userObjectKey := objectKey{kind: "*v1.Secret", NamespacedName: userKey}
	u.mu.Lock()
	_, held := u.read[userObjectKey]
	u.mu.Unlock()
	if !held {
		t.Fatal("the user's Secret data is not held after a read")
	}
	if err := server.Delete(ctx, user); err != nil {
		t.Fatal(err)
	}
	sync()
	if _, err := read(userKey); !apierrors.IsNotFound(err) {
		t.Fatalf("Get of a deleted Secret: %v, want not found", err)
	}
	u.mu.Lock()
	_, kept2 := u.read[userObjectKey]
	u.mu.Unlock()
	if kept2 {
		t.Fatal("the deleted Secret's data is still kept")
	}
}
