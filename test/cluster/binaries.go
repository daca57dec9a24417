package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// controlPlaneBinaries must be in the binary directory for Start to work; kubectl is
// optional (only Cluster.Kubectl needs it).
var controlPlaneBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager"}

// buildHint says how to get the binaries, for every error about them.
const buildHint = "build them with hack/kube-binaries.sh (export KUBEBUILDER_ASSETS=\"$(hack/kube-binaries.sh)\") and pass the directory as Options.BinDir or KUBEBUILDER_ASSETS"

// resolveBinDir returns the directory holding the control-plane binaries: dir if set, else
// $KUBEBUILDER_ASSETS. Every missing binary is named in the error.
func resolveBinDir(dir string) (string, error) {
	source := "Options.BinDir"
	if dir == "" {
		dir = os.Getenv("KUBEBUILDER_ASSETS")
		source = "KUBEBUILDER_ASSETS"
	}
	if dir == "" {
		return "", fmt.Errorf("no directory with the Kubernetes binaries (%s) was given; %s",
			strings.Join(controlPlaneBinaries, ", "), buildHint)
	}
	var missing []string
	for _, b := range controlPlaneBinaries {
		if !isExecutable(filepath.Join(dir, b)) {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%s missing from %s (%s); %s", strings.Join(missing, ", "), dir, source, buildHint)
	}
	return dir, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// BuildKubeBinaries runs hack/kube-binaries.sh of the repository at repoRoot for the
// control-plane binaries and kubectl and returns the directory that holds them. Built
// binaries are cached, so a warm call takes well under a second; a cold one builds from the
// Go module proxy for several minutes, and the script's progress goes to progress (which
// may be nil).
func BuildKubeBinaries(ctx context.Context, repoRoot string, progress io.Writer) (string, error) {
	script := filepath.Join(repoRoot, "hack", "kube-binaries.sh")
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("cannot build the Kubernetes binaries: %w", err)
	}
	args := append([]string{script}, controlPlaneBinaries...)
	args = append(args, "kubectl")
	cmd := exec.CommandContext(ctx, "bash", args...)
	cmd.Dir = repoRoot
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	if progress != nil {
		cmd.Stderr = io.MultiWriter(progress, &stderr)
	} else {
		cmd.Stderr = &stderr
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/kube-binaries.sh failed (%v):\n%s", err, lastLines(stderr.String(), 20))
	}
	dir := strings.TrimSpace(stdout.String())
	if dir == "" {
		return "", errors.New("hack/kube-binaries.sh printed no directory")
	}
	return resolveBinDir(dir)
}

// FindRepoRoot walks up from the working directory to the directory holding go.mod, for
// tests and commands that build binaries from the repository.
func FindRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
