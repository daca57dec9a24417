package controllers

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

// The scale benchmark measures; it asserts only that everything gets reconciled. Run it by
// hand, alone:
//
//	FLEETMQ_SCALE_TEST=1 KUBEBUILDER_ASSETS=... go test -count=1 ./controllers/ \
//	    -ginkgo.label-filter=scale -ginkgo.v -timeout 30m
//
// The manager runs in the test process, so the heap figures are those of the manager plus
// the test's own client and Ginkgo (a few MiB): an upper bound on the operator's heap.
var _ = Describe("Reconciling at scale", Label("scale"), func() {
	const (
		namespaces        = 10
		brokersPerNS      = 10
		usersPerBroker    = 10
		creators          = 8
		reconcileDeadline = 10 * time.Minute
	)

	It("reconciles 100 MQTTBrokers and 1,000 MQTTUsers", func() {
		if os.Getenv("FLEETMQ_SCALE_TEST") != "1" {
			Skip("set FLEETMQ_SCALE_TEST=1 to run the scale benchmark")
		}
		baseline := heapAfterGC()

		var nss []string
		for range namespaces {
			nss = append(nss, newTestNamespace())
		}
		var objs []client.Object
		for _, ns := range nss {
			for i := range brokersPerNS {
				name := fmt.Sprintf("fleet-%d", i)
				objs = append(objs, newBroker(ns, name))
				for j := range usersPerBroker {
					objs = append(objs, newUser(ns, fmt.Sprintf("%s-user-%d", name, j), func(u *v1.MQTTUser) {
						u.Spec.BrokerRef.Name = name
						u.Spec.ACLs = []v1.ACLRule{
							{Topic: fmt.Sprintf("devices/%d/#", j), Access: v1.ACLReadWrite},
							{Topic: "broadcast/#", Access: v1.ACLRead},
						}
					}))
				}
			}
		}

		start := time.Now()
		work := make(chan client.Object)
		var wg sync.WaitGroup
		for range creators {
			wg.Go(func() {
				defer GinkgoRecover()
				for obj := range work {
					Expect(k8sClient.Create(ctx, obj)).To(Succeed())
				}
			})
		}
		for _, obj := range objs {
			work <- obj
		}
		close(work)
		wg.Wait()
		created := time.Since(start)

		// Poll until every broker's status is current with its ACL in place, then until
		// every user is Ready (its password verified by, and its ACL in, its broker's files).
		var peak uint64
		sample := func() {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		var brokersDone, usersDone time.Duration
		Eventually(func(g Gomega) {
			sample()
			if brokersDone == 0 {
				var brokers v1.MQTTBrokerList
				g.Expect(k8sClient.List(ctx, &brokers)).To(Succeed())
				synced := 0
				for _, b := range brokers.Items {
					if b.Status.ObservedGeneration == b.Generation &&
						meta.IsStatusConditionTrue(b.Status.Conditions, v1.ConditionACLSynced) &&
						meta.IsStatusConditionTrue(b.Status.Conditions, v1.ConditionTLSReady) && slices.Contains(nss, b.Namespace) {
						synced++
					}
				}
				g.Expect(synced).To(Equal(namespaces*brokersPerNS), "brokers reconciled")
				brokersDone = time.Since(start)
			}
			var users v1.MQTTUserList
			g.Expect(k8sClient.List(ctx, &users)).To(Succeed())
			ready := 0
			for _, u := range users.Items {
				if slices.Contains(nss, u.Namespace) && u.Status.ObservedGeneration == u.Generation &&
					meta.IsStatusConditionTrue(u.Status.Conditions, v1.ConditionReady) {
					ready++
				}
			}
			g.Expect(ready).To(Equal(namespaces*brokersPerNS*usersPerBroker), "users ready")
			usersDone = time.Since(start)
		}).WithTimeout(reconcileDeadline).WithPolling(500 * time.Millisecond).Should(Succeed())

		settled := heapAfterGC()
		var secrets corev1.SecretList
		Expect(k8sClient.List(ctx, &secrets)).To(Succeed())

		report := fmt.Sprintf(
			"scale: %d MQTTBrokers, %d MQTTUsers (%d Secrets in the cluster)\n"+
				"  created in            %v\n"+
				"  brokers reconciled in %v (observedGeneration current, ACLSynced and TLSReady True)\n"+
				"  users Ready in        %v\n"+
				"  heap in use: %.1f MiB before, %.1f MiB peak while reconciling, %.1f MiB after (after GC: %.1f MiB allocated)\n"+
				"  process memory from the Go runtime (Sys): %.1f MiB\n",
			namespaces*brokersPerNS, namespaces*brokersPerNS*usersPerBroker, len(secrets.Items),
			created.Round(time.Millisecond), brokersDone.Round(time.Millisecond), usersDone.Round(time.Millisecond),
			mib(baseline.HeapInuse), mib(peak), mib(settled.HeapInuse), mib(settled.HeapAlloc), mib(settled.Sys))
		AddReportEntry("scale", report)
		fmt.Fprint(GinkgoWriter, report)
		fmt.Fprint(os.Stdout, report)
	})
})

func heapAfterGC() runtime.MemStats {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
