# FleetMQ: the MQTT broker (broker/, cmd/fleetmq-broker) and its Kubernetes operator.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

GO        ?= go
BIN       ?= bin
# Fuzz budget per target in `make test` (CI); raise it locally with FUZZTIME=5m.
FUZZTIME  ?= 10s

.PHONY: all
all: build

##@ Main

.PHONY: broker
broker: build-broker ## Build and run a standalone broker on 127.0.0.1:1883 (anonymous, local only)
	$(BIN)/fleetmq-broker

##@ Build

.PHONY: build
build: build-broker ## Build every binary into bin/

.PHONY: build-broker
build-broker:
	$(GO) build -o $(BIN)/fleetmq-broker ./cmd/fleetmq-broker

##@ Code generation

# controller-gen v0.23 is built against the k8s.io v0.37 libraries, as controller-runtime v0.25 is.
CONTROLLER_GEN_VERSION ?= v0.23.0
CONTROLLER_GEN         ?= $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)

$(CONTROLLER_GEN):
	mkdir -p $(BIN)
	tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	GOBIN="$$tmp" $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION); \
	mv "$$tmp/controller-gen" $(CONTROLLER_GEN)

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs (config/crd/bases) and the manager ClusterRole (config/rbac/role.yaml)
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the DeepCopy methods of the API types (zz_generated.deepcopy.go)
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when generated files in api/ or config/ differ from what is committed
	git diff --exit-code -- api config || { echo "Generated files are stale: run 'make manifests generate' and commit the result" >&2; exit 1; }
	untracked="$$(git ls-files --others --exclude-standard -- api config)"; \
	if [ -n "$$untracked" ]; then echo "Generated files are not committed: $$untracked" >&2; exit 1; fi

.PHONY: kube-binaries
kube-binaries: ## Build kube-apiserver, kube-controller-manager, kubectl and etcd from the Go module proxy (cached) and print their directory
	hack/kube-binaries.sh

##@ Test

.PHONY: test
test: test-deps vet verify-generated verify-helm-sync test-unit test-e2e fuzz ## Everything CI runs: installs what it needs first

.PHONY: test-deps
test-deps: ## Install the test peers: Debian mosquitto, mosquitto-clients, python3-paho-mqtt, nodejs; MQTT.js from npm
	hack/install-test-deps.sh

.PHONY: test-unit
test-unit: ## Go tests (all but the e2e suite); envtest suites use the apiserver and etcd from hack/kube-binaries.sh
	assets="$$(hack/kube-binaries.sh)"; KUBEBUILDER_ASSETS="$$assets" $(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v /test/e2e)

.PHONY: test-e2e
test-e2e: ## End-to-end suite: the operator and 3 broker pods on a local control plane (needs root)
	assets="$$(hack/kube-binaries.sh)"; KUBEBUILDER_ASSETS="$$assets" $(GO) test -count=1 -v -timeout 20m ./test/e2e/

.PHONY: dev
dev: ## Local fleet: a real control plane, the operator and the 3-pod sample MQTTBroker; prints endpoints and KUBECONFIG; Ctrl-C stops it (root, else sudo)
	hack/dev.sh

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME
	hack/fuzz.sh $(FUZZTIME)

.PHONY: bench
bench: ## Measure fleetmq-broker, mosquitto and mochi-mqtt with the load tool; writes docs/benchmarks.md
	hack/bench.sh

.PHONY: fmt
fmt:
	$(GO) fmt ./...

.PHONY: vet
vet: ## go vet, and fail on any file gofmt would change
	$(GO) vet ./...
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "Not gofmt-formatted (run 'make fmt'): $$unformatted" >&2; exit 1; fi

.PHONY: help
help:
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Deployment
# Packaging and deployment of the operator: config/ (kustomize), charts/fleetmq-operator,
# Dockerfile. Kept in its own section so the sections above can change independently.

