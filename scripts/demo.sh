#!/usr/bin/env bash
# The Backout demo: a local fleet, end to end, with nothing installed by hand.
#
#   scripts/demo.sh          run it and clean up everything it started
#   scripts/demo.sh --keep   leave the fleet running to explore with the CLI
#
# What it does: builds Backout and its plugins, generates a fleet PKI in a temp
# dir, starts a sample app (one failing provider endpoint, Prometheus metrics),
# a real Prometheus scraping it, a coordinator with a plan and two agents
# (app-1, app-2) as real processes; runs the emergency assessment; then turns
# the app faulty (12% errors, like a bad deploy) and shows the decision matrix
# go from ok to FIRED while `backout guard` watches.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

keep=false
for arg in "$@"; do
  case "$arg" in
    --keep) keep=true ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Installing what the demo starts (prometheus, python3) if missing"
scripts/install-parts.sh

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

# Plain HTTP from the shell without curl (python3 is here for the sample app).
http_ok() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" 2>/dev/null; }
http_post() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method="POST"), timeout=5)' "$1" "$2"
}

wait_for_file() {
  for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; return 1
}

say "Generating the fleet PKI in $work/pki"
"$backout" pki init --dir "$work/pki" --trust-domain demo.backout.local >/dev/null
for a in app-1 app-2; do "$backout" pki issue agent "$a" --dir "$work/pki" >/dev/null; done
# A demo identity, clearly labelled: in production each person has their own.
for op in demo-release-manager demo-tech-lead demo-oncall; do
  "$backout" pki issue operator "$op" --dir "$work/pki" >/dev/null
done
ls -1 "$work/pki" "$work/pki/agents" "$work/pki/operators" | sed 's/^/  /'

say "Starting the sample app (healthy /health, failing /api/health/providers, slow orders)"
mkdir -p "$work/app-logs"
python3 examples/sample-app/sample_app.py --port-file "$work/app.port" --error-log "$work/app-logs/error.log" --providers-down &
pids+=($!)
wait_for_file "$work/app.port"
app="http://127.0.0.1:$(cat "$work/app.port")"
echo "  sample app on $app"

say "Starting Prometheus, scraping the sample app every second"
prom_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: samia-tarot-app
    static_configs:
      - targets: ['127.0.0.1:$(cat "$work/app.port")']
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus-data" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >/dev/null 2>"$work/prometheus.log" &
pids+=($!)
for _ in $(seq 1 300); do http_ok "http://127.0.0.1:$prom_port/-/ready" && break; sleep 0.1; done
echo "  prometheus on http://127.0.0.1:$prom_port"

# The seed plan's decision matrix, with two windows shortened so the demo
# takes seconds: High Error Rate needs 10 s instead of 15 minutes.
cat > "$work/plan.toml" <<TOML
[plan]
name = "Samia Tarot Platform — Emergency Rollback (demo windows)"
document = "RP-SAMIA-2025-001"
[roles]
release-manager = "Release Manager"
technical-lead = "Technical Lead"
sre-lead = "SRE Lead"
security-lead = "Security Lead"
[[host]]
id = "app-1"
groups = ["app"]
[[host]]
id = "app-2"
groups = ["app"]
[approvals]
run = ["release-manager", "technical-lead"]
[[phase]]
id = "application"
name = "Application Rollback (verification only: the app plugin comes with issue 5)"
rolling = 1
time_limit = "2m"
[[phase.step]]
id = "verify"
name = "Every health endpoint answers"
plugin = "health"
action = "check"
on = "app"
timeout = "20s"
params = { require_healthy = true, checks = [{ name = "application", url = "$app/health" }, { name = "database", url = "$app/api/health/database" }] }
[success]
rto = "60m"
timeline_complete = true
[report]
root_cause_due = "24h"
prevention_due = "48h"
lessons_due = "72h"
[signals.service_up]
probe = { check = "application", aggregate = "any-up" }
interval = "2s"
[signals.error_rate]
prometheus = { url = "http://127.0.0.1:$prom_port", query = 'sum(rate(http_requests_total{code=~"5.."}[5s])) / sum(rate(http_requests_total[5s]))' }
interval = "1s"
[signals.p95_latency]
prometheus = { url = "http://127.0.0.1:$prom_port", query = 'histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket[5s])) by (le))' }
interval = "1s"
[signals.breach_confirmed]
manual = true
[[trigger]]
name = "Complete Service Down"
class = "immediate"
when = "service_up == 0"
for = "30m"
deciders = ["release-manager"]
[[trigger]]
name = "Critical Security Breach"
class = "immediate"
when = "breach_confirmed"
unknown = "ok"
deciders = ["security-lead", "release-manager"]
[[trigger]]
name = "High Error Rate"
class = "considered"
when = "error_rate > 5%"
for = "10s"
deciders = ["technical-lead", "release-manager"]
[[trigger]]
name = "Performance Degradation"
class = "considered"
when = "p95_latency > 2000ms"
for = "15m"
deciders = ["sre-lead", "release-manager"]
TOML

