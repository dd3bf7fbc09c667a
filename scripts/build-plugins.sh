#!/usr/bin/env bash
# Builds the bundled plugins as WebAssembly components and copies them to
# target/plugins/<name>.wasm, where the agent's tests and the demo load them.
#
# A cdylib built for wasm32-wasip2 is already a component: no cargo-component
# or wasm-tools step is needed. Respects CARGO_TARGET_DIR.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target_dir="${CARGO_TARGET_DIR:-$root/target}"
plugins=(health testbed app webhook cdn notify db statuspage flags)

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2 >/dev/null 2>&1
fi

packages=()
for plugin in "${plugins[@]}"; do
    packages+=(-p "backout-plugin-$plugin")
done

cargo build --release --target wasm32-wasip2 "${packages[@]}"

mkdir -p "$target_dir/plugins"
for plugin in "${plugins[@]}"; do
    artifact="$target_dir/wasm32-wasip2/release/backout_plugin_${plugin}.wasm"
    cp "$artifact" "$target_dir/plugins/$plugin.wasm.tmp"
    # Renamed into place so a running agent never reads a half-copied file.
    mv "$target_dir/plugins/$plugin.wasm.tmp" "$target_dir/plugins/$plugin.wasm"
    echo "built $target_dir/plugins/$plugin.wasm ($(wc -c <"$target_dir/plugins/$plugin.wasm") bytes)"
done

# The example of a third-party plugin lives outside the workspace (its own
# Cargo.lock) and is built the way its author would build it.
cargo build --release --target wasm32-wasip2 --target-dir "$target_dir" --manifest-path examples/plugin-maintenance/Cargo.toml
cp "$target_dir/wasm32-wasip2/release/plugin_maintenance.wasm" "$target_dir/plugins/maintenance.wasm.tmp"
mv "$target_dir/plugins/maintenance.wasm.tmp" "$target_dir/plugins/maintenance.wasm"
echo "built $target_dir/plugins/maintenance.wasm (example, outside the workspace)"
# The template must keep compiling too.
# It is a cargo-generate template: rendered first (as plugin `template`).
rm -rf "$target_dir/template"
scripts/render-template.sh "$target_dir/template" template "$root/plugins/sdk"
cargo build --release --target wasm32-wasip2 --target-dir "$target_dir" --manifest-path "$target_dir/template/Cargo.toml"
