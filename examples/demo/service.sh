#!/bin/sh
# The demo's stand-in for `systemctl start|stop samia-tarot-app` on one
# "host": every host is a directory on this machine,
#   HOST/samia-tarot   the app's git checkout (what the app plugin rolls back)
#   HOST/port          the port this host's app listens on
#   HOST/log           error.log (read by the health and app plugins), app.out
#   HOST/run           app.pid
# The app plugin runs it through `sh` (granted to it on the agent), as its
# `manager = { start = [...], stop = [...] }`.
set -eu
verb=$1
host=$2
case "$verb" in
  start)
    mkdir -p "$host/log" "$host/run"
    cd "$host/samia-tarot"
    nohup python3 app.py --port "$(cat "$host/port")" --log-dir "$host/log" --run-dir "$host/run" \
      >>"$host/log/app.out" 2>&1 </dev/null &
    echo $! >"$host/run/app.pid"
    ;;
  stop)
    [ -s "$host/run/app.pid" ] || exit 0
    pid=$(cat "$host/run/app.pid")
    kill "$pid" 2>/dev/null || true
    # Like systemctl stop: return once it is gone.
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$host/run/app.pid"
    ;;
  *)
    echo "usage: $0 start|stop HOST_DIR" >&2
    exit 2
    ;;
esac
