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

##@ Test

.PHONY: test
test: test-deps vet test-unit fuzz ## Everything CI runs: installs what it needs first

.PHONY: test-deps
test-deps: ## Install the Debian test peers (mosquitto, mosquitto-clients, python3-paho-mqtt)
	hack/install-test-deps.sh

.PHONY: test-unit
test-unit:
	$(GO) test -race -count=1 -timeout 20m ./...

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME
	hack/fuzz.sh $(FUZZTIME)

.PHONY: fmt
fmt:
	$(GO) fmt ./...

.PHONY: vet
vet:
	$(GO) vet ./...

.PHONY: help
help:
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
