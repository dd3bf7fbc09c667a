#!/usr/bin/env bash
# The Backout demo: the whole story of a production rollback, in one command.
#
#   scripts/demo.sh           run it (about a minute once built) and clean up everything it started
#   scripts/demo.sh --keep    leave the fleet running afterwards, to explore with the CLI and
#                             the dashboard (its address is printed at the end)
#   scripts/demo.sh --build   rebuild Backout and its plugins first (otherwise only
#                             what is missing is built, e.g. on a fresh clone)
#   scripts/demo.sh --ha      two coordinators on a PostgreSQL journal; the leader is
#                             SIGKILLed during the database phase and the standby
#                             finishes the rollback (every step still runs once)
#
# A bad deploy (v2.4.0) of the sample app goes out to two hosts, with a
# database migration. Backout's decision matrix sees the errors and the slow
# responses (from a real Prometheus) and fires; demo operators approve a
# rollback by role; agents roll both hosts back to the last STABLE commit,
# back the database up and migrate it down (a real PostgreSQL), restore the
# Stripe, Square and Cloudflare settings (Prism serving their published API
# documents) and tell Slack (a local receiver). Then the report and its RTO.
# Everything runs on this machine, in a temp dir; the assets (app, plan,
# migrations) are in examples/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
demo=$root/examples/demo

keep=false
build=false
ha=false
for arg in "$@"; do
  case "$arg" in
    --keep) keep=true ;;
    --build) build=true ;;
    --ha) ha=true ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

bold=$'\033[1m' dim=$'\033[2m' off=$'\033[0m'
if [ ! -t 1 ]; then bold='' dim='' off=''; fi
step=0
say() { step=$((step + 1)); printf '\n%s== %d. %s%s\n' "$bold" "$step" "$*" "$off"; }
explain() { printf '%s   %s%s\n' "$dim" "$*" "$off"; }
indent() { sed 's/^/     /'; }
started_at=$(date +%s)

# ---------------------------------------------------------------------------
# Parts and binaries
# ---------------------------------------------------------------------------
say "Checking what the demo starts (prometheus, python3, PostgreSQL 15, Prism)"
scripts/install-parts.sh

target=${CARGO_TARGET_DIR:-$root/target}
backout=$target/debug/backout
agent=$target/debug/backout-agent
plugins=(health app db webhook cdn notify)
missing=false
for f in "$backout" "$agent"; do [ -x "$f" ] || missing=true; done
for p in "${plugins[@]}"; do [ -s "$target/plugins/$p.wasm" ] || missing=true; done
if $build || $missing; then
  say "Building Backout and its plugins (the first build takes several minutes)"
  scripts/build-plugins.sh
  cargo build --bins --quiet
else
  explain "using the binaries and plugins in $target (scripts/demo.sh --build rebuilds them)"
fi
prism=$target/node/node_modules/.bin/prism

