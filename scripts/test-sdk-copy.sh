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
rm -rf "$work/backout-plugin-sdk/target" "$work/backout-plugin-sdk/template"
# The template is a cargo-generate template: rendered as `cargo generate
# --name my-plugin` would (its placeholders: the name and the SDK's path).
"$root/scripts/render-template.sh" "$work/my-plugin" my-plugin ../backout-plugin-sdk
grep -q '^name = "my-plugin"' "$work/my-plugin/Cargo.toml"
grep -q 'path = "../backout-plugin-sdk"' "$work/my-plugin/Cargo.toml"

cd "$work/my-plugin"
cargo build --offline --release --target wasm32-wasip2 --target-dir "$work/target"
wasm="$work/target/wasm32-wasip2/release/my_plugin.wasm"
test -s "$wasm"
cargo test --offline --target-dir "$work/target"
echo "the SDK builds and tests outside the workspace, offline: $wasm"

# The rendered plugin runs as an agent would run it, under the name it was
# given (needs the agent binary: cargo build -p backout-agent).
agent="${CARGO_TARGET_DIR:-$root/target}/debug/backout-agent"
out="$("$agent" plugin run "$wasm" ping --params '{"url":"http://127.0.0.1:9/health"}' --grant urls=http://127.0.0.1:9/ --dry-run)"
echo "$out"
grep -q '^SUCCEEDED: would GET http://127.0.0.1:9/health' <<<"$out"
"$agent" plugin run "$wasm" nope --grant urls=http://127.0.0.1:9/ >/dev/null 2>&1 && { echo "an unknown action ran" >&2; exit 1; }
echo "the rendered template runs with backout-agent plugin run"
