#!/usr/bin/env python3
"""The demo's stand-in for the Samia Tarot app: a few health endpoints.

/health and /api/health/database answer 200, /api/health/providers 503 (a
payment provider is failing), /api/orders/health answers after 600 ms. It
binds 127.0.0.1 on a free port and writes the port to the file given as its
first argument, and appends a few lines to the error log given as its second.
"""
import http.server
import sys
import time

ROUTES = {
    "/health": (200, "ok", 0.0),
    "/api/health": (200, "ok", 0.0),
    "/api/health/database": (200, "ok", 0.0),
    "/api/health/providers": (503, "stripe: connection reset", 0.0),
    "/api/orders/health": (200, "ok", 0.6),
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, body, delay = ROUTES.get(self.path, (404, "not found", 0.0))
        time.sleep(delay)
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    port_file, error_log = sys.argv[1], sys.argv[2]
    with open(error_log, "a") as log:
        for i in range(40):
            log.write(f"2026-01-15T02:{i:02d}:00Z INFO request served\n")
        for i in range(4):
            log.write(f"2026-01-15T02:4{i}:00Z ERROR payment provider timeout\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
