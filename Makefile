# Switchboard: a go.work workspace of several modules. `go test ./...` at the
# root does not see nested modules, so every target loops over them.
SHELL := /bin/bash
MODULES := $(shell go list -m -f '{{.Dir}}' 2>/dev/null)
BIN := bin
GO_TEST_FLAGS ?= -count=1 -timeout 9m

.PHONY: run build test test-sdk chaos bench proto lint tidy clean

build:
	@mkdir -p $(BIN)
	go build -o $(BIN)/switchboard ./services/switchboard/cmd/switchboard
	go build -o $(BIN)/example-worker ./services/switchboard/cmd/example-worker

## run: Switchboard in dev mode (embedded NATS, every service, project "dev");
## flags for `switchboard dev` go in ARGS, e.g.
## make run ARGS="--http-addr 127.0.0.1:8081 --nats-addr 127.0.0.1:4223"
run: build
	$(BIN)/switchboard dev $(ARGS)

## test: every module's tests (real embedded NATS, bbolt and HTTP servers)
test:
	@set -e; for d in $(MODULES); do echo "== $$d"; (cd $$d && go test $(GO_TEST_FLAGS) ./...); done
	@$(MAKE) --no-print-directory test-sdk

## test-sdk: the mirrored product's JS SDK (@useparagon/connect, pinned in
## tests/sdk/package-lock.json) against a `switchboard dev` it starts; needs
## Node 20+ and npm
test-sdk: build
	@echo "== tests/sdk"
	npm ci --prefix tests/sdk --no-audit --no-fund
	npm test --prefix tests/sdk

## chaos: the crash suite (docs/reliability.md): real processes killed with
## SIGKILL mid-load; builds its own binaries; about two minutes
chaos:
	cd services/switchboard && go vet -tags chaos ./chaos/ && go test -tags chaos -count=1 -timeout 5m -v ./chaos/

## compose-test: the docker-compose.yml stack on podman with locally built
## scratch images (deploy/compose/smoke.sh): up, the walk-through, the router
## killed with SIGKILL mid-load, every accepted event run once, down -v
.PHONY: compose-test
compose-test:
	deploy/compose/smoke.sh

## bench: ingest and end-to-end benchmark (see docs/benchmarks.md)
bench: build
	go run ./services/switchboard/cmd/sbbench

proto:
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler"; exit 1; }
	@command -v protoc-gen-go >/dev/null || go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	cd proto && PATH="$$PATH:$$(go env GOPATH)/bin" protoc --go_out=. --go_opt=module=github.com/switchboard-hq/switchboard/proto switchboard/v1/envelope.proto

lint:
	@command -v staticcheck >/dev/null || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	@set -e; for d in $(MODULES); do echo "== $$d"; (cd $$d && go vet ./... && PATH="$$PATH:$$(go env GOPATH)/bin" staticcheck ./...); done

tidy:
	@set -e; for d in $(MODULES); do (cd $$d && GOWORK=off go mod tidy); done

clean:
	rm -rf $(BIN)
