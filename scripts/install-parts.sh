#!/usr/bin/env bash
# Installs the real parts that the tests and the demo start, when missing:
# Debian's prometheus, python3 (for the sample app), chromium (headless, to
# open the HTML report) and chromium-driver (WebDriver, for the dashboard's
# browser tests), nodejs/npm, and PostgreSQL 15 (server binaries
# initdb/pg_ctl/postgres for the db plugin's tests, the clients
# psql/pg_dump/pg_restore the plugin runs; the package also creates the
# `postgres` user the tests run the server as when they run as root); and Prism (the OpenAPI mock server
# the provider tests check plugins' requests against) from the npm registry
# into target/node; for the package tests, systemd (systemd-analyze), man-db
# (`systemd-analyze verify` opens the man pages a unit names), adduser and
# util-linux (prlimit) from Debian, and cargo-deb (pinned) from crates.io; and
# aiosmtpd (the e-mail tests' SMTP server) from PyPI into the venv
# target/py/smtp (python3-venv from Debian). Needs root and apt on a fresh
# machine for the Debian packages; does nothing when everything is there.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

# command -> Debian package
declare -A parts=(
  [prometheus]=prometheus
  [python3]=python3
  [chromium]=chromium
  [chromedriver]=chromium-driver
  [npm]=npm
  [systemd-analyze]=systemd
  [man]=man-db
  [adduser]=adduser
  [prlimit]=util-linux
)
have_postgres() {
  command -v psql >/dev/null 2>&1 && command -v pg_dump >/dev/null 2>&1 &&
    command -v pg_restore >/dev/null 2>&1 &&
    { command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
}

missing=()
for command in "${!parts[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${parts[$command]}")
done
have_postgres || missing+=(postgresql-15 postgresql-client-15)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
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

# Prism 5.14.2 is the last 5.x that runs on Debian's Node 20 (5.15 wants 24).
prism_version="5.14.2"
prism_prefix="$target_dir/node"
prism_package="$prism_prefix/node_modules/@stoplight/prism-cli/package.json"
if ! grep -qs "\"version\": \"$prism_version\"" "$prism_package"; then
  mkdir -p "$prism_prefix"
  npm install --prefix "$prism_prefix" --no-audit --no-fund --loglevel=error \
    "@stoplight/prism-cli@$prism_version" >/dev/null
fi

# cargo-deb 3.8.0 packages the debug binaries (`--no-build --profile dev`);
# scripts/build-debs.sh.
cargo_deb_version="3.8.0"
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $cargo_deb_version\|$cargo_deb_version"; then
  cargo install cargo-deb --locked --version "$cargo_deb_version" >/dev/null
fi

# aiosmtpd for the e-mail tests (tests/smtp/recorder.py), pinned, in its own venv.
aiosmtpd_version="1.4.6"
smtp_venv="$target_dir/py/smtp"
if ! "$smtp_venv/bin/python" -c "import sys, aiosmtpd; sys.exit(aiosmtpd.__version__ != '$aiosmtpd_version')" >/dev/null 2>&1; then
  python3 -m venv "$smtp_venv"
  "$smtp_venv/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==$aiosmtpd_version"
fi
