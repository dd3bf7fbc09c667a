#!/usr/bin/env python3
"""A stand-in for Slack's incoming webhooks, for the demo: answers `ok` to
every POST under /services/ (as Slack does) and appends what was posted, one
JSON object a line, to --out. Binds 127.0.0.1 on a free port and writes the
port to --port-file.

  python3 slack_receiver.py --port-file slack.port --out slack.jsonl
"""
import argparse
import http.server
import json
import os
import time

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--port-file", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not self.path.startswith("/services/"):
            self.send_response(404)
            self.end_headers()
            return
        try:
            message = json.loads(body)
        except ValueError:
            message = {"text": body.decode(errors="replace")}
        with open(args.out, "a") as out:
            out.write(json.dumps({"at": time.strftime("%H:%M:%S"), "path": self.path, "message": message}) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.replace(args.port_file + ".tmp", args.port_file)
server.serve_forever()
