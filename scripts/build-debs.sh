#!/usr/bin/env bash
# Builds the Debian packages backout and backout-agent into OUT_DIR (default
# target/debian) with cargo-deb, from binaries already built: by default the
# debug ones the tests use (`cargo build --bins`), never a release build
# here; BACKOUT_DEB_PROFILE=release packages target/release instead (after
# your own `cargo build --release --bins`). The agent's package also takes
# the plugins from target/plugins (scripts/build-plugins.sh).
# cargo-deb is installed by scripts/install-parts.sh.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/target/debian}"
profile="${BACKOUT_DEB_PROFILE:-dev}"
mkdir -p "$out"
cd "$root"
# cargo-deb finds the binaries under CARGO_TARGET_DIR, but the plugins'
# paths in agent/Cargo.toml are fixed (../target/plugins): copy them there.
target_dir="$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")"
if [ "$target_dir" != "$root/target" ]; then
    mkdir -p "$root/target/plugins"
    cp "$target_dir"/plugins/*.wasm "$root/target/plugins/"
fi
for package in backout backout-agent; do
    cargo deb --quiet --package "$package" --no-build --profile "$profile" --output "$out" --fast
done
ls "$out"/*.deb
