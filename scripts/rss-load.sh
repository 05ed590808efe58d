#!/usr/bin/env bash
# Memory under sustained load: EVENTS App Events (default 1,000,000) at full
# speed into `switchboard dev`, each running one http step against the echo
# server, with wrk (Debian package `wrk`) on 50 connections. Prints VmRSS and
# runs finished every 15 s, then the process's memory once the runs drained.
# Usage: scripts/rss-load.sh [EVENTS]   (after `make build`; uses 127.0.0.1 only)
set -euo pipefail
EVENTS=${1:-1000000}
BIN=$(cd "$(dirname "$0")/.." && pwd)/bin/switchboard
D=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$D"' EXIT
HTTP=127.0.0.1:18090 ADMIN=127.0.0.1:19090
SWITCHBOARD_ADMIN_ADDR=$ADMIN "$BIN" dev --data-dir "$D/d" --http-addr $HTTP --nats-addr 127.0.0.1:14290 --examples "$(dirname "$BIN")/../examples" > "$D/dev.log" 2>&1 &
for _ in $(seq 1 100); do curl -sf http://$HTTP/readyz >/dev/null && break; sleep 0.2; done
KEY=$(cat "$D/d/dev-api-key"); TOKEN=$("$BIN" token --data-dir "$D/d" --user u1 | tail -1)
curl -sf -X PUT http://$HTTP/v1/projects/dev/users/u1 -H "Authorization: Bearer $KEY" -d '{}' >/dev/null
curl -sf -X PUT http://$HTTP/v1/projects/dev/users/u1/credentials/c1 -H "Authorization: Bearer $KEY" \
  -d '{"integration":"crm","providerAccountId":"acct-42","secret":{"accessToken":"t"}}' >/dev/null
"$BIN" echo-server > /dev/null 2>&1 &
cat > "$D/ev.lua" <<EOL
wrk.method = "POST"
wrk.body = '{"name":"Contact Created","payload":{"email":"a@example.com"}}'
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function() n = n + 1; if n > $((EVENTS / 2)) then wrk.thread:stop() end; return wrk.format() end
EOL
PID=$(pgrep -f "$BIN dev --data-dir $D" | head -1)
runs() { curl -s http://$ADMIN/metrics | awk '/^switchboard_runs_finished_total/ {s += $2} END {printf "%d", s}'; }
start=$(date +%s)
wrk -t2 -c50 -d3600s -s "$D/ev.lua" http://$HTTP/v1/projects/dev/events > "$D/wrk.txt" 2>&1 &
WRK=$!
# wrk's threads stop sending at EVENTS, but wrk itself only exits at -d.
while kill -0 $WRK 2>/dev/null; do
  sleep 15; n=$(runs)
  echo "$(( $(date +%s) - start ))s $(grep VmRSS /proc/$PID/status | tr -s ' ') runs=$n"
  [ "$n" -ge "$EVENTS" ] && kill -INT $WRK && wait $WRK || true
done
until [ "$(runs)" -ge "$EVENTS" ] || [ $(( $(date +%s) - start )) -gt 7200 ]; do sleep 5; done
sleep 15
grep -E "requests in|Requests/sec" "$D/wrk.txt"
echo "after the load, drained (runs=$(runs)):"
grep -E "VmRSS|RssAnon|RssFile" /proc/$PID/status
curl -s http://$HTTP/metrics | grep -E "^go_memstats_(heap_inuse|heap_sys|heap_alloc)_bytes"
du -sh "$D/d/history.db" "$D/d/nats"
