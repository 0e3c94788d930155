# MeshGuard — the two commands a new machine needs are `make demo` and `make test`.
# Everything else here is optional tooling. Tools are fetched with `go run pkg@version`
# (cached in the Go module cache), so nothing but Go must be installed beforehand.

GO        ?= go
BIN       := bin/meshguard
# The version stamps (`meshguard --version`): the commit's date, not the wall
# clock, so building the same commit twice gives the same binary.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE      ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
FUZZTIME  ?= 20s
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOLANGCI_LINT := github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

EXAMPLES  := examples
MG        := ./$(BIN)

WASM      := bin/meshguard-filter.wasm

# make image: the server's and the filter's images, docker-archive tarballs
# (docs/install.md#container-image). IMAGE_ARCH=arm64 for arm64 servers.
IMAGE_ARCH   ?= amd64
IMAGE        := bin/meshguard-image.tar
FILTER_IMAGE := bin/meshguard-filter-image.tar
# The image's revision and creation labels are the binary's stamps: the commit's
# time, not the clock's, so the same commit gives the same image.
REVISION     ?= $(or $(COMMIT),unknown)
CREATED      ?= $(or $(DATE),1970-01-01T00:00:00Z)

.PHONY: all build release wasm image bench-wasm test jaeger trace-picture console-screenshots demo mesh bench bench-load bench-memory bench-replay bench-audit-storage lint fuzz mutate wasm-check clean

all: build

# One line first: a cold cache's first build is otherwise silent for minutes.
build:
	@echo "building $(BIN) (the first build downloads modules and takes a few minutes)"
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/meshguard

# Release archives for linux/darwin × amd64/arm64, the wasm filter and
# checksums.txt in dist/ (docs/install.md#release-binaries): GoReleaser in
# snapshot mode, from its own module (tools/release) so its dependencies stay
# out of go.mod. Publishes nothing. The stamps are GoReleaser's, from the same
# commit: {{.Version}} drops git describe's leading "v".
release:
	@echo "building release archives into dist/ (the first run compiles GoReleaser: a few minutes)"
	$(GO) tool -modfile=tools/release/go.mod goreleaser check
	$(GO) tool -modfile=tools/release/go.mod goreleaser release --snapshot --clean
	@# A binary "archive" is only renamed on upload: put the filter beside the
	@# archives under the name checksums.txt gives it, then check every sum.
	@name=$$(grep -o 'meshguard-filter_[^ ]*\.wasm' dist/checksums.txt) && \
	  cp dist/filter_wasip1_wasm/meshguard-filter.wasm "dist/$$name"
	cd dist && sha256sum -c checksums.txt

# The test command of README and .ci/run. The tracing end-to-end tests need a real
# Jaeger and the PostgreSQL tests a throwaway cluster (scripts/postgres.sh, stopped and
# removed however the tests end). Both are required here (MESHGUARD_REQUIRE_*), so CI
# fails rather than skips when one is missing; a bare `go test ./...` skips them. Both
# switches read alike: unset, empty, 0 or false skip; 1 or true require; anything else
# fails the test that reads it (a mistyped switch must not skip).
test: wasm-check wasm jaeger build
	$(GO) vet ./...
	cd wasmfilter && $(GO) vet ./...
	@# The Python SDK (sdk/python): strict Pyright at its Python 3.9 floor, then its unit tests
	@# and the conformance table against the $(BIN) just built.
	MESHGUARD_BIN=$(abspath $(BIN)) scripts/sdk-python.sh
	@# .goreleaser.yaml, loaded by GoReleaser's own strict loader (not a release run: minutes).
	@# -count=1 here and for tools/image and charts/charttest: their tests read the
	@# repository's files outside their module (.goreleaser.yaml, Dockerfile, the chart),
	@# which go test's cache does not watch, so an edit there would replay a stale pass.
	cd tools/release && $(GO) vet ./... && $(GO) test -count=1 ./...
	@set -e; bin=$$(GO=$(GO) scripts/jaeger.sh); \
	  chromium=$$(scripts/chromium.sh); \
	  pgdir=$$(mktemp -d /tmp/meshguard-pg.XXXXXX); \
	  trap 'scripts/postgres.sh stop "$$pgdir"' EXIT INT TERM; \
	  url=$$(scripts/postgres.sh start "$$pgdir"); \
	  echo "PostgreSQL for the tests: $$url"; \
	  MESHGUARD_JAEGER_BIN=$$bin MESHGUARD_REQUIRE_JAEGER=1 \
	  MESHGUARD_CHROMIUM_BIN=$$chromium MESHGUARD_REQUIRE_CHROMIUM=1 \
	  MESHGUARD_TEST_DATABASE_URL="$$url" MESHGUARD_REQUIRE_POSTGRES=1 $(GO) test -race ./...
	@# The filter's own module: natively and as the compiled $(WASM) under wazero.
	@# Three compiles of the 8 MB module under -race: slow on a loaded machine, hence the timeout.
	cd wasmfilter && MESHGUARD_FILTER_WASM=$(abspath $(WASM)) $(GO) test -race -timeout 30m ./...
	@# The image builder's own module (go-containerregistry stays out of go.mod): it builds
	@# both images and opens them with its own reader; the filter's is the real $(WASM).
	@# Not under -race: the builder starts no goroutine, and hashing its 60 MB of layers
	@# under the race detector took 110 s of the run (13 s without).
	cd tools/image && $(GO) vet ./... && MESHGUARD_FILTER_WASM=$(abspath $(WASM)) $(GO) test -count=1 ./...
	@# The Helm chart (charts/meshguard), rendered and linted with Helm's Go SDK in a module
	@# of its own, so Helm's dependencies stay out of the server's go.mod.
	cd charts/charttest && $(GO) vet ./... && $(GO) test -count=1 -race ./...
	@# The TypeScript SDK (sdk/typescript): tsc on its declarations, then node --test, its
	@# conformance cases against the $(BIN) just built.
	MESHGUARD_BIN=$(abspath $(BIN)) scripts/sdk-typescript.sh

