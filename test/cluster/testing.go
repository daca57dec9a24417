package cluster

import (
	"context"
	"os"
)

// TB is the part of testing.TB that StartT uses; both *testing.T and Ginkgo's GinkgoT()
// provide it.
type TB interface {
	Helper()
	Skip(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// StartT starts a cluster for a test. It skips the test, saying why, when not run as root;
// fails it when Start fails; puts the cluster in a directory under t.TempDir() unless
// opts.Dir is set; and stops the cluster in t.Cleanup, which runs also when the test fails
// or panics. (A test binary killed outright takes its processes with it; the next Start
// removes the network it left.)
func StartT(t TB, opts Options) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the local cluster needs root (network namespaces, mounts); run the test as root")
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	c, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("start the local cluster: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return c
}
