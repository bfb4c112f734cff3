# nfdrop_exporter — build, test, demo, release. Run test/demo/bench as root (network namespaces, NFLOG).
GO        ?= go
# Without VERSION=x.y.z: a snapshot version that dpkg accepts and that sorts upward from
# commit to commit (deploy/release/version says how). make release needs an explicit one.
ifeq ($(origin VERSION),undefined)
VERSION   := $(shell deploy/release/version)
endif
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
# Release builds (archives, image, package) also drop the symbol table and DWARF (-s -w):
# --version, the build info and panics' stack traces do not need them.
RELEASE_LDFLAGS := -s -w $(LDFLAGS)
BIN       := .build

# Release archives, image and package. ARCH is one GOARCH; ARCHS are the release's.
RELEASE_DIR ?= $(BIN)/release
ARCHS     ?= amd64 arm64
ARCH      ?= $(shell $(GO) env GOARCH)
DIST       = nfdrop_exporter-$(VERSION).linux-$(ARCH)
STAGE      = $(RELEASE_DIR)/$(DIST)
# The documentation the archive and the package ship (deploy/internal/docbundle).
DOCS       = $(RELEASE_DIR)/docs
# Example configuration the archive ships at the paths deploy/README.md uses.
KIT       := deploy/systemd/nfdrop_exporter.service deploy/systemd/nfdrop_exporter-ebpf.service deploy/systemd/nfdrop_exporter.default \
             deploy/prometheus/alerts.yml deploy/prometheus/rules.yml deploy/prometheus/scrape-config.yml \
             dashboards/nfdrop.json
# make image IMAGE=registry.example.com/team/nfdrop_exporter, then podman push it.
IMAGE     ?= nfdrop_exporter
# An image tag cannot hold "+": 1.2.3+git5.g... is tagged 1.2.3_git5.g...
IMAGE_TAG  = $(subst +,_,$(VERSION))
PODMAN    ?= podman
NFPM      ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
TAR       := tar --sort=name --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 --numeric-owner --format=gnu

.PHONY: all build deps generate test test-unit test-e2e demo bench fuzz clean release stage docs image deb

all: build

build:
	mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/nfdrop_exporter ./cmd/nfdrop_exporter
	$(GO) build -o $(BIN)/nfdrop-lab ./cmd/nfdrop-lab

# docs: README.md and the documents it leads to, in the repository's layout, in $(DOCS)/;
# links to anything not shipped (source code, the lab, test data) point at this revision
# online.
docs:
	rm -rf $(DOCS)
	$(GO) run ./deploy/internal/docbundle/cmd/docbundle -out $(DOCS) -revision $(REVISION) -exclude cmd/nfdrop-lab/ -exclude deploy/firewall/testdata/ README.md

# stage: the static, stripped binary for ARCH, LICENSE, the documentation and the example
# configuration (KIT), in $(STAGE)/. The profile cmd/nfdrop_exporter/default.pgo is
# applied by go build (-pgo=auto).
stage: docs
	rm -rf $(STAGE) && install -d -m 0755 $(STAGE)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(ARCH) $(GO) build -trimpath -ldflags '$(RELEASE_LDFLAGS)' -o $(STAGE)/nfdrop_exporter ./cmd/nfdrop_exporter
	chmod 0755 $(STAGE)/nfdrop_exporter
	install -m 0644 LICENSE $(STAGE)/
	cp -R $(DOCS)/. $(STAGE)/
	for f in $(KIT); do install -D -m 0644 $$f $(STAGE)/$$f; done
	chmod -R u=rwX,go=rX $(STAGE)

# release: nfdrop_exporter-VERSION.linux-ARCH.tar.gz for each of ARCHS and sha256sums.txt.
release:
	@case '$(origin VERSION)' in file) echo "make release needs VERSION=x.y.z (without it the version is the snapshot $(VERSION))" >&2; exit 2;; esac
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
		-f deploy/container/Containerfile -t $(IMAGE):$(IMAGE_TAG) $(STAGE)

# deb: nfdrop-exporter_VERSION_ARCH.deb in $(RELEASE_DIR), from deploy/deb/nfpm.yaml (a
# VERSION x.y.z-PRE becomes the Debian version x.y.z~PRE). Older packages for ARCH there are
# removed first, so that `dpkg -i .build/release/nfdrop-exporter_*_amd64.deb` names the one
# just built. The packaged units run /usr/bin/nfdrop_exporter; everything else is the
# tested units.
deb: stage
	rm -f $(RELEASE_DIR)/nfdrop-exporter_*_$(ARCH).deb
	install -d -m 0755 $(RELEASE_DIR)/deb-$(ARCH)
	for u in nfdrop_exporter nfdrop_exporter-ebpf; do \
		sed 's|/usr/local/bin/nfdrop_exporter|/usr/bin/nfdrop_exporter|g' deploy/systemd/$$u.service > $(RELEASE_DIR)/deb-$(ARCH)/$$u.service; \
	done
	VERSION=$(VERSION) ARCH=$(ARCH) STAGE=$(STAGE) DOCS=$(DOCS) DEB_UNIT=$(RELEASE_DIR)/deb-$(ARCH)/nfdrop_exporter.service \
		DEB_UNIT_EBPF=$(RELEASE_DIR)/deb-$(ARCH)/nfdrop_exporter-ebpf.service SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) \
		$(NFPM) package --packager deb --config deploy/deb/nfpm.yaml --target $(RELEASE_DIR)/