# The proxy-wasm filter (docs/wasm-filter.md): a WASI reactor built by the
# standard toolchain from its own module, so the server's dependencies stay
# out of it.
wasm:
	cd wasmfilter && GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -o ../$(WASM) .

# The container images, FROM scratch with no engine and no registry (tools/image):
# the static server binary with CA certificates, user 65532 and its directories; and
# the wasm filter as the one-layer plugin.wasm image Istio's WasmPlugin pulls.
image: wasm
	@echo "building $(IMAGE) and $(FILTER_IMAGE) for linux/$(IMAGE_ARCH)"
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/linux-$(IMAGE_ARCH)/meshguard ./cmd/meshguard
	cd tools/image && $(GO) run . -arch $(IMAGE_ARCH) -binary ../../bin/linux-$(IMAGE_ARCH)/meshguard -out ../../$(IMAGE) \
	  -wasm ../../$(WASM) -filter-out ../../$(FILTER_IMAGE) -version '$(VERSION)' -revision '$(REVISION)' -created '$(CREATED)'

# Builds the Jaeger v2 binary once (about 5 minutes on 2 cores) into
# ~/.cache/meshguard/jaeger-<version>/ and reuses it afterwards; see docs/tracing.md.
jaeger:
	@GO=$(GO) scripts/jaeger.sh

# Redraws the trace picture in docs/tracing.md from what a real Jaeger
# returns for the demo's delegation chain.
trace-picture:
	@bin=$$(GO=$(GO) scripts/jaeger.sh); MESHGUARD_JAEGER_BIN=$$bin MESHGUARD_REQUIRE_JAEGER=1 \
	  $(GO) test -count=1 ./examples/demo -run '^TestDemoTraceInJaeger$$' -update

# The console's screenshots in docs/console (docs/console.md): a served MeshGuard
# with the example policies, a few decisions, each page in headless Chromium.
console-screenshots:
	@chromium=$$(scripts/chromium.sh); MESHGUARD_CHROMIUM_BIN=$$chromium \
	  $(GO) run ./cmd/consoleshots -out docs/console -policies examples/policies

# The policy engine is embedded in the proxy-wasm filter: it must keep
# building for wasip1 with no heavy dependencies.
wasm-check:
	GOOS=wasip1 GOARCH=wasm $(GO) build ./policy ./trust ./filterconfig ./filterdecider ./filterprotocol ./agentproto

demo: build
	@echo "== 1. The example policies, checked and tested offline (no server)"
	$(MG) policy validate $(EXAMPLES)/policies
	$(MG) policy test --policies $(EXAMPLES)/policies --agents $(EXAMPLES)/agents.yaml --file $(EXAMPLES)/tests.yaml
	@echo
	@echo "== 2. One request, explained: why the researcher may not write notes for the orchestrator"
	@$(MG) policy test --policies $(EXAMPLES)/policies --agents $(EXAMPLES)/agents.yaml \
		--agent researcher --action write:notes/plan --chain orchestrator --verbose; \
	  code=$$?; [ $$code -eq 1 ] && echo "(exit code 1: denied, as expected)"
	@echo
	@echo "== 3. MCP tool calls through the gateway: a tool allowed, one denied, an argument refused, a filtered list"
	$(GO) run ./examples/mcp -walk -policies $(EXAMPLES)/policies -config $(EXAMPLES)/mcp/meshguard.yaml
	@echo
	@# Last: it leaves MeshGuard running until Ctrl-C.
	@echo "== 4. MeshGuard live: agents, a delegation chain through Envoy's ext_authz API and the gateway"
	$(GO) run ./examples/demo -policies $(EXAMPLES)/policies

