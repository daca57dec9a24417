package cluster

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestExpandVars(t *testing.T) {
	vars := map[string]string{"POD_NAME": "broker-0", "POD_IP": "10.234.0.2"}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	for in, want := range map[string]string{
		"--id=$(POD_NAME)":              "--id=broker-0",
		"$(POD_IP):1883":                "10.234.0.2:1883",
		"$(UNDEFINED)":                  "$(UNDEFINED)",
		"$$(POD_NAME)":                  "$(POD_NAME)",
		"cost $$5":                      "cost $5",
		"$(POD_NAME":                    "$(POD_NAME",
		"plain":                         "plain",
		"$(POD_NAME).peers.$(POD_NAME)": "broker-0.peers.broker-0",
		"trailing $":                    "trailing $",
	} {
		if got := expandVars(in, lookup); got != want {
			t.Errorf("expandVars(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestResolveCommand(t *testing.T) {
	dir := t.TempDir()
	broker := filepath.Join(dir, "fleetmq-broker")
	operator := filepath.Join(dir, "fleetmq-operator")
	for _, p := range []string{broker, operator} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	images := map[string]string{
		"ghcr.io/fleetmq/broker":  broker,
		"ghcr.io/fleetmq/fleetmq": dir,
		"exact:tag":               broker,
	}
	cases := []struct {
		name      string
		c         corev1.Container
		wantPath  string
		wantArgv  []string
		wantError bool
	}{
		{"entrypoint with args", corev1.Container{Image: "ghcr.io/fleetmq/broker:v1", Args: []string{"--config", "/c"}},
			broker, []string{broker, "--config", "/c"}, false},
		{"command naming the binary", corev1.Container{Image: "ghcr.io/fleetmq/broker@sha256:abc", Command: []string{"/usr/local/bin/fleetmq-broker"}, Args: []string{"-x"}},
			broker, []string{"/usr/local/bin/fleetmq-broker", "-x"}, false},
		{"directory image", corev1.Container{Image: "ghcr.io/fleetmq/fleetmq:dev", Command: []string{"fleetmq-operator", "--leader-elect"}},
			operator, []string{"fleetmq-operator", "--leader-elect"}, false},
		{"exact match", corev1.Container{Image: "exact:tag"}, broker, []string{broker}, false},
		{"host shell", corev1.Container{Image: "ghcr.io/fleetmq/broker", Command: []string{"/bin/sh", "-c", "true"}},
			"/bin/sh", []string{"/bin/sh", "-c", "true"}, false},
		{"unmapped image", corev1.Container{Image: "nginx:1.27"}, "", nil, true},
		{"directory without command", corev1.Container{Image: "ghcr.io/fleetmq/fleetmq"}, "", nil, true},
		{"command not in image", corev1.Container{Image: "ghcr.io/fleetmq/broker", Command: []string{"mosquitto"}}, "", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, argv, err := resolveCommand(images, &tc.c)
			if tc.wantError {
				if err == nil {
					t.Fatalf("resolved to %s %v; want an error", path, argv)
				}
				return
			}
			if err != nil || path != tc.wantPath || !reflect.DeepEqual(argv, tc.wantArgv) {
				t.Fatalf("got %s %v %v; want %s %v", path, argv, err, tc.wantPath, tc.wantArgv)
			}
		})
	}
}
