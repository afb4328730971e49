#!/usr/bin/env bash
# Starts `make serve`, checks that the app page and the local hub answer, then stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
app_port=${1:-8080}
hub_port=${2:-8081}
log=$(mktemp)
setsid make --no-print-directory serve APP_PORT="$app_port" HUB_PORT="$hub_port" >"$log" 2>&1 &
pid=$!
trap 'kill -- -$pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT
mkdir -p hub-data/mimir-check/serve
echo "local hub ok" > hub-data/mimir-check/serve/probe.txt
for _ in $(seq 1 600); do
  if curl -fsS "http://127.0.0.1:$app_port/" 2>/dev/null | grep -q '<title>Mimir</title>'; then
    hub=$(curl -fsS "http://127.0.0.1:$hub_port/mimir-check/serve/resolve/main/probe.txt")
    rm -rf hub-data/mimir-check/serve
    if [ "$hub" != "local hub ok" ]; then
      echo "check-serve: the hub answered ${hub@Q}" >&2
      exit 1
    fi
    echo "check-serve: app page at http://127.0.0.1:$app_port/ and hub at :$hub_port answer"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  sleep 1
done
rm -rf hub-data/mimir-check/serve
echo "check-serve: make serve did not answer on :$app_port; its log:" >&2
cat "$log" >&2
exit 1
