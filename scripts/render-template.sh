#!/usr/bin/env bash
# Renders the plugin template (plugins/sdk/template, a cargo-generate
# template) into DEST the way `cargo generate` would, without needing it:
# `{{project-name}}` becomes NAME and `{{sdk_path}}` SDK_PATH, and no
# placeholder may remain.
#
# Usage: scripts/render-template.sh DEST NAME SDK_PATH
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:?usage: render-template.sh DEST NAME SDK_PATH}"
name="${2:?usage: render-template.sh DEST NAME SDK_PATH}"
sdk_path="${3:?usage: render-template.sh DEST NAME SDK_PATH}"

mkdir -p "$dest"
(cd "$root/plugins/sdk/template" && tar --exclude=./target -cf - .) | (cd "$dest" && tar -xf -)
rm -f "$dest/cargo-generate.toml"
find "$dest" -type f \( -name '*.toml' -o -name '*.rs' -o -name '*.lock' -o -name '*.md' \) -print0 |
    xargs -0 sed -i -e "s|{{project-name}}|$name|g" -e "s|{{sdk_path}}|$sdk_path|g"
if grep -rn '{{' "$dest" --include='*.toml' --include='*.rs' --include='*.lock' --include='*.md'; then
    echo "render-template.sh: a placeholder was left unrendered in $dest" >&2
    exit 1
fi
