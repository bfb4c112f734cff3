# nfdrop_exporter — build, test, demo, release. Run test/demo/bench as root (network namespaces, NFLOG).
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
# The build date is the last commit's, not the clock's, and no user or host name is
# embedded: the same commit and Go version give byte-identical binaries and archives.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
BUILD_DATE := $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y%m%d-%H:%M:%S)
LDFLAGS   := -buildid= \
             -X github.com/prometheus/common/version.Version=$(VERSION) \
             -X github.com/prometheus/common/version.Revision=$(REVISION) \
             -X github.com/prometheus/common/version.Branch=$(BRANCH) \
             -X github.com/prometheus/common/version.BuildDate=$(BUILD_DATE)
BIN       := .build

# Release archives, image and package. ARCH is one GOARCH; ARCHS are the release's.
RELEASE_DIR ?= $(BIN)/release
ARCHS     ?= amd64 arm64
ARCH      ?= $(shell $(GO) env GOARCH)
DIST       = nfdrop_exporter-$(VERSION).linux-$(ARCH)
STAGE      = $(RELEASE_DIR)/$(DIST)
# make image IMAGE=registry.example.com/team/nfdrop_exporter, then podman push it.
IMAGE     ?= nfdrop_exporter
PODMAN    ?= podman
NFPM      ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
TAR       := tar --sort=name --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 --numeric-owner --format=gnu

.PHONY: all build deps test test-unit test-e2e demo bench fuzz clean release stage image deb

all: build

build:
	mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/nfdrop_exporter ./cmd/nfdrop_exporter
	$(GO) build -o $(BIN)/nfdrop-lab ./cmd/nfdrop-lab

# stage: the static binary for ARCH, with LICENSE and README.md, in $(STAGE)/. The
# profile cmd/nfdrop_exporter/default.pgo is applied by go build (-pgo=auto).
stage:
	rm -rf $(STAGE) && install -d -m 0755 $(STAGE)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(STAGE)/nfdrop_exporter ./cmd/nfdrop_exporter
	chmod 0755 $(STAGE)/nfdrop_exporter
	install -m 0644 LICENSE README.md $(STAGE)/

# release: nfdrop_exporter-VERSION.linux-ARCH.tar.gz for each of ARCHS and sha256sums.txt.
release:
	@echo '$(VERSION)' | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$$' || { echo "make release needs VERSION=x.y.z (got '$(VERSION)')" >&2; exit 2; }
	set -e; for a in $(ARCHS); do \
		$(MAKE) --no-print-directory stage ARCH=$$a; \
		$(TAR) -C $(RELEASE_DIR) -cf - nfdrop_exporter-$(VERSION).linux-$$a | gzip -9n > $(RELEASE_DIR)/nfdrop_exporter-$(VERSION).linux-$$a.tar.gz; \
	done
	cd $(RELEASE_DIR) && sha256sum $(foreach a,$(ARCHS),nfdrop_exporter-$(VERSION).linux-$(a).tar.gz) > sha256sums.txt
	cat $(RELEASE_DIR)/sha256sums.txt

# image: $(IMAGE):$(VERSION) for ARCH from deploy/container/Containerfile.
image: stage
	$(PODMAN) build --platform linux/$(ARCH) --timestamp $(SOURCE_DATE_EPOCH) \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		--build-arg CREATED=$$(date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ) \
		-f deploy/container/Containerfile -t $(IMAGE):$(VERSION) $(STAGE)

# deb: nfdrop-exporter_VERSION_ARCH.deb in $(RELEASE_DIR), from deploy/deb/nfpm.yaml.
# The packaged unit runs /usr/bin/nfdrop_exporter; everything else is the tested unit.
deb: stage
	install -d -m 0755 $(RELEASE_DIR)/deb-$(ARCH)
	sed 's|/usr/local/bin/nfdrop_exporter|/usr/bin/nfdrop_exporter|g' deploy/systemd/nfdrop_exporter.service > $(RELEASE_DIR)/deb-$(ARCH)/nfdrop_exporter.service
	VERSION=$(VERSION) ARCH=$(ARCH) STAGE=$(STAGE) DEB_UNIT=$(RELEASE_DIR)/deb-$(ARCH)/nfdrop_exporter.service SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) \
		$(NFPM) package --packager deb --config deploy/deb/nfpm.yaml --target $(RELEASE_DIR)/

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
	$(GO) test -run '^$$' -fuzz=FuzzReceive -fuzztime=30s ./collector/source/
	$(GO) test -run '^$$' -fuzz=FuzzCapture -fuzztime=30s ./collector/capture/
	$(GO) test -run '^$$' -fuzz=FuzzAttrs -fuzztime=30s ./collector/internal/nlmsg/
	$(GO) test -run '^$$' -fuzz=FuzzDecodeEvent -fuzztime=30s ./collector/conntrack/
	$(GO) test -run '^$$' -fuzz=FuzzEventDatagram -fuzztime=30s ./collector/conntrack/
	$(GO) test -run '^$$' -fuzz=FuzzParseGetReply -fuzztime=30s ./collector/conntrack/
	$(GO) test -run '^$$' -fuzz=FuzzParseLine -fuzztime=30s ./cmd/nfdrop_exporter/internal/logline/
	$(GO) test -run '^$$' -fuzz=FuzzSketch -fuzztime=30s ./collector/topsources/
	$(GO) test -run '^$$' -fuzz=FuzzCollectorPacket -fuzztime=30s ./collector/
	$(GO) test -run '^$$' -fuzz=FuzzRecognise -fuzztime=30s ./collector/ctlog/
	$(GO) test -run '^$$' -fuzz=FuzzNFLOGInfo -fuzztime=30s ./collector/ruleaudit/
	$(GO) test -run '^$$' -fuzz=FuzzFrame -fuzztime=30s ./cmd/nfdrop_exporter/internal/explain/
	$(GO) test -run '^$$' -fuzz=FuzzPcapInput -fuzztime=30s ./cmd/nfdrop_exporter/internal/explain/
	$(GO) test -run '^$$' -fuzz=FuzzIptablesEngine -fuzztime=30s ./deploy/firewall/
	$(GO) test -run '^$$' -fuzz=FuzzNftEngine -fuzztime=30s ./deploy/firewall/
	$(GO) test -run '^$$' -fuzz=FuzzSaveCounters -fuzztime=30s ./deploy/firewall/
	$(GO) test -run '^$$' -fuzz=FuzzNftCounters -fuzztime=30s ./deploy/firewall/

clean:
	rm -rf $(BIN)
