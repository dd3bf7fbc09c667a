#!/usr/bin/env python3
"""Samia Tarot, demo build: the sample app (sample_app.py, copied from
examples/sample-app/ when the demo makes this repository) run the way a
release runs it:

  * on a fixed port (a host's port does not change across restarts);
  * /health and /version answer this release's VERSION as JSON;
  * config/production.env sets the release's behaviour: ERROR_RATE and
    LATENCY_MS of the built-in traffic (20 requests a second, counted in
    /metrics), PROVIDERS_DOWN=1 to fail /api/health/providers; while
    ERROR_RATE > 0 the failures are also written to the error log.

  python3 app.py --port 8081 --log-dir /var/log/samia-app --run-dir /run/samia-app
"""
import argparse
import http.server
import importlib.util
import json
import os
import sys
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--log-dir", required=True)
parser.add_argument("--run-dir", required=True)
args = parser.parse_args()

VERSION = open(os.path.join(here, "VERSION")).read().strip()
config = {}
for line in open(os.path.join(here, "config", "production.env")):
    line = line.strip()
    if line and not line.startswith("#") and "=" in line:
        key, value = line.split("=", 1)
        config[key.strip()] = value.strip()
error_rate = float(config.get("ERROR_RATE", "0"))
latency_ms = float(config.get("LATENCY_MS", "80"))

spec = importlib.util.spec_from_file_location("sample_app", os.path.join(here, "sample_app.py"))
sample = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sample)

# This release's faults, from its config, from the first request on.
plain_init = sample.Metrics.__init__


def init(self):
    plain_init(self)
    self.fault["error_rate"] = error_rate
    self.fault["latency_ms"] = latency_ms


sample.Metrics.__init__ = init


class Server(http.server.ThreadingHTTPServer):
    """The sample app's server on --port, answering the version at /health."""

    def __init__(self, address, handler):
        class Handler(handler):
            def do_GET(self):
                if self.path in ("/health", "/version"):
                    body = json.dumps({"status": "ok", "version": VERSION})
                    return self.reply(200, body, "application/json")
                return handler.do_GET(self)

        super().__init__((address[0], args.port), Handler)


http.server.ThreadingHTTPServer = Server

error_log = os.path.join(args.log_dir, "error.log")


def failures():
    # What the bad release's users see, as the app logs it.
    time.sleep(1)
    while True:
        with open(error_log, "a") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            log.write(f"{stamp} ERROR POST /api/checkout 500 after {latency_ms:.0f} ms: "
                      f"payment session timed out (v{VERSION})\n")
        time.sleep(2)


if error_rate > 0:
    threading.Thread(target=failures, daemon=True).start()

sys.argv = [sys.argv[0], "--port-file", os.path.join(args.run_dir, "port"), "--error-log", error_log]
if config.get("PROVIDERS_DOWN") == "1":
    sys.argv.append("--providers-down")
sample.main()