# The image docker-build builds and deploy installs.
IMG            ?= fleetmq:latest
CONTAINER_TOOL ?= docker
# The broker version baked into the image (broker.Version); empty keeps the source default.
VERSION        ?=
# kubectl from PATH, else the one hack/kube-binaries.sh builds from the Go module proxy
# (cached; the shell expands the command substitution only when a recipe runs).
KUBECTL        ?= $(or $(shell command -v kubectl 2>/dev/null),$$(hack/kube-binaries.sh kubectl)/kubectl)
# kustomize v5.8.2 is the CLI of sigs.k8s.io/kustomize/api v0.21.2, the library the
# controllers test suite builds config/default with.
KUSTOMIZE_VERSION ?= v5.8.2
KUSTOMIZE         ?= $(abspath $(BIN))/kustomize-$(KUSTOMIZE_VERSION)
CHART             := charts/fleetmq-operator

$(KUSTOMIZE):
	mkdir -p $(dir $(KUSTOMIZE))
	tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	GOBIN="$$tmp" $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION); \
	mv "$$tmp/kustomize" $(KUSTOMIZE)

build: build-operator

.PHONY: build-operator
build-operator: ## Build the operator into bin/fleetmq-operator
	$(GO) build -o $(BIN)/fleetmq-operator ./cmd/fleetmq-operator

.PHONY: run
run: ## Run the operator here against the cluster of KUBECONFIG (make install first); RUN_ARGS adds flags
	$(GO) run ./cmd/fleetmq-operator $(RUN_ARGS)

.PHONY: install
install: ## Install the MQTTBroker and MQTTUser CRDs into the cluster of KUBECONFIG
	$(KUBECTL) apply --server-side --force-conflicts -k config/crd

.PHONY: uninstall
uninstall: ## Delete the CRDs, and with them every MQTTBroker and MQTTUser of the cluster
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: $(KUSTOMIZE) ## Deploy the operator (config/default) running image IMG into the cluster of KUBECONFIG
	tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	cp -R config "$$tmp/"; \
	(cd "$$tmp/config/manager" && $(KUSTOMIZE) edit set image fleetmq=$(IMG)); \
	$(KUSTOMIZE) build "$$tmp/config/default" | $(KUBECTL) apply --server-side --force-conflicts -f -

.PHONY: undeploy
undeploy: $(KUSTOMIZE) ## Remove what deploy installed, CRDs included (so every MQTTBroker and MQTTUser too)
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: docker-build
docker-build: ## Build the image IMG holding both binaries (VERSION sets the broker version)
	$(CONTAINER_TOOL) build $(if $(VERSION),--build-arg VERSION=$(VERSION)) -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the image IMG
	$(CONTAINER_TOOL) push $(IMG)

.PHONY: helm
helm: ## Build the pinned helm from the Go module proxy (cached outside the repository) and print its path
	hack/helm.sh

# The controllers suite renders the chart with that helm: build it before go test's timeout
# starts counting (a cold build takes minutes; a warm one returns at once).
test-unit: helm

.PHONY: helm-sync
helm-sync: ## Copy the generated CRDs and manager ClusterRole into the Helm chart (after make manifests)
	rm -f $(CHART)/files/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/files/crds/
	cp config/rbac/role.yaml $(CHART)/files/manager-role.yaml

.PHONY: verify-helm-sync
verify-helm-sync: ## Fail when the chart's CRDs or ClusterRole differ from config/
	diff -r config/crd/bases $(CHART)/files/crds && diff config/rbac/role.yaml $(CHART)/files/manager-role.yaml || \
		{ echo "The Helm chart is out of step with config/: run 'make helm-sync' and commit the result" >&2; exit 1; }

.PHONY: helm-lint
helm-lint: verify-helm-sync ## Lint the Helm chart with the pinned helm that hack/helm.sh builds
	helm="$$(hack/helm.sh)"; \
	"$$helm" lint --strict $(CHART); \
	"$$helm" lint --strict $(CHART) --set metrics.serviceMonitor.enabled=true,installCRDs=false,leaderElection.enabled=false
