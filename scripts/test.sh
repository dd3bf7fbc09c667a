#!/usr/bin/env bash
# Runs every check and test of the workspace, from a fresh clone, with nothing
# installed by hand: the wasm target, the plugins, the binaries, then fmt,
# clippy and the tests. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "real parts the tests start (Debian's prometheus, python3, chromium, postgresql-15, systemd, man-db; Prism from npm; cargo-deb)"
scripts/install-parts.sh
prometheus --version 2>&1 | head -1

step "plugins (wasm32-wasip2, release)"
scripts/build-plugins.sh

step "binaries (backout, backout-agent; with the crash tests' hooks)"
cargo build --bins --features backout/test-hooks

step "the SDK outside the workspace (a copy, its template rendered, wasm32-wasip2, offline, run by backout-agent plugin run)"
scripts/test-sdk-copy.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (host crates, then plugins)"
cargo clippy --all-targets -- -D warnings
plugin_packages=()
for plugin in $(sed -n 's/^plugins=(\(.*\))$/\1/p' scripts/build-plugins.sh); do
  plugin_packages+=(-p "backout-plugin-$plugin")
done
cargo clippy --target wasm32-wasip2 -p backout-plugin-sdk "${plugin_packages[@]}" -- -D warnings

step "tests"
# The plugins' pure parts are unit-tested on the host (their host calls
# are never reached there); then the workspace's own tests.
cargo test --no-fail-fast -p backout-plugin-sdk "${plugin_packages[@]}"
cargo test --no-fail-fast "$@"

step "the HA demo (scripts/demo.sh --ha: two coordinators on PostgreSQL, the leader SIGKILLed in the database phase)"
# It fails unless the standby finishes the run, every step id ran once on
# the agents, and the PostgreSQL journal verifies.
scripts/demo.sh --ha

step "load (bench-fanout: 50 sessions, one run of 5 steps, the journal accounted for)"
# A small load on the debug build: it fails unless every result of the run
# is in the journal (the exact entry count), the chain is intact, and every
# session comes back after the coordinator is killed and started again.
# The figures that go to BENCHMARKS.md come from the release build.
"${CARGO_TARGET_DIR:-target}/debug/bench-fanout" --runs 1 --steps 5 50
