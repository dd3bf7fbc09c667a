#!/usr/bin/env bash
# Runs every check and test of the workspace, from a fresh clone, with nothing
# installed by hand: the wasm target, the plugins, the binaries, then fmt,
# clippy and the tests. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "real parts the tests start (Debian's prometheus, python3, postgresql-15)"
scripts/install-parts.sh
prometheus --version 2>&1 | head -1

step "plugins (wasm32-wasip2, release)"
scripts/build-plugins.sh

step "binaries (backout, backout-agent)"
cargo build --bins

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (host crates, then plugins)"
cargo clippy --all-targets -- -D warnings
cargo clippy --target wasm32-wasip2 -p backout-plugin-sdk -p backout-plugin-health -p backout-plugin-testbed -p backout-plugin-db -- -D warnings
# The db plugin's pure parts (migration files, quoting, times) are tested on the host.
cargo clippy -p backout-plugin-db --tests -- -D warnings

step "tests"
cargo test -p backout-plugin-db
cargo test --no-fail-fast "$@"
