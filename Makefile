# MeshGuard — the two commands a new machine needs are `make demo` and `make test`.
# Everything else here is optional tooling. Tools are fetched with `go run pkg@version`
# (cached in the Go module cache), so nothing but Go must be installed beforehand.

GO        ?= go
BIN       := bin/meshguard
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 20s
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOLANGCI_LINT := github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

EXAMPLES  := examples
MG        := ./$(BIN)

.PHONY: all build test demo bench lint fuzz wasm-check clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/meshguard

# The test command of README and .ci/run.
test: wasm-check
	$(GO) vet ./...
	$(GO) test -race ./...

# The policy engine is embedded in the proxy-wasm filter: it must keep
# building for wasip1 with no heavy dependencies.
wasm-check:
	GOOS=wasip1 GOARCH=wasm $(GO) build ./policy ./trust

demo: build
	@echo "== 1. Validate the example policies"
	$(MG) policy validate $(EXAMPLES)/policies
	@echo
	@echo "== 2. Run the example policy tests offline (agents, delegation chains, time windows)"
	$(MG) policy test --policies $(EXAMPLES)/policies --agents $(EXAMPLES)/agents.yaml --file $(EXAMPLES)/tests.yaml
	@echo
	@echo "== 3. One request, explained: orchestrator → researcher → emailer sends a summary"
	$(MG) policy test --policies $(EXAMPLES)/policies --agents $(EXAMPLES)/agents.yaml \
		--agent emailer --action write:email --chain orchestrator,researcher \
		--context '{"recipient":"team@example.com"}' --at 2026-03-03T10:00:00+01:00 --verbose
	@echo
	@echo "== 4. One request, denied: delegated work outside the orchestrator's ceiling"
	@$(MG) policy test --policies $(EXAMPLES)/policies --agents $(EXAMPLES)/agents.yaml \
		--agent researcher --action write:notes/plan --chain orchestrator; \
	  code=$$?; [ $$code -eq 1 ] && echo "(exit code 1: denied, as expected)"
	@echo
	@echo "Try your own: $(MG) policy test --policies $(EXAMPLES)/policies --agents $(EXAMPLES)/agents.yaml --agent researcher --action read:docs --resource /docs/private/x --verbose"

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./policy ./identity ./store

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(GOLANGCI_LINT) run ./...

# A short fuzz run of every parser; seeds live in testdata/fuzz/.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./policy
	$(GO) test -run '^$$' -fuzz '^FuzzEvaluate$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./policy
	$(GO) test -run '^$$' -fuzz '^FuzzParseTests$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./policy
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./identity

clean:
	rm -rf bin
