#!/usr/bin/env bash
# Builds the two images deploy/compose/local.yml runs, without a registry:
# the static switchboard binary and nats-server (from its Go module, at the
# version the workspace pins), each in a FROM scratch image.
#
#   deploy/compose/local-images.sh
#   podman-compose -f docker-compose.yml -f deploy/compose/local.yml up -d
set -euo pipefail
cd "$(dirname "$0")/../.."
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/sb/data" "$ctx/nats/data"
CGO_ENABLED=0 go build -trimpath -o "$ctx/sb/switchboard" ./services/switchboard/cmd/switchboard
CGO_ENABLED=0 go build -trimpath -o "$ctx/nats/nats-server" github.com/nats-io/nats-server/v2
podman build -q -t localhost/switchboard:local -f deploy/compose/switchboard.Containerfile "$ctx/sb" >/dev/null
podman build -q -t localhost/switchboard-nats:local -f deploy/compose/nats.Containerfile "$ctx/nats" >/dev/null
echo "built localhost/switchboard:local and localhost/switchboard-nats:local"
