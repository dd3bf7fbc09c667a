#!/usr/bin/env bash
# The SDK is a real crate: a copy of plugins/sdk (its template inside) in a
# directory outside this workspace builds the template for wasm32-wasip2 and
# passes the template's own tests, offline, from the registry cache alone
# (no path into this repository, no workspace-inherited field). It compiles
# wit-bindgen, serde and schemars from scratch (minutes), so it is a step of
# scripts/test.sh rather than a test.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp -r "$root/plugins/sdk" "$work/backout-plugin-sdk"
rm -rf "$work/backout-plugin-sdk/target" "$work/backout-plugin-sdk/template/target"
mv "$work/backout-plugin-sdk/template" "$work/my-plugin"
# The template points at `..` inside the repository; an author points it at
# their copy (or a git or registry dependency).
sed -i 's|^backout-plugin-sdk = { path = ".." }|backout-plugin-sdk = { path = "../backout-plugin-sdk" }|' "$work/my-plugin/Cargo.toml"
grep -q 'path = "../backout-plugin-sdk"' "$work/my-plugin/Cargo.toml"

cd "$work/my-plugin"
cargo build --offline --release --target wasm32-wasip2 --target-dir "$work/target"
test -s "$work/target/wasm32-wasip2/release/plugin_template.wasm"
cargo test --offline --target-dir "$work/target"
echo "the SDK builds and tests outside the workspace, offline: $work/target/wasm32-wasip2/release/plugin_template.wasm"
