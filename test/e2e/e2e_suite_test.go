// Package e2e is FleetMQ's end-to-end suite: the operator and real broker pods in a real
// Kubernetes control plane (test/cluster), brought up exactly as `make dev` does it
// (test/devfleet), exercised with real MQTT clients. It needs root; without root every spec
// is skipped, saying why.
//
//	sudo go test -count=1 -v ./test/e2e/ -timeout 20m
package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/fleetmq/fleetmq/test/devfleet"
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "FleetMQ end-to-end")
}

// fleet is the local fleet every spec runs against; the specs run in order and each leaves
// the sample fleet as it found it, unless it says otherwise.
var fleet *devfleet.Fleet

var _ = BeforeSuite(func(ctx SpecContext) {
	if os.Geteuid() != 0 {
		Skip("the local cluster needs root (network namespaces, mounts): run the suite as root")
	}
	var err error
	begin := time.Now()
	fleet, err = devfleet.Start(ctx, devfleet.Options{Dir: GinkgoT().TempDir(), Progress: GinkgoWriter})
	Expect(err).NotTo(HaveOccurred())
	// DeferCleanup runs also when a spec fails or the suite is interrupted, so no process
	// outlives the suite.
	DeferCleanup(func() { Expect(fleet.Stop()).To(Succeed()) })
	_, err = fleet.WaitReady(ctx, devfleet.SampleNamespace, devfleet.SampleBroker, func(ready, want int32) {
		GinkgoWriter.Printf("pods ready %d/%d (%s)\n", ready, want, time.Since(begin).Round(100*time.Millisecond))
	})
	Expect(err).NotTo(HaveOccurred(), "operator log: %s", fleet.Operator.LogPath())
	AddReportEntry("sample fleet Ready after", time.Since(begin).Round(100*time.Millisecond).String())
}, NodeTimeout(5*time.Minute))

// kubectl runs kubectl as the cluster admin and fails the spec on error.
func kubectl(ctx context.Context, args ...string) string {
	GinkgoHelper()
	out, err := fleet.Cluster.Kubectl(ctx, args...)
	Expect(err).NotTo(HaveOccurred())
	return string(out)
}
