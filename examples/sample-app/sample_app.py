#!/usr/bin/env python3
"""A stand-in for the Samia Tarot app, for the demo and the end-to-end tests.

Health endpoints (as in the plan's section 1.1):
  /health, /api/health, /api/health/database  200
  /api/health/providers                        200, or 503 with --providers-down
  /api/orders/health                           200 after 600 ms

Prometheus metrics at /metrics, fed by built-in traffic (20 requests a second):
  http_requests_total{code}                    5xx share = the fault's error_rate
  http_request_duration_seconds (histogram)    latency = the fault's latency_ms
  payments_total{result}, registrations_total{result}

A fault can be switched on at run time, the way a bad deploy would:
  curl -X POST http://HOST:PORT/admin/fault -d '{"error_rate": 0.12, "latency_ms": 2500}'

It binds 127.0.0.1 on a free port and writes the port to --port-file.
"""
import argparse
import http.server
import json
import os
import threading
import time

BUCKETS = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0]


class Metrics:
    def __init__(self):
        self.lock = threading.Lock()
        self.fault = {"error_rate": 0.0, "latency_ms": 80.0, "payment_failure_rate": 0.0,
                      "registration_failure_rate": 0.0}
        self.requests = {"200": 0, "500": 0}
        self.buckets = [0] * len(BUCKETS)
        self.count = 0
        self.sum = 0.0
        self.payments = {"succeeded": 0, "failed": 0}
        self.registrations = {"succeeded": 0, "failed": 0}
        # Error accumulators make the shares exact, not random.
        self.acc = {"error": 0.0, "payment": 0.0, "registration": 0.0}

    def tick(self):
        with self.lock:
            f = self.fault
            for key, rate, table, bad, good in (
                ("error", f["error_rate"], self.requests, "500", "200"),
                ("payment", f["payment_failure_rate"], self.payments, "failed", "succeeded"),
                ("registration", f["registration_failure_rate"], self.registrations, "failed", "succeeded"),
            ):
                self.acc[key] += rate
                if self.acc[key] >= 1.0:
                    self.acc[key] -= 1.0
                    table[bad] += 1
                else:
                    table[good] += 1
            latency = f["latency_ms"] / 1000.0
            self.count += 1
            self.sum += latency
            for i, bound in enumerate(BUCKETS):
                if latency <= bound:
                    self.buckets[i] += 1

    def render(self):
        with self.lock:
            lines = ["# TYPE http_requests_total counter"]
            for code, n in self.requests.items():
                lines.append(f'http_requests_total{{code="{code}"}} {n}')
            lines.append("# TYPE http_request_duration_seconds histogram")
            for bound, n in zip(BUCKETS, self.buckets):
                lines.append(f'http_request_duration_seconds_bucket{{le="{bound}"}} {n}')
            lines.append(f'http_request_duration_seconds_bucket{{le="+Inf"}} {self.count}')
            lines.append(f"http_request_duration_seconds_sum {self.sum}")
            lines.append(f"http_request_duration_seconds_count {self.count}")
            lines.append("# TYPE payments_total counter")
            for result, n in self.payments.items():
                lines.append(f'payments_total{{result="{result}"}} {n}')
            lines.append("# TYPE registrations_total counter")
            for result, n in self.registrations.items():
                lines.append(f'registrations_total{{result="{result}"}} {n}')
            return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--error-log", required=True)
    parser.add_argument("--providers-down", action="store_true")
    args = parser.parse_args()

    metrics = Metrics()
    routes = {
        "/health": (200, "ok", 0.0),
        "/api/health": (200, "ok", 0.0),
        "/api/health/database": (200, "ok", 0.0),
        "/api/health/providers": (503, "stripe: connection reset", 0.0) if args.providers_down else (200, "ok", 0.0),
        "/api/orders/health": (200, "ok", 0.6),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, status, body, content_type="text/plain"):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/metrics":
                return self.reply(200, metrics.render(), "text/plain; version=0.0.4")
            status, body, delay = routes.get(self.path, (404, "not found", 0.0))
            time.sleep(delay)
            self.reply(status, body)

        def do_POST(self):
            if self.path != "/admin/fault":
                return self.reply(404, "not found")
            length = int(self.headers.get("Content-Length", "0"))
            try:
                change = json.loads(self.rfile.read(length) or b"{}")
                with metrics.lock:
                    for key, value in change.items():
                        if key not in metrics.fault:
                            raise ValueError(f"unknown fault {key}")
                        metrics.fault[key] = float(value)
                    fault = dict(metrics.fault)
            except (ValueError, TypeError) as e:
                return self.reply(400, str(e))
            with open(args.error_log, "a") as log:
                log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} ERROR fault injected: {json.dumps(fault)}\n")
            self.reply(200, json.dumps(fault), "application/json")

        def log_message(self, *a):
            pass

    with open(args.error_log, "a") as log:
        for i in range(40):
            log.write(f"2026-01-15T02:{i:02d}:00Z INFO request served\n")
        if args.providers_down:
            for i in range(4):
                log.write(f"2026-01-15T02:4{i}:00Z ERROR payment provider timeout\n")

    def traffic():
        while True:
            metrics.tick()
            time.sleep(0.05)

    threading.Thread(target=traffic, daemon=True).start()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
