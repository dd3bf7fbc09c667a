#!/usr/bin/env bash
# The Backout demo: a local fleet, end to end, with nothing installed by hand.
#
#   scripts/demo.sh          run it and clean up everything it started
#   scripts/demo.sh --keep   leave the fleet running to explore with the CLI
#
# What it does: builds Backout and its plugins, generates a fleet PKI in a temp
# dir, starts a coordinator and two agents (app-1, app-2) as real processes, a
# sample app with one healthy and one failing provider endpoint, and runs the
# emergency assessment (`backout assess`) across the fleet.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

keep=false
for arg in "$@"; do
  case "$arg" in
    --keep) keep=true ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building Backout and its plugins (the first build takes several minutes)"
scripts/build-plugins.sh
cargo build --bins --quiet
target=${CARGO_TARGET_DIR:-$root/target}
backout=$target/debug/backout
agent=$target/debug/backout-agent

work=$(mktemp -d -t backout-demo.XXXXXX)
pids=()
cleanup() {
  local code=$?
  if [ "${#pids[@]}" -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$code"
}
if ! $keep; then
  trap cleanup EXIT
  trap 'exit 130' INT TERM
else
  trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"; exit 130' INT TERM
fi

wait_for_file() {
  for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; return 1
}

say "Generating the fleet PKI in $work/pki"
"$backout" pki init --dir "$work/pki" --trust-domain demo.backout.local >/dev/null
for a in app-1 app-2; do "$backout" pki issue agent "$a" --dir "$work/pki" >/dev/null; done
# A demo identity, clearly labelled: in production each person has their own.
"$backout" pki issue operator demo-release-manager --dir "$work/pki" >/dev/null
ls -1 "$work/pki" "$work/pki/agents" "$work/pki/operators" | sed 's/^/  /'

say "Starting the sample app (healthy /health, failing /api/health/providers, slow orders)"
mkdir -p "$work/app-logs"
python3 examples/sample-app/sample_app.py --port-file "$work/app.port" --error-log "$work/app-logs/error.log" --providers-down &
pids+=($!)
wait_for_file "$work/app.port"
app="http://127.0.0.1:$(cat "$work/app.port")"
echo "  sample app on $app"

health_sha=$(sha256sum "$target/plugins/health.wasm" | cut -d' ' -f1)
cat > "$work/coordinator.toml" <<TOML
listen = "127.0.0.1:0"
command_key = "pki/command-signing.key"
heartbeat_interval = "2s"
[tls]
ca = "pki/ca.pem"
cert = "pki/coordinator.pem"
key = "pki/coordinator.key"
[[agent]]
id = "app-1"
groups = ["app"]
[[agent]]
id = "app-2"
groups = ["app"]
[operators]
demo-release-manager = ["release-manager"]
[plugins.health]
sha256 = "$health_sha"
[assess]
timeout = "10s"
[[assess.check]]
name = "application"
url = "$app/health"
[[assess.check]]
name = "database"
url = "$app/api/health/database"
[[assess.check]]
name = "providers"
url = "$app/api/health/providers"
[[assess.check]]
name = "orders"
url = "$app/api/orders/health"
slow = "500ms"
agents = ["app-1"]
[assess.log]
path = "$work/app-logs/error.log"
tail_lines = 100
pattern = "ERROR"
TOML

say "Starting the coordinator"
"$backout" serve --config "$work/coordinator.toml" >"$work/coordinator.out" 2>"$work/coordinator.log" &
pids+=($!)
for _ in $(seq 1 200); do grep -q 'listening on' "$work/coordinator.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/^backout: listening on //p' "$work/coordinator.out")
[ -n "$addr" ] || { cat "$work/coordinator.log"; exit 1; }
echo "  coordinator on $addr (mutual TLS 1.3)"

say "Starting two agents"
for a in app-1 app-2; do
  cat > "$work/$a.toml" <<TOML
coordinator = "$addr"
command_key = "pki/command-signing.pub"
state_dir = "state-$a"
[tls]
ca = "pki/ca.pem"
cert = "pki/agents/$a.pem"
key = "pki/agents/$a.key"
[[plugin]]
name = "health"
path = "$target/plugins/health.wasm"
[plugin.grants]
urls = ["$app/"]
read = ["$work/app-logs"]
TOML
  "$agent" --config "$work/$a.toml" >/dev/null 2>"$work/$a.log" &
  pids+=($!)
done

export BACKOUT_COORDINATOR=$addr BACKOUT_PKI=$work/pki BACKOUT_OPERATOR=demo-release-manager
for _ in $(seq 1 200); do
  n=$("$backout" agents --output json 2>/dev/null | grep -o '"connected":true' | wc -l || true)
  [ "$n" -ge 2 ] && break
  sleep 0.1
done

say "backout agents"
"$backout" agents

say "backout assess   (phase 1.1: every host's health checks, signed, sandboxed, streamed back)"
set +e
"$backout" assess
code=$?
set -e
echo "  (exit code $code: 0 all healthy, 1 not)"

if $keep; then
  say "The fleet keeps running. In another shell:"
  echo "  export BACKOUT_COORDINATOR=$addr BACKOUT_PKI=$work/pki BACKOUT_OPERATOR=demo-release-manager"
  echo "  $backout agents"
  echo "  $backout assess --output json"
  echo "Logs are in $work. Press Ctrl-C here to stop everything and remove $work."
  wait
fi
