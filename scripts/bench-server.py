#!/usr/bin/env python3
"""A small HTTP/1.1 file server for scripts/bench-fetch.sh, on a loopback address only.

Usage: bench-server.py DIR PORT RATE
  DIR   directory to serve
  PORT  TCP port on 127.0.0.1 (0 = any; the chosen port is printed as "port N")
  RATE  limit per response in bytes per second (0 = unlimited)

Answers GET (with `Range: bytes=N-`) and HEAD. Each response is paced to RATE with a
token bucket refilled every chunk, so a 100 MB/s limit holds on average; a chunk is at most a
tenth of a second's worth, so a slow rate (40 kB/s) paces a small file too.
"""
import http.server
import os
import sys
import time

CHUNK = 1 << 20


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_HEAD(self):
        self.serve(body=False)

    def do_GET(self):
        self.serve(body=True)

    def serve(self, body):
        path = os.path.join(self.server.root, self.path.lstrip("/").split("?")[0])
        path = os.path.realpath(path)
        if not path.startswith(self.server.root) or not os.path.isfile(path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = os.path.getsize(path)
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        if not body:
            return
        rate = self.server.rate
        began = time.monotonic()
        sent = 0
        with open(path, "rb") as f:
            f.seek(start)
            while True:
                data = f.read(min(CHUNK, max(4096, rate // 10)) if rate else CHUNK)
                if not data:
                    break
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client went away (stopped): nothing to report
                sent += len(data)
                if rate:
                    ahead = sent / rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)


def main():
    root, port, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.root = os.path.realpath(root)
    server.rate = rate
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