deps:
	.ci/deps

# generate: rebuilds the committed BPF objects and their Go loaders from
# collector/ebpf/kfree_skb.bpf.c (needs clang-14, llvm-14 and libbpf-dev).
generate:
	$(GO) generate ./collector/ebpf/

# The one test command: static checks, unit tests, then the end-to-end tests
# against the real kernel, a real Prometheus and promtool (root required).
test: deps
	@test -z "$$(gofmt -l cmd collector dashboards deploy)" || { gofmt -l cmd collector dashboards deploy; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	NFDROP_E2E=1 $(GO) test -count=1 -timeout 20m ./...

test-unit:
	$(GO) test ./...

# DEMO_FLAGS: more nfdrop-lab demo flags, e.g. --ruleset=nftables, --prefix=NAME, -v.
demo: deps build
	$(BIN)/nfdrop-lab demo --exporter=$(BIN)/nfdrop_exporter $(DEMO_FLAGS)

bench: deps build
	$(BIN)/nfdrop-lab bench --exporter=$(BIN)/nfdrop_exporter

# Every fuzz target of the module, as package:FuzzName. `make fuzz` first
# fails if a func FuzzXxx in a _test.go file is missing here, then runs each
# target for FUZZTIME (60s unless given), one after the other: 30 targets,
# 30 minutes plus their builds. FUZZFLAGS adds go test flags
# (FUZZFLAGS=-parallel=1 on a shared machine). Each new input is minimized for
# at most FUZZMINIMIZE (5s unless given), not go test's minute: the targets that
# run awk per input spent whole runs minimizing (FuzzNftEngine: 274 inputs in
# 30 s, 22,000 with 1 s). A target fails on a finding
# (its input is written to testdata/fuzz); a bare "context deadline exceeded"
# at the end, with nothing written, is the coordinator's shutdown race: the
# target's corpus is replayed instead and must pass.
FUZZ_TARGETS := \
	./collector/packet/:FuzzDecode \
	./collector/source/:FuzzAttrLayout \
	./collector/source/:FuzzParseNFLOGRecord \
	./collector/source/:FuzzReceive \
	./collector/capture/:FuzzCapture \
	./collector/internal/nlmsg/:FuzzAttrs \
	./collector/conntrack/:FuzzDecodeEvent \
	./collector/conntrack/:FuzzEventDatagram \
	./collector/conntrack/:FuzzParseGetReply \
	./cmd/nfdrop_exporter/internal/logline/:FuzzParseLine \
	./collector/topsources/:FuzzSketch \
	./collector/:FuzzCollectorPacket \
	./collector/ctlog/:FuzzRecognise \
	./cmd/nfdrop_exporter/internal/explain/:FuzzFrame \
	./cmd/nfdrop_exporter/internal/explain/:FuzzPcapInput \
	./deploy/internal/docbundle/:FuzzRewriteLinks \
	./collector/ebpf/:FuzzDecodeRecord \
	./collector/ruleset/:FuzzDecode \
	./collector/ruleset/:FuzzRecount \
	./collector/droppoint/:FuzzAnalyze \
	./collector/nsfacts/:FuzzParseNFLOGInstances \
	./collector/nsfacts/:FuzzParseNetlink \
	./cmd/nfdrop_exporter/internal/doctor/:FuzzParseIptablesSave \
	./cmd/nfdrop_exporter/internal/doctor/:FuzzParseNftList \
	./deploy/firewall/:FuzzIptablesEngine \
	./deploy/firewall/:FuzzNftEngine \
	./deploy/firewall/:FuzzSaveCounters \
	./deploy/firewall/:FuzzNftCounters \
	./cmd/internal/bench/:FuzzParsePoint \
	./cmd/internal/bench/:FuzzParseSchedstat
FUZZTIME ?= 60s
FUZZMINIMIZE ?= 5s
FUZZFLAGS ?=

fuzz:
	@missing=$$(grep -rhoE '^func Fuzz[A-Za-z0-9_]*' --include='*_test.go' . | sed 's/^func //' | sort -u | \
		while read -r f; do case " $(FUZZ_TARGETS) " in *":$$f "*) ;; *) printf ' %s' "$$f" ;; esac; done); \
	if [ -n "$$missing" ]; then echo "fuzz targets not in FUZZ_TARGETS (Makefile):$$missing"; exit 1; fi
	@log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "== $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZE) $(FUZZFLAGS) "$$pkg" >"$$log" 2>&1; rc=$$?; \
		cat "$$log"; \
		[ $$rc -eq 0 ] && continue; \
		grep -q 'context deadline exceeded' "$$log" && ! grep -q 'Failing input written' "$$log" || exit 1; \
		echo "== $$name: the fuzzing coordinator stopped on its own deadline without a finding (a shutdown race of Go 1.26's, worst on a loaded machine); replaying the seeds and testdata corpus"; \
		$(GO) test -count=1 -run "^$$name\$$" "$$pkg" || exit 1; \
	done

clean:
	rm -rf $(BIN)