# ---------------------------------------------------------------------------
# Cleanup: every process and dir this script starts, also on Ctrl-C
# ---------------------------------------------------------------------------
work=$(mktemp -d -t backout-demo.XXXXXX)
hosts=$work/hosts
pids=()
pg_started=false
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  if [ "${#pids[@]}" -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  for h in app-1 app-2; do
    [ -d "$hosts/$h" ] && sh "$demo/service.sh" stop "$hosts/$h" 2>/dev/null || true
  done
  if $pg_started; then as_postgres "$(pg_program pg_ctl)" -D "$work/postgres/data" stop -m immediate >/dev/null 2>&1 || true; fi
  rm -rf "$work"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Plain HTTP from the shell without curl (python3 is here for the sample app).
http_get() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())' "$1"; }
http_ok() { http_get "$1" >/dev/null 2>&1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for_file() {
  for _ in $(seq 1 300); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; return 1
}
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

# PostgreSQL: server programs from PATH or the newest /usr/lib/postgresql/*/bin;
# the server refuses to run as root, so as root it runs as `postgres`.
pg_program() {
  local dir
  for dir in /usr/local/bin /usr/bin; do [ -x "$dir/$1" ] && { echo "$dir/$1"; return; }; done
  ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -1
}
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# ---------------------------------------------------------------------------
# 1. PKI
# ---------------------------------------------------------------------------
say "A private CA for the fleet: a certificate per agent and per person (in $work/pki)"
"$backout" pki init --dir "$work/pki" --trust-domain demo.backout.local >/dev/null
for a in app-1 app-2 db-1; do "$backout" pki issue agent "$a" --dir "$work/pki" >/dev/null; done
# Demo identities, clearly labelled: in production each person has their own
# certificate; the CA attests their role in it (the coordinator's
# configuration must agree), and db-1's agent checks their signed approvals.
declare -A role_of=(
  [demo-oncall]=sre-lead
  [demo-release-manager]=release-manager
  [demo-tech-lead]=technical-lead
  [demo-dba]=dba
  [demo-product-owner]=product-owner
)
for op in "${!role_of[@]}"; do "$backout" pki issue operator "$op" --role "${role_of[$op]}" --dir "$work/pki" >/dev/null; done
# The CA-signed revocation list (empty): the coordinator checks certificates
# against it and hands it to the agents, which check approvals against it.
"$backout" pki revoke --dir "$work/pki" >/dev/null
explain "agents:    app-1 app-2 db-1"
explain "operators: demo-oncall (SRE lead), demo-release-manager, demo-tech-lead, demo-dba, demo-product-owner"

# Prism (Node) takes a few seconds per document: start the three now.
declare -A prism_port prism_doc=(
  [stripe]=stripe-webhook-endpoints.openapi.json
  [square]=square-webhook-subscriptions.openapi.json
  [cloudflare]=cloudflare-zones.openapi.json
)
for api in stripe square cloudflare; do
  prism_port[$api]=$(free_port)
  "$prism" mock -h 127.0.0.1 -p "${prism_port[$api]}" "$root/tests/provider-apis/${prism_doc[$api]}" \
    >"$work/prism-$api.log" 2>&1 </dev/null &
  pids+=($!)
done

# ---------------------------------------------------------------------------
# 2. The app, its history, its hosts
# ---------------------------------------------------------------------------
say "The app's git repository: three STABLE releases, then v2.4.0 (the new checkout flow)"
origin=$work/origin/samia-tarot
mkdir -p "$origin/config" "$origin/migrations"
(
  cd "$origin"
  git init -q -b main .
  git config user.email release@samia-tarot.demo
  git config user.name "Release Pipeline (demo)"
  cp "$demo/app/app.py" app.py
  cp "$root/examples/sample-app/sample_app.py" sample_app.py
  release() { # version, subject, config, migrations...
    local version=$1 subject=$2 config=$3
    shift 3
    echo "$version" >VERSION
    cp "$demo/app/config/$config.env" config/production.env
    for m in "$@"; do cp "$demo/app/migrations/$m".*.sql migrations/; done
    git add -A
    git commit -q -m "$subject"
    git tag "v$version"
  }
  release 2.2.0 "Release 2.2.0 STABLE: profiles, orders, payments" stable \
    001_profiles 002_orders 003_payment_transactions
  release 2.3.0 "Release 2.3.0 STABLE: secrets providers schema" stable 025_m28_secrets_providers_schema
  release 2.3.1 "Release 2.3.1 STABLE: payment retry hotfix" stable
  release 2.4.0 "Release 2.4.0: new checkout flow (checkout_sessions)" checkout-v2 026_m29_checkout_flow_v2
  git log --format='%h %s' | indent
)

say "Two app hosts (app-1, app-2) run v2.3.1 STABLE from their own checkouts; db-1 has one for its migrations"
for h in app-1 app-2 db-1; do
  git clone -q "$origin" "$hosts/$h/samia-tarot"
  git -C "$hosts/$h/samia-tarot" -c advice.detachedHead=false checkout -q v2.3.1
done
declare -A app_url
for h in app-1 app-2; do
  free_port >"$hosts/$h/port"
  app_url[$h]="http://127.0.0.1:$(cat "$hosts/$h/port")"
  sh "$demo/service.sh" start "$hosts/$h"
done
for h in app-1 app-2; do
  for _ in $(seq 1 100); do http_ok "${app_url[$h]}/health" && break; sleep 0.1; done
  echo "$h  ${app_url[$h]}/health -> $(http_get "${app_url[$h]}/health")" | indent
done
explain "examples/demo/service.sh stands in for systemd: it starts the checkout's app.py on the host's port"

# ---------------------------------------------------------------------------
# 3. PostgreSQL
# ---------------------------------------------------------------------------
say "A real PostgreSQL on db-1: the seed's tables, migrated up to v2.3.1's last migration, with rows"
db_port=$(free_port)
db_password="demo-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
chmod 711 "$work"
mkdir -p "$work/postgres" "$hosts/db-1/backups" "$work/secrets"
printf '%s\n' "$db_password" >"$work/postgres/pwfile"
[ "$(id -u)" = 0 ] && chown -R postgres: "$work/postgres"
as_postgres "$(pg_program initdb)" -D "$work/postgres/data" -U backout --pwfile="$work/postgres/pwfile" \
  --auth=scram-sha-256 --encoding=UTF8 --locale=C --no-sync >"$work/postgres.log" 2>&1
rm -f "$work/postgres/pwfile"
as_postgres "$(pg_program pg_ctl)" -D "$work/postgres/data" -l "$work/postgres/server.log" -w -t 60 \
  -o "-p $db_port -k $work/postgres -c listen_addresses=127.0.0.1 -c fsync=off" start >>"$work/postgres.log" 2>&1
pg_started=true
export PGHOST=127.0.0.1 PGPORT=$db_port PGUSER=backout PGPASSWORD=$db_password
PGDATABASE=postgres psql -X -q -c "CREATE DATABASE samia_tarot" >/dev/null
if $ha; then
  # The coordinators' journal and leader lease, in a database of its own.
  PGDATABASE=postgres psql -X -q -c "CREATE DATABASE backout_journal" >/dev/null
  printf '%s\n' "$db_password" >"$work/secrets/journal.pass"
  chmod 600 "$work/secrets/journal.pass"
fi
export PGDATABASE=samia_tarot
sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
migrate_up() { # migration ids, from db-1's checkout
  local m
  for m in "$@"; do
    sql -c "BEGIN; $(cat "$hosts/db-1/samia-tarot/migrations/$m.up.sql") INSERT INTO schema_migrations (version) VALUES ('$m'); COMMIT;" >/dev/null
  done
}
sql -c "CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
migrate_up 001_profiles 002_orders 003_payment_transactions 025_m28_secrets_providers_schema
sql >/dev/null <<'SQL'
INSERT INTO profiles (email, created_at)
  SELECT 'customer' || i || '@example.com', now() - interval '2 days' FROM generate_series(1, 40) i;
INSERT INTO orders (profile_id, total_cents, created_at)
  SELECT 1 + i % 40, 1500 + 100 * (i % 7), now() - interval '2 days' FROM generate_series(1, 60) i;
INSERT INTO payment_transactions (order_id, amount_cents, created_at)
  SELECT i, 1500 + 100 * (i % 7), now() - interval '2 days' FROM generate_series(1, 55) i;
SQL
sql -F ' ' -c "SELECT 'tables: profiles ' || (SELECT count(*) FROM profiles) || ', orders ' || (SELECT count(*) FROM orders) || ', payment_transactions ' || (SELECT count(*) FROM payment_transactions) || '; last migration ' || max(version) FROM schema_migrations" | indent
explain "PostgreSQL $(psql -X -A -t -c 'SHOW server_version') on 127.0.0.1:$db_port (data in $work/postgres, run as the postgres user when root)"

# ---------------------------------------------------------------------------
# 4. Prometheus, Prism, Slack
# ---------------------------------------------------------------------------
say "Prometheus scrapes both hosts every second; Prism serves Stripe's, Square's and Cloudflare's API documents; a Slack receiver"
prom_port=$(free_port)
prometheus_url="http://127.0.0.1:$prom_port"
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: samia-tarot-app
    static_configs:
      - targets: ['127.0.0.1:$(cat "$hosts/app-1/port")', '127.0.0.1:$(cat "$hosts/app-2/port")']
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus-data" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >/dev/null 2>"$work/prometheus.log" &
pids+=($!)
python3 "$demo/slack_receiver.py" --port-file "$work/slack.port" --out "$work/slack.jsonl" &
pids+=($!)
wait_for_file "$work/slack.port"
slack="http://127.0.0.1:$(cat "$work/slack.port")"
for _ in $(seq 1 300); do http_ok "$prometheus_url/-/ready" && break; sleep 0.1; done
for api in stripe square cloudflare; do
  for _ in $(seq 1 900); do grep -q "Prism is listening on" "$work/prism-$api.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "Prism is listening on" "$work/prism-$api.log" || { cat "$work/prism-$api.log"; exit 1; }
done
echo "prometheus  $prometheus_url" | indent
for api in stripe square cloudflare; do
  printf '%-11s http://127.0.0.1:%s  (prism mock tests/provider-apis/%s)\n' "$api" "${prism_port[$api]}" "${prism_doc[$api]}" | indent
done
echo "slack       $slack/services/...  (examples/demo/slack_receiver.py)" | indent

# ---------------------------------------------------------------------------
# 5. Coordinator and agents
# ---------------------------------------------------------------------------
say "The coordinator (holds the plan: examples/demo/plan.toml.in) and three agents, as real processes"
sed -e "s|@PROMETHEUS@|$prometheus_url|g" -e "s|@APP1@|${app_url[app-1]}|g" -e "s|@APP2@|${app_url[app-2]}|g" \
  -e "s|@HOSTS@|$hosts|g" -e "s|@DEMO@|$demo|g" -e "s|@DB_PORT@|$db_port|g" \
  -e "s|@BACKUPS@|$hosts/db-1/backups|g" -e "s|@MIGRATIONS@|$hosts/db-1/samia-tarot/migrations|g" \
  -e "s|@STRIPE@|http://127.0.0.1:${prism_port[stripe]}|g" -e "s|@SQUARE@|http://127.0.0.1:${prism_port[square]}|g" \
  -e "s|@CLOUDFLARE@|http://127.0.0.1:${prism_port[cloudflare]}|g" \
  "$demo/plan.toml.in" >"$work/plan.toml"
if grep -v '^ *#' "$work/plan.toml" | grep '@[A-Z0-9_]*@'; then echo "unfilled placeholders in the plan" >&2; exit 1; fi
"$backout" plan check "$work/plan.toml" >/dev/null

{
  if $ha; then
    cat <<TOML
journal = { postgres = "host=127.0.0.1 port=$db_port dbname=backout_journal user=backout", password_file = "secrets/journal.pass" }
lease_ttl = "3s"
TOML
  else
    echo 'listen = "127.0.0.1:0"'
  fi
  cat <<TOML
command_key = "pki/command-signing.key"
checkpoint_key = "pki/checkpoint-signing.key"
heartbeat_interval = "2s"
plan = "plan.toml"
crl = "pki/crl.pem"
[tls]
ca = "pki/ca.pem"
cert = "pki/coordinator.pem"
key = "pki/coordinator.key"
[operators]
TOML
  for op in "${!role_of[@]}"; do echo "$op = [\"${role_of[$op]}\"]"; done
  # Agents must run exactly these components.
  for p in "${plugins[@]}"; do
    printf '[plugins.%s]\nsha256 = "%s"\n' "$p" "$(sha256sum "$target/plugins/$p.wasm" | cut -d' ' -f1)"
  done
  cat <<TOML
[assess]
timeout = "10s"
[[assess.check]]
name = "application"
url = "${app_url[app-1]}/health"
agents = ["app-1"]
[[assess.check]]
name = "application"
url = "${app_url[app-2]}/health"
agents = ["app-2"]
[[assess.check]]
name = "providers"
url = "${app_url[app-1]}/api/health/providers"
agents = ["app-1"]
[[assess.check]]
name = "providers"
url = "${app_url[app-2]}/api/health/providers"
agents = ["app-2"]
[[assess.check]]
name = "orders"
url = "${app_url[app-1]}/api/orders/health"
slow = "500ms"
agents = ["app-1"]
[[assess.check]]
name = "database"
url = "${app_url[app-1]}/api/health/database"
agents = ["db-1"]
[assess.log]
path = "$hosts/app-1/log/error.log"
tail_lines = 100
pattern = "ERROR"
agents = ["app-1"]
TOML
} >"$work/coordinator.toml"

if $ha; then
  # The same configuration on both, each with its own address: a leads, b stands by.
  declare -A coordinator_addr coordinator_pid
  for c in a b; do
    coordinator_addr[$c]="127.0.0.1:$(free_port)"
    { printf 'listen = "%s"\nadvertise = "%s"\nstate_dir = "state-%s"\n' "${coordinator_addr[$c]}" "${coordinator_addr[$c]}" "$c"
      cat "$work/coordinator.toml"; } >"$work/coordinator-$c.toml"
  done
  cp "$work/coordinator-a.toml" "$work/coordinator.toml"
  "$backout" serve --config "$work/coordinator-a.toml" >"$work/coordinator-a.out" 2>"$work/coordinator-a.log" &
  coordinator_pid[a]=$!
  pids+=($!)
  for _ in $(seq 1 300); do grep -q 'listening on' "$work/coordinator-a.out" 2>/dev/null && break; sleep 0.1; done
  grep -q 'listening on' "$work/coordinator-a.out" || { cat "$work/coordinator-a.log"; exit 1; }
  "$backout" serve --config "$work/coordinator-b.toml" >"$work/coordinator-b.out" 2>"$work/coordinator-b.log" &
  coordinator_pid[b]=$!
  pids+=($!)
  for _ in $(seq 1 300); do grep -q 'standby' "$work/coordinator-b.out" 2>/dev/null && break; sleep 0.1; done
  grep -q 'standby' "$work/coordinator-b.out" || { cat "$work/coordinator-b.log"; exit 1; }
  # Agents and the CLI are given both; the leader answers.
  addr="${coordinator_addr[a]},${coordinator_addr[b]}"
else
  "$backout" serve --config "$work/coordinator.toml" >"$work/coordinator.out" 2>"$work/coordinator.log" &
  pids+=($!)
  for _ in $(seq 1 200); do grep -q 'listening on' "$work/coordinator.out" 2>/dev/null && break; sleep 0.1; done
  addr=$(sed -n 's/^backout: listening on //p' "$work/coordinator.out")
  [ -n "$addr" ] || { cat "$work/coordinator.log"; exit 1; }
fi

# Secrets live in files only the agents read; plans name them (${secret:NAME}).
secret() { printf '%s' "$2" >"$work/secrets/$1"; chmod 600 "$work/secrets/$1"; }
secret DB_PASSWORD "$db_password"
secret STRIPE_SECRET_KEY "sk_test_demo_51SamiaTarot"
secret SQUARE_ACCESS_TOKEN "EAAAl_demo_square_token"
secret CLOUDFLARE_TOKEN "cf_demo_api_token"
secret SLACK_EMERGENCY_WEBHOOK "$slack/services/T0DEMO/B0DEMO/emergencyhook"

agent_config() { # id, then the plugin sections
  local id=$1
  cat <<TOML
coordinator = [$(printf '%s' "$addr" | sed 's/[^,]*/"&"/g; s/,/, /g')]
command_key = "pki/command-signing.pub"
state_dir = "state-$id"
[tls]
ca = "pki/ca.pem"
cert = "pki/agents/$id.pem"
key = "pki/agents/$id.key"
[[plugin]]
name = "health"
path = "$target/plugins/health.wasm"
[plugin.grants]
urls = ["${app_url[app-1]}/", "${app_url[app-2]}/"]
read = ["$hosts/app-1/log", "$hosts/app-2/log"]
TOML
}
app_plugins() { # host
  cat <<TOML
[[plugin]]
name = "app"
path = "$target/plugins/app.wasm"
[plugin.grants]
programs = ["git", "sh", "python3"]
dry_run_programs = ["git log"]
urls = ["${app_url[$1]}/"]
read = ["$hosts/$1"]
write = ["$hosts/$1/samia-tarot"]
[[plugin]]
name = "notify"
path = "$target/plugins/notify.wasm"
[plugin.grants]
urls = ["$slack/services/"]
secrets = ["SLACK_EMERGENCY_WEBHOOK"]
TOML
}
{
  agent_config app-1
  app_plugins app-1
  cat <<TOML
[[plugin]]
name = "webhook"
path = "$target/plugins/webhook.wasm"
[plugin.grants]
urls = ["http://127.0.0.1:${prism_port[stripe]}/v1/webhook_endpoints", "http://127.0.0.1:${prism_port[square]}/v2/webhooks/subscriptions"]
secrets = ["STRIPE_SECRET_KEY", "SQUARE_ACCESS_TOKEN"]
[[plugin]]
name = "cdn"
path = "$target/plugins/cdn.wasm"
[plugin.grants]
urls = ["http://127.0.0.1:${prism_port[cloudflare]}/zones/023e105f4ecef8ad9ca31a8372d0c353"]
secrets = ["CLOUDFLARE_TOKEN"]
[secrets]
STRIPE_SECRET_KEY = { file = "$work/secrets/STRIPE_SECRET_KEY" }
SQUARE_ACCESS_TOKEN = { file = "$work/secrets/SQUARE_ACCESS_TOKEN" }
CLOUDFLARE_TOKEN = { file = "$work/secrets/CLOUDFLARE_TOKEN" }
SLACK_EMERGENCY_WEBHOOK = { file = "$work/secrets/SLACK_EMERGENCY_WEBHOOK" }
TOML
} >"$work/app-1.toml"
{
  agent_config app-2
  app_plugins app-2
  cat <<TOML
[secrets]
SLACK_EMERGENCY_WEBHOOK = { file = "$work/secrets/SLACK_EMERGENCY_WEBHOOK" }
TOML
} >"$work/app-2.toml"
{
  agent_config db-1
  cat <<TOML
[[plugin]]
name = "db"
path = "$target/plugins/db.wasm"
[plugin.grants]
programs = ["pg_dump", "pg_restore", "psql", "sha256sum", "stat", "ls"]
# Rehearsals read the database (psql, in read-only sessions) but not the
# migrations folder (ls): the audit compares against the schema after
# migrate-down, which a rehearsal does not run, so there it says what it would do.
dry_run_programs = ["psql"]
read = ["$hosts/db-1/backups", "$hosts/db-1/samia-tarot/migrations"]
write = ["$hosts/db-1/backups"]
secrets = ["DB_PASSWORD"]
[secrets]
DB_PASSWORD = { file = "$work/secrets/DB_PASSWORD" }
# db-1 runs migrate-down only with the three approvals the plan asks for,
# each signed by its operator, which this agent verifies itself.
[[approval_policy]]
action = "db.migrate-down"
roles = ["dba", "technical-lead", "product-owner"]
TOML
} >"$work/db-1.toml"

declare -A agent_pid
for a in app-1 app-2 db-1; do
  "$agent" --config "$work/$a.toml" >/dev/null 2>"$work/$a.log" &
  agent_pid[$a]=$!
  pids+=($!)
done

export BACKOUT_COORDINATOR=$addr BACKOUT_PKI=$work/pki BACKOUT_OPERATOR=demo-release-manager
connected=0
for _ in $(seq 1 600); do
  for a in app-1 app-2 db-1; do
    kill -0 "${agent_pid[$a]}" 2>/dev/null || { echo "agent $a stopped:" >&2; cat "$work/$a.log" >&2; exit 1; }
  done
  connected=$("$backout" agents --output json 2>/dev/null | grep -o '"connected":true' | wc -l || true)
  [ "$connected" -ge 3 ] && break
  sleep 0.2
done
[ "$connected" -ge 3 ] || { echo "the agents did not connect" >&2; tail -5 "$work"/*-?.log >&2; exit 1; }
if $ha; then
  echo "coordinators on $addr, journal and leader lease in PostgreSQL (mutual TLS 1.3; commands signed with ed25519)" | indent
  "$backout" status | indent
else
  echo "coordinator on $addr (mutual TLS 1.3; commands signed with ed25519)" | indent
fi
"$backout" agents | indent
explain "each agent loads its plugins (WebAssembly, sandboxed) only if its configuration grants what they declare"
explain "they need: programs, URLs, paths, secrets (see $work/app-1.toml)"

# ---------------------------------------------------------------------------
# 6. Healthy, then the bad deploy
# ---------------------------------------------------------------------------
for _ in $(seq 1 40); do
  # (assess exits 3 while a trigger has no data: the check below decides.)
  { "$backout" assess --output json 2>/dev/null || true; } | python3 -c '
import json, sys
signals = {s["name"]: s for s in json.load(sys.stdin)["matrix"]["signals"]}
ok = all(signals[n]["value"] is not None for n in ("error_rate", "p95_latency", "service_up"))
sys.exit(0 if ok else 1)' && break
  sleep 1
done
say "backout assess: every host's health checks, then the decision matrix (v2.3.1: all quiet)"
set +e
"$backout" assess | indent
set -e

say "02:00, the deploy of v2.4.0: both hosts check it out and restart; its migration 026 runs on db-1"
deploy_time=$(date -u +%Y-%m-%dT%H:%M:%SZ)
"$backout" guard --interval 1s --deploy-time "$deploy_time" >"$work/guard.out" 2>&1 &
guard_pid=$!
pids+=($guard_pid)
for h in app-1 app-2; do
  (
    cd "$hosts/$h/samia-tarot"
    # The deploy pipeline keeps the live config aside, as the seed's rollback expects.
    cp config/production.env config/production.env.backup
    git -c advice.detachedHead=false checkout -q v2.4.0
  )
  sh "$demo/service.sh" stop "$hosts/$h"
  sh "$demo/service.sh" start "$hosts/$h"
done
git -C "$hosts/db-1/samia-tarot" -c advice.detachedHead=false checkout -q v2.4.0
migrate_up 026_m29_checkout_flow_v2
for h in app-1 app-2; do
  for _ in $(seq 1 100); do http_ok "${app_url[$h]}/health" && break; sleep 0.1; done
  echo "$h  /health -> $(http_get "${app_url[$h]}/health")" | indent
done
# Customers keep buying during the incident: rows the rollback window holds.
sql >/dev/null <<'SQL'
INSERT INTO profiles (email) SELECT 'new' || i || '@example.com' FROM generate_series(1, 3) i;
INSERT INTO orders (profile_id, total_cents) SELECT 40 + i % 3, 189900 FROM generate_series(1, 9) i;
INSERT INTO checkout_sessions (order_id) SELECT id FROM orders WHERE checkout_flow = 'v2' AND created_at > now() - interval '1 hour';
INSERT INTO payment_transactions (order_id, amount_cents)
  SELECT id, 189900 FROM orders WHERE created_at > now() - interval '1 hour' ORDER BY id LIMIT 7;
SQL
echo "db-1  migration 026_m29_checkout_flow_v2 applied; since the deploy: 3 sign-ups, 9 orders, 7 payments of \$1,899" | indent

say "backout guard watches the decision matrix: 12% errors and 2.5 s responses since the deploy"
explain "the app's traffic (20 requests a second per host) is counted in /metrics, scraped by Prometheus;"
explain "each trigger must hold for its window (10 s here, 15 minutes in the seed) before it FIRES"
for _ in $(seq 1 60); do
  grep -q "High Error Rate: breaching -> FIRED" "$work/guard.out" 2>/dev/null &&
    grep -q "Performance Degradation: breaching -> FIRED" "$work/guard.out" 2>/dev/null && break
  sleep 1
done
sleep 1
kill "$guard_pid" 2>/dev/null || true
indent <"$work/guard.out"

say "backout assess again: the evidence (providers down, errors in the log, the triggers FIRED)"
set +e
"$backout" assess --deploy-time "$deploy_time" | indent
set -e

# ---------------------------------------------------------------------------
# 7. Rehearsal, then the run
# ---------------------------------------------------------------------------
phases=immediate-response,application,database,external-services,stabilisation,communication
say "Rehearse first: backout rollback start --dry-run (no approvals; each plugin says what it would do, changes nothing)"
explain "the database phase is optional in the plan (high risk): the run names it because v2.4.0 came with a migration"
explain "read-only calls run for real: health checks, database reads and the providers' current settings, as they are now"
"$backout" rollback start --reason "rehearsal" --phases "$phases" --dry-run | indent || true

say "The on-call engineer (demo-oncall) starts the rollback to v2.3.1; it waits for its approvers"
reason="High Error Rate and Performance Degradation fired after the v2.4.0 deploy (12% 5xx, p95 2.5 s)"
echo "\$ backout rollback start --reason \"$reason\" --to v2.3.1 --phases $phases" | indent
run_json=$(BACKOUT_OPERATOR=demo-oncall "$backout" rollback start --reason "$reason" --to v2.3.1 \
  --phases "$phases" --output json)
run_id=$(printf '%s' "$run_json" | json 'd["run"]')
echo "run $run_id: $(printf '%s' "$run_json" | json 'd["status"]')" | indent

# The approvers, each under their own certificate: the run (release manager +
# technical lead), then the database phase when it asks (DBA + technical lead
# + product owner). In real life these are people at their own terminals.
approve() { # operator, args...
  local op=$1
  shift
  printf '%s  %-22s (%s) $ backout approve %s\n' "$(date +%H:%M:%S)" "$op" "${role_of[$op]}" "$*"
  BACKOUT_OPERATOR=$op "$backout" approve "$@" --output json 2>&1 | python3 -c '
import json, sys
text = sys.stdin.read()
try:
    run = json.loads(text)
except ValueError:
    print("           " + text.strip().replace("\n", "\n           "))
    sys.exit()
parts = [p["scope"] + " waits for " + " + ".join(p["roles"]) for p in run["pending_approvals"]]
print("           -> run " + run["status"] + "".join("; " + w for w in parts))'
}
(
  sleep 2
  approve demo-release-manager "$run_id"
  sleep 1
  approve demo-tech-lead "$run_id"
  for _ in $(seq 1 300); do
    "$backout" runs --output json 2>/dev/null | python3 -c '
import json, sys
run = [r for r in json.load(sys.stdin)["runs"] if r["run"] == sys.argv[1]][0]
sys.exit(0 if any(p["id"] == "database" and p["status"] == "awaiting-approval" for p in run["phases"]) else 1)' "$run_id" && break
    sleep 0.5
  done
  sleep 1
  approve demo-dba "$run_id" --phase database
  approve demo-tech-lead "$run_id" --phase database
  approve demo-product-owner "$run_id" --phase database
) >"$work/approvals.log" 2>&1 &
pids+=($!)

if $ha; then
  # The leader dies (SIGKILL, as a lost host) once the database phase runs.
  (
    for _ in $(seq 1 1200); do
      "$backout" runs --output json 2>/dev/null | python3 -c '
import json, sys
run = [r for r in json.load(sys.stdin)["runs"] if r["run"] == sys.argv[1]][0]
sys.exit(0 if any(p["id"] == "database" and p["status"] == "running" for p in run["phases"]) else 1)' "$run_id" && break
      sleep 0.2
    done
    echo "$(date +%H:%M:%S) the database phase runs: SIGKILL the leading coordinator (pid ${coordinator_pid[a]}, ${coordinator_addr[a]})"
    kill -9 "${coordinator_pid[a]}"
  ) >"$work/kill.log" 2>&1 &
  pids+=($!)
fi

say "backout watch $run_id: every phase and host, live"
explain "(while the approvers approve: their commands are shown after the run)"
set +e
"$backout" watch "$run_id"
watch_code=$?
set -e
echo "watch exited with $watch_code (0: the run succeeded)" | indent

if $ha; then
  say "The leader was killed during the database phase; the standby took the lease and finished the run"
  indent <"$work/kill.log"
  # The watch above ended with the leader. Once its lease has expired (3 s)
  # the standby takes it; until then the CLI hears "the leader is" the dead one.
  for _ in $(seq 1 120); do
    "$backout" status --output json 2>/dev/null | python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin)["epoch"] >= 2 else 1)' 2>/dev/null && break
    sleep 0.5
  done
  # Follow the run to its end on the coordinator that leads now.
  set +e
  "$backout" watch "$run_id" >"$work/watch-after.out" 2>&1
  watch_code=$?
  set -e
  tail -3 "$work/watch-after.out" | indent
  echo "watch (on the new leader) exited with $watch_code (0: the run succeeded)" | indent
  [ "$watch_code" = 0 ] || { echo "the run did not succeed after the takeover" >&2; tail -20 "$work/coordinator-b.log" >&2; exit 1; }
  "$backout" status | indent
  grep -h 'took the leader lease' "$work/coordinator-b.log" | tail -1 | indent
  say "Every step ran once: the step ids each agent ran, from their logs"
  python3 - "$work" <<'PY' | indent
import collections, pathlib, re, sys
work = pathlib.Path(sys.argv[1])
ran = collections.Counter()
for log in ("app-1.log", "app-2.log", "db-1.log"):
    for line in (work / log).read_text(errors="replace").splitlines():
        if "running step" in line:
            m = re.search(r'step_id="?([^" ]+)"?', line)
            if m:
                ran[m.group(1)] += 1
twice = {s: n for s, n in ran.items() if n > 1}
print(f"{len(ran)} step ids run on the agents, {sum(ran.values())} runs: "
      + ("each exactly once" if not twice else f"RUN MORE THAN ONCE: {twice}"))
sys.exit(1 if twice else 0)
PY
fi

say "Who approved, each under their own certificate"
indent <"$work/approvals.log"
echo "db-1's agent checked the signed approvals itself before migrate-down:" | indent
grep -h 'signed approvals verified' "$work/db-1.log" | tail -1 | sed 's/.*approvers=/  approvers: /' | indent
grep -q 'signed approvals verified' "$work/db-1.log" || { echo "db-1 did not verify the approvals" >&2; exit 1; }

# ---------------------------------------------------------------------------
# 8. Where we are now
# ---------------------------------------------------------------------------
say "The app: both hosts answer from v2.3.1 STABLE again"
for h in app-1 app-2; do
  echo "$h  /health -> $(http_get "${app_url[$h]}/health" 2>&1)   checkout: $(git -C "$hosts/$h/samia-tarot" log -1 --format='%h %s')" | indent
  echo "      config: $(grep -h '^CHECKOUT_FLOW\|^ERROR_RATE' "$hosts/$h/samia-tarot/config/production.env" | tr '\n' ' ')" | indent
done

say "The database: a verified backup first, then migrated down to 025 (v2.3.1's schema)"
for f in "$hosts/db-1/backups"/*.dump; do
  echo "backup $(basename "$f"): $(du -h "$f" | cut -f1), $(pg_restore --list "$f" | grep -c ' TABLE DATA ') tables' data, pg_restore --list reads it" | indent
done
echo "applied migrations: $(sql -c "SELECT string_agg(version, ', ' ORDER BY version) FROM schema_migrations")" | indent
echo "checkout_sessions table: $(sql -c "SELECT coalesce(to_regclass('public.checkout_sessions')::text, 'gone')")" | indent
echo "rows kept: profiles $(sql -c 'SELECT count(*) FROM profiles'), orders $(sql -c 'SELECT count(*) FROM orders'), payment_transactions $(sql -c 'SELECT count(*) FROM payment_transactions')" | indent

say "The providers: what Prism received (each request checked against the provider's published API)"
for api in stripe square cloudflare; do
  python3 - "$work/prism-$api.log" "$api" <<'PY' | indent
import sys
log, api = sys.argv[1], sys.argv[2]
text = open(log).read()
seen = []
for line in text.splitlines():
    if "Request received" in line and "[HTTP SERVER] " in line:
        words = line.split("[HTTP SERVER] ", 1)[1].split()
        seen.append(f"{words[0].upper()} {words[1]}")
violations = text.count("Violation: request")
print(f"{api:<10} " + (", ".join(seen) or "no request") + f"  ({violations} rejected)")
PY
done
explain "each step read the setting first and recorded it (\`previous\`), in the dry run too: the report has before and after"

say "Slack (#emergency-response): what the receiver got"
# End and escalation messages go out just after the run ends.
for _ in $(seq 1 40); do
  [ "$(wc -l <"$work/slack.jsonl" 2>/dev/null || echo 0)" -ge 5 ] && break
  sleep 0.5
done
python3 - "$work/slack.jsonl" <<'PY' | indent
import json, sys
for line in open(sys.argv[1]):
    post = json.loads(line)
    message = post["message"]
    title = next((b["text"]["text"] for b in message.get("blocks", []) if b["type"] == "header"), "")
    lines = [l for l in message.get("text", "").splitlines() if l.strip()]
    print(f"{post['at']}  {title}")
    for l in lines[:4]:
        print(f"          {l}")
    if len(lines) > 4:
        print(f"          ... ({len(lines) - 4} more lines)")
PY

# ---------------------------------------------------------------------------
# 9. Audit and report
# ---------------------------------------------------------------------------
say "backout audit verify: every decision, command and outcome is in a hash-chained journal, its checkpoints signed"
"$backout" audit verify --config "$work/coordinator.toml" --key "$work/pki/checkpoint-signing.pub" | indent

say "backout report $run_id: the post-rollback report, from the journal"
report_dir=${BACKOUT_DEMO_REPORTS:-/tmp/backout-demo-report}
mkdir -p "$report_dir"
"$backout" report "$run_id" --format md --out "$report_dir/report.md"
"$backout" report "$run_id" --format html --out "$report_dir/report.html"
"$backout" report "$run_id" --format json --out "$report_dir/report.json"
sed -n '/## Success criteria/,/^## [^S]/p' "$report_dir/report.md" | sed '$d' | indent
python3 - "$report_dir/report.json" <<'PY' | indent
import json, sys
r = json.load(open(sys.argv[1]))
rto = next(c for c in r["success"] if c["name"].startswith("Recovery time"))
print(f"RTO: {rto['measured']} (target {rto['target']}, {'met' if rto['met'] else 'NOT met'}); "
      f"run {r['run']['duration_ms'] / 1000:.1f} s from start to end, approvals included")
t = r["run"]["timing"]
print(f"where the time went: {t['in_steps_ms'] / 1000:.1f} s in steps on the agents, "
      f"{t['waiting_ms'] / 1000:.1f} s waiting for approvals, "
      f"{t['orchestration_ms'] / 1000:.2f} s Backout's own orchestration (goal < 1 s)")
figures = r.get("figures", {})
if figures:
    print("figures: " + ", ".join(f"{k} {v:,.0f}" if float(v).is_integer() else f"{k} {v:,.2f}"
                                    for k, v in figures.items() if isinstance(v, (int, float))))
for e in r.get("escalations", []):
    print(f"escalation {e['who']}: {e['when']} -> {e['state']}")
PY
echo "report: $report_dir/report.md, $report_dir/report.html (and report.json)" | indent
say "The run's signed checkpoint, as the report and the end-of-run message announce it: the journal still holds it"
checkpoint=$(python3 -c 'import json, sys; c = json.load(open(sys.argv[1]))["checkpoint"]; print("%s:%s" % (c["seq"], c["hash"]))' "$report_dir/report.json")
"$backout" audit verify --config "$work/coordinator.toml" --key "$work/pki/checkpoint-signing.pub" --checkpoint "$checkpoint" | indent
if $ha; then
  say "The report shows the takeover (its section \"Leader and takeovers\", from $report_dir/report.md)"
  sed -n '/^## Leader and takeovers/,/^## /p' "$report_dir/report.md" | sed '1d;$d' | sed '/^$/d' | indent
  python3 - "$report_dir/report.json" <<'PY' | indent
import json, sys
l = json.load(open(sys.argv[1])).get("leadership") or {}
ok = bool(l.get("takeovers")) and not l.get("answered_twice")
if ok:
    t = l["takeovers"][-1]
    print(f"report.json: epoch {t['from_epoch']} -> {t['epoch']} ({t['previous']}), "
          f"{t['re_asked']} step(s) asked again, {l['steps']} steps each answered once")
else:
    print(f"report.json: NO TAKEOVER, OR A STEP ANSWERED TWICE: {l}")
sys.exit(0 if ok else 1)
PY
fi

elapsed=$(( $(date +%s) - started_at ))
say "Done in ${elapsed}s: v2.4.0 rolled back to v2.3.1 STABLE on both hosts, database at 025, providers restored, people told"

if $keep; then
  say "The dashboard: the same incident in a browser, as demo-release-manager (loopback only)"
  "$backout" dashboard --listen "127.0.0.1:$(free_port)" >"$work/dashboard.out" 2>"$work/dashboard.log" &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q '^backout: dashboard on ' "$work/dashboard.out" 2>/dev/null && break; sleep 0.1; done
  dashboard_url=$(sed -n 's/^backout: dashboard on //p' "$work/dashboard.out")
  echo "dashboard: ${dashboard_url:-did not start, see $work/dashboard.log}   (run: ${dashboard_url}runs/$run_id)" | indent
  explain "Now, Fleet, Runs, each run live, its approvals and its report; it acts with demo-release-manager's certificate"
  say "The fleet keeps running. In another shell:"
  cat <<EOF | indent
export BACKOUT_COORDINATOR=$addr BACKOUT_PKI=$work/pki BACKOUT_OPERATOR=demo-release-manager
$backout agents
$backout assess
$backout runs
$backout report $run_id
$backout rollback start --reason "try it" --dry-run
EOF
  echo "Configurations, logs and the plan are in $work. Press Ctrl-C here to stop everything and remove it." | indent
  # In the background, so that Ctrl-C (or a TERM) is handled at once.
  sleep infinity &
  pids+=($!)
  wait $!
fi
