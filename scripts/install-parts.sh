#!/usr/bin/env bash
# Installs the real parts that the tests and the demo start, when missing:
# Debian's prometheus and python3 (for the sample app). Needs root and apt on
# a fresh machine; does nothing when they are already there.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus python3 >/dev/null
else
  echo "prometheus and python3 are needed: apt-get install prometheus python3 (as root)" >&2
  exit 1
fi
