#!/usr/bin/env bash
# make compose-test: the docker-compose.yml stack on podman, end to end.
#
# Builds the static binaries and scratch images locally (this machine has no
# registry access; deploy/compose/local.yml swaps them in), brings the stack
# up under its own project name and host ports (so it runs beside
# `switchboard dev` and other stacks), waits for /readyz of every role, runs
# the README walk-through's core through the roles' own ports, kills the
# router container with SIGKILL mid-load, starts it again, checks that every
# accepted event ran exactly once, and brings everything down with its
# volumes. Fails loudly when podman cannot run containers here.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)
say() { printf '== compose-test: %s\n' "$*"; }
die() { printf '== compose-test FAILED: %s\n' "$*" >&2; exit 1; }

# --- tools: install what is missing (root with apt, as here and in CI) ---
apt_install() {
	[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null ||
		die "missing: $* (install the Debian packages: apt-get install -y $*)"
	say "installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; } ||
		die "apt-get install $* failed"
}
missing=()
for t in podman runc podman-compose curl jq; do command -v "$t" >/dev/null || missing+=("$t"); done
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

work=$(mktemp -d)
# podman reads only this file when CONTAINERS_CONF is set: runc (crun's
# rlimit setup is refused in this sandbox) and no default ulimits (setting
# RLIMIT_NOFILE is "operation not permitted" here) — without touching /etc.
cat >"$work/containers.conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$work/containers.conf"

# --- build: static binaries, scratch images ---
say "building binaries and images"
deploy/compose/local-images.sh >/dev/null || die "building the local images failed"
# A container must run at all, or nothing below means anything: say why not.
if ! out=$(podman run --rm --net=none localhost/switchboard:local serve --help 2>&1); then
	die "podman cannot run a container on this machine: $out"
fi

# Only the roles this binary knows (app.RoleNames(), listed by serve --help):
# a role the compose file names but the binary does not know yet is skipped.
known=$(tr -d '\n' <<<"$out" | sed -E 's/.*Roles, in start order: ([^.]*)\..*/\1/' | tr -d ' ' | tr ',' ' ')
roles=()
for r in history router scheduler connection-lifecycle ingress webhook-receiver; do
	if [[ " $known " == *" $r "* ]]; then roles+=("$r"); else say "skipping role $r: this binary does not know it (roles: $known)"; fi
done
for r in router ingress history connection-lifecycle; do
	[[ " ${roles[*]} " == *" $r "* ]] || die "the walk-through needs the $r role"
done

# --- configuration: free host ports, a throwaway env file ---
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export INGRESS_PORT=$(free_port) HISTORY_PORT=$(free_port) LIFECYCLE_PORT=$(free_port) WEBHOOK_PORT=$(free_port) NATS_PORT=$(free_port)
export SWITCHBOARD_ENV_FILE="$work/env"
admin=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat >"$SWITCHBOARD_ENV_FILE" <<EOF
SWITCHBOARD_ADMIN_TOKEN=$admin
SWITCHBOARD_SECRET_KEY=$(head -c 32 /dev/urandom | base64)
SWITCHBOARD_ALLOW_PRIVATE_NETWORKS=true
EOF
project="sbsmoke$$"
pc=(podman-compose -p "$project" -f docker-compose.yml -f deploy/compose/local.yml)
ctr() { echo "${project}_$1_1"; }

cleanup() {
	rc=$?
	if [ $rc -ne 0 ]; then
		for s in nats listener "${roles[@]}"; do
			echo "--- logs $s (last 30 lines)" >&2
			podman logs --tail 30 "$(ctr "$s")" >&2 2>&1 || true
		done
	fi
	"${pc[@]}" down -v -t 5 >/dev/null 2>&1 || true
	podman network rm -f "${project}_default" >/dev/null 2>&1 || true
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT

say "up (project $project, ingress on 127.0.0.1:$INGRESS_PORT)"
up_at=$(date +%s)
"${pc[@]}" up -d --no-build nats listener "${roles[@]}" >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; die "podman-compose up failed"; }

# poll CMD... until it succeeds or SECONDS pass.
poll() {
	local secs=$1 what=$2; shift 2
	local end=$(($(date +%s) + secs))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$end" ] || die "$what: not within ${secs}s"
		sleep 0.5
	done
}
ready() { podman exec "$(ctr "$1")" /switchboard probe "http://127.0.0.1:8080/readyz"; }
for r in "${roles[@]}"; do poll 120 "/readyz of $r" ready "$r"; done
say "every role ready $(($(date +%s) - up_at))s after up: ${roles[*]}"
# /metrics is on the admin listener, bound to :9090 in the containers: a
# scraper on the compose network (here the listener container) reaches it.
for r in "${roles[@]}"; do
	podman exec "$(ctr listener)" /switchboard probe "http://$r:9090/metrics" >/dev/null || die "/metrics of $r not reachable on the compose network"
done

# --- the walk-through's core ---
ING=http://127.0.0.1:$INGRESS_PORT HIS=http://127.0.0.1:$HISTORY_PORT LC=http://127.0.0.1:$LIFECYCLE_PORT
# api METHOD URL [curl args…]: the body on 2xx, else fail.
api() { curl -sS --fail-with-body -m 10 -X "$@"; }
api PUT "$ING/v1/projects/dev" -H "Authorization: Bearer $admin" -d '{"name":"dev"}' >/dev/null
KEY=$(api POST "$ING/v1/projects/dev/api-keys" -H "Authorization: Bearer $admin" -d '{}' | jq -r .key)
[ -n "$KEY" ] && [ "$KEY" != null ] || die "no API key"
# The example posts to 127.0.0.1:9000; in compose the listener is a container.
sed 's#http://127.0.0.1:9000#http://listener:9000#' examples/contact-created.yaml |
	api POST "$ING/v1/projects/dev/apply" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/yaml' --data-binary @- >/dev/null
# Each role keeps its own copy of the catalog (a KV watch): the key minted on
# ingress reaches connection-lifecycle a moment later.
poll 30 "PUT user on connection-lifecycle" api PUT "$LC/v1/projects/dev/users/u1" -H "Authorization: Bearer $KEY" -d '{"metadata":{"timezone":"Europe/Berlin"}}'
api PUT "$LC/v1/projects/dev/users/u1/credentials/c1" -H "Authorization: Bearer $KEY" \
	-d '{"integration":"crm","providerAccountId":"acct-42","secret":{"accessToken":"crm-token-123"}}' >/dev/null

ids="$work/accepted"
: >"$ids"
# send_one I: one App Event as u1 (API key, user in the body); its id is
# appended to $ids once ingress accepted it (202: stored in JetStream).
send_one() {
	local out
	out=$(curl -sS -m 10 -w '\n%{http_code}' -X POST "$ING/v1/projects/dev/events" -H "Authorization: Bearer $KEY" \
		-d "{\"name\":\"Contact Created\",\"user\":\"u1\",\"payload\":{\"email\":\"c$1@example.com\"}}") || return 0
	[ "$(tail -1 <<<"$out")" = 202 ] && head -1 <<<"$out" | jq -r .id >>"$ids" # one short line: an atomic append
	return 0
}
# send N FROM: N events, 8 at a time, so the router has a backlog to lose.
send() {
	export -f send_one
	export ING KEY ids
	seq "$2" $(($2 + $1 - 1)) | xargs -P 8 -I{} bash -c 'send_one {}'
}
# runs_ok: every accepted event has exactly one run and all succeeded.
check_runs() {
	local got
	got=$(curl -sS -m 10 "$HIS/v1/projects/dev/runs?workflow=contact-to-crm&limit=500" -H "Authorization: Bearer $KEY") || return 1
	jq -e --slurpfile want <(jq -R . "$ids") '
		[.runs[] | select(.status == "succeeded") | .eventId] as $ok |
		($ok | length) == ($want | length) and ($ok | unique | length) == ($ok | length)
		and (($want | unique) - $ok | length) == 0' <<<"$got" >/dev/null
}

send 5 0
[ "$(wc -l <"$ids")" -eq 5 ] || die "ingress accepted $(wc -l <"$ids") of 5 events"
poll 60 "5 runs succeeded" check_runs
grep -q 'Bearer crm-token-123' <(podman logs "$(ctr listener)" 2>&1) || die "the listener saw no request with the credential"
say "walk-through: 5 events, 5 runs succeeded, the listener got the credential's bearer token"

# --- kill -9 the router mid-load, start it again, nothing lost ---
accepted_at_least() { [ "$(wc -l <"$ids")" -ge "$1" ]; }
send 400 100 &
sender=$!
poll 30 "100 more events accepted" accepted_at_least 105
podman kill -s KILL "$(ctr router)" >/dev/null
killed_at=$(wc -l <"$ids")
done_at=$(curl -sS -m 10 "$HIS/v1/projects/dev/runs?workflow=contact-to-crm&status=succeeded&limit=500" -H "Authorization: Bearer $KEY" | jq '.runs | length') || done_at='?'
say "router killed with SIGKILL: $killed_at events accepted, $done_at runs succeeded so far"
wait $sender
podman start "$(ctr router)" >/dev/null 2>&1 || true # its restart policy may have started it already
poll 60 "/readyz of the restarted router" ready router
total=$(wc -l <"$ids")
[ "$total" -eq 405 ] || die "ingress accepted $total of 405 events while the router was down (it does not need the router)"
poll 120 "$total runs succeeded after the restart" check_runs
say "after the restart: $total events accepted, $total runs succeeded, one each (0 lost, 0 duplicates)"

say "passed in $(($(date +%s) - started))s"