health_sha=$(sha256sum "$target/plugins/health.wasm" | cut -d' ' -f1)
cat > "$work/coordinator.toml" <<TOML
listen = "127.0.0.1:0"
command_key = "pki/command-signing.key"
heartbeat_interval = "2s"
plan = "plan.toml"
[tls]
ca = "pki/ca.pem"
cert = "pki/coordinator.pem"
key = "pki/coordinator.key"
[operators]
demo-release-manager = ["release-manager"]
demo-tech-lead = ["technical-lead"]
demo-oncall = ["sre-lead"]
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

# Let Prometheus gather a few rates and the probes run once.
for _ in $(seq 1 30); do
  "$backout" assess --output json 2>/dev/null | python3 -c '
import json, sys
signals = {s["name"]: s for s in json.load(sys.stdin)["matrix"]["signals"]}
sys.exit(0 if signals["error_rate"]["value"] is not None and signals["service_up"]["value"] is not None else 1)' && break
  sleep 1
done
say "backout assess   (phase 1.1: every host's health checks, signed, sandboxed, streamed back; then the decision matrix)"
set +e
"$backout" assess --deploy-time 1m
code=$?
set -e
echo "  (exit code $code: 0 all healthy and no action, 1 not)"

say "A bad deploy: the app now fails 12% of requests. backout guard watches."
"$backout" guard --interval 1s --deploy-time 1m --exit-on-immediate >"$work/guard.out" 2>&1 &
guard_pid=$!
pids+=($guard_pid)
http_post "$app/admin/fault" '{"error_rate": 0.12}'
for _ in $(seq 1 40); do
  grep -q "High Error Rate: breaching -> FIRED" "$work/guard.out" 2>/dev/null && break
  sleep 1
done
cat "$work/guard.out"

say "backout assess   (the error-rate trigger has held for its window: FIRED)"
set +e
"$backout" assess --deploy-time 1m | sed -n '/DECISION MATRIX/,$p'
set -e

say "A person confirms a breach: an immediate trigger"
"$backout" signal set breach_confirmed=true --note "demo: customer data exposed"
for _ in $(seq 1 20); do kill -0 "$guard_pid" 2>/dev/null || break; sleep 0.5; done
sed -n '/IMMEDIATE/,$p' "$work/guard.out"
set +e
"$backout" assess --deploy-time 1m | sed -n '/VERDICT/,/^$/p'
set -e

say "Rehearse first: backout rollback start --dry-run   (no approvals; each plugin says what it would do on each host)"
"$backout" rollback start --reason "rehearsal" --dry-run || true

say "The on-call engineer starts the rollback; it waits for the release manager and the technical lead"
run_json=$(BACKOUT_OPERATOR=demo-oncall "$backout" rollback start --reason "5xx at 12% since the deploy; breach confirmed" --to v2.3.1 --output json)
run_id=$(printf '%s' "$run_json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["run"])')
"$backout" watch "$run_id" >"$work/watch.out" 2>&1 &
watch_pid=$!
pids+=($watch_pid)
sleep 1
"$backout" runs
# Until issue 5's app plugin redeploys the previous version, the demo
# clears the fault by hand so the verification steps can pass.
http_post "$app/admin/fault" '{"error_rate": 0}'
say "Two distinct people approve, each under their own certificate"
"$backout" approve "$run_id"
BACKOUT_OPERATOR=demo-tech-lead "$backout" approve "$run_id"
say "backout watch $run_id   (what every watcher saw; with a terminal these are live bars per phase and host)"
for _ in $(seq 1 60); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.5; done
cat "$work/watch.out"

say "backout audit verify   (every decision, command and outcome, hash-chained)"
"$backout" audit verify --config "$work/coordinator.toml"

say "backout report $run_id   (for the company, the next morning)"
report_dir=${BACKOUT_DEMO_REPORTS:-/tmp/backout-demo-report}
mkdir -p "$report_dir"
"$backout" report "$run_id" --format md --out "$report_dir/report.md"
"$backout" report "$run_id" --format html --out "$report_dir/report.html"
sed -n '/## Success criteria/,/## Phases/p' "$report_dir/report.md" | head -12

if $keep; then
  say "The fleet keeps running. In another shell:"
  echo "  export BACKOUT_COORDINATOR=$addr BACKOUT_PKI=$work/pki BACKOUT_OPERATOR=demo-release-manager"
  echo "  $backout agents"
  echo "  $backout assess --output json"
  echo "Logs are in $work. Press Ctrl-C here to stop everything and remove $work."
  wait
fi
