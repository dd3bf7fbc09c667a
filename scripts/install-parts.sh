#!/usr/bin/env bash
# Installs the real parts that the tests and the demo start, when missing:
# Debian's prometheus, python3 (for the sample app) and chromium (headless,
# to open the HTML report). Needs root and apt on a fresh machine; does
# nothing when they are already there.
set -euo pipefail

# command -> Debian package
declare -A parts=(
  [prometheus]=prometheus
  [python3]=python3
  [chromium]=chromium
)
missing=()
for command in "${!parts[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${parts[$command]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "needed: apt-get install ${missing[*]} (as root)" >&2
    exit 1
  fi
fi
