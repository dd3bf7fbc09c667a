#!/usr/bin/env bash
# Installs the real parts that the tests and the demo start, when missing:
# Debian's prometheus and python3 (for the sample app), and PostgreSQL 15
# (server binaries initdb/pg_ctl/postgres for the db plugin's tests, and the
# clients psql/pg_dump/pg_restore the plugin runs; the package also creates
# the `postgres` user the tests run the server as when they run as root).
# Needs root and apt on a fresh machine; does nothing when all are there.
set -euo pipefail

have_postgres() {
  command -v psql >/dev/null 2>&1 && command -v pg_dump >/dev/null 2>&1 &&
    command -v pg_restore >/dev/null 2>&1 &&
    { command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
}

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
have_postgres || missing+=(postgresql-15 postgresql-client-15)
if [ "${#missing[@]}" = 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "needed: apt-get install ${missing[*]} (as root)" >&2
  exit 1
fi
