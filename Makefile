# nfdrop_exporter — build, test, demo. Run test/demo/bench as root (network namespaces, NFLOG).
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
LDFLAGS   := -X github.com/prometheus/common/version.Version=$(VERSION) \
             -X github.com/prometheus/common/version.Revision=$(REVISION) \
             -X github.com/prometheus/common/version.Branch=$(BRANCH) \
             -X github.com/prometheus/common/version.BuildUser=$(shell id -un)@$(shell hostname) \
             -X github.com/prometheus/common/version.BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)
BIN       := .build

.PHONY: all build deps test test-unit test-e2e demo bench fuzz clean

all: build

build:
	mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/nfdrop_exporter ./cmd/nfdrop_exporter
	$(GO) build -o $(BIN)/nfdrop-lab ./cmd/nfdrop-lab

deps:
	.ci/deps

# The one test command: static checks, unit tests, then the end-to-end tests
# against the real kernel, a real Prometheus and promtool (root required).
test: deps
	@test -z "$$(gofmt -l cmd collector dashboards deploy)" || { gofmt -l cmd collector dashboards deploy; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	NFDROP_E2E=1 $(GO) test -count=1 -timeout 20m ./...

test-unit:
	$(GO) test ./...

demo: deps build
	$(BIN)/nfdrop-lab demo --exporter=$(BIN)/nfdrop_exporter

bench: deps build
	$(BIN)/nfdrop-lab bench --exporter=$(BIN)/nfdrop_exporter

fuzz:
	$(GO) test -run '^$$' -fuzz=FuzzDecode -fuzztime=60s ./collector/packet/
	$(GO) test -run '^$$' -fuzz=FuzzAttrLayout -fuzztime=30s ./collector/source/
	$(GO) test -run '^$$' -fuzz=FuzzParseNFLOGRecord -fuzztime=30s ./collector/source/
	$(GO) test -run '^$$' -fuzz=FuzzNFLOGInfo -fuzztime=30s ./collector/ruleaudit/

clean:
	rm -rf $(BIN)