# A mesh of three real agents (examples/mesh): a Python orchestrator hands a task to a Go
# researcher, which hands the report to a TypeScript emailer, each through its SDK and each hop
# through MeshGuard's gateway (PROXY_SERVICES), which decides it and mints the next agent's
# delegation; a ceiling denial and a revoked agent in the same run. Needs
# python3 (3.9+) and node (18+); starts MeshGuard and the agents on loopback ports the kernel
# picks, prints every decision and the chain as one tree, and stops everything it started.
mesh:
	$(GO) build -o bin/mesh-researcher ./examples/mesh/researcher
	$(GO) run ./examples/mesh -researcher bin/mesh-researcher

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./policy ./identity ./store ./engine ./ratelimit ./extauthz ./gateway ./audit

# The wasm filter in the SDK's emulator, natively and compiled under wazero,
# and compiled under wasmhost, the Envoy-shaped host (docs/performance.md).
# Requests stay under the audit queue's bound.
bench-wasm: wasm
	cd wasmfilter && MESHGUARD_FILTER_WASM=$(abspath $(WASM)) $(GO) test -run '^$$' -bench 'BenchmarkRequest|BenchmarkFloor|BenchmarkEnvoyHost$$' -benchtime 5000x ./filter 2>/dev/null
	cd wasmfilter && MESHGUARD_FILTER_WASM=$(abspath $(WASM)) $(GO) test -run '^$$' -bench 'BenchmarkPluginStart' -benchtime 50x ./filter 2>/dev/null
	cd wasmfilter && MESHGUARD_FILTER_WASM=$(abspath $(WASM)) $(GO) test -run '^$$' -bench 'BenchmarkVMStart' -benchtime 3x ./filter 2>/dev/null

# Whole-system load: ghz against MeshGuard and a no-op ext_authz server in one run.
# LOAD_FLAGS passes options, e.g. LOAD_FLAGS='-rps 3000' for a fixed rate below saturation.
bench-load:
	$(GO) run ./bench/loadtest $(LOAD_FLAGS)

# `meshguard policy replay` over a trail of REPLAY_RECORDS (1M) records: wall time and peak RSS.
REPLAY_RECORDS ?= 1000000
# bench-memory: meshguard serve's RSS with 10k agents, 10k rules and 1k ADS
# streams, each its own connection, and a change's propagation to them all
# (docs/performance.md, "Memory"). MEMORY_FLAGS passes the harness's flags.
bench-memory:
	$(GO) run ./bench/memory $(MEMORY_FLAGS)

bench-replay: build
	$(GO) run ./bench/replay -records $(REPLAY_RECORDS) -meshguard $(BIN)

# The audit trail on disk: bytes a decision and every CLI/API query's time, SQLite and
# (with MESHGUARD_TEST_DATABASE_URL set to an empty database) PostgreSQL.
AUDIT_RECORDS ?= 100000
bench-audit-storage:
	$(GO) run ./bench/auditstorage -records $(AUDIT_RECORDS)

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(GOLANGCI_LINT) run ./...
	cd wasmfilter && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./... && $(GO) run $(GOLANGCI_LINT) run ./...
	cd tools/image && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...

# A short fuzz run of every fuzz target, FUZZTIME each: scripts/fuzz.sh finds
# them (`scripts/fuzz.sh --list`), so a new one is never left out. Seeds live
# in each package's testdata/fuzz/<Target>/. FUZZ=regexp runs only the
# targets whose "<package> <Target>" matches.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh "$(FUZZ)"

# Mutation testing with gremlins (docs/mutation.md): each package's score, killed of the
# covered mutants, and the survivors. Slow (a build and a test run per mutant: hours for all
# five on a shared 2-core machine) and not part of `make test`. MUTATE_PKGS picks the
# packages, MUTATE_WORKERS=2 runs two mutants at once.
MUTATE_PKGS ?= policy identity engine extauthz gateway
mutate:
	@GO=$(GO) scripts/mutate.sh $(MUTATE_PKGS)

clean:
	rm -rf bin dist
