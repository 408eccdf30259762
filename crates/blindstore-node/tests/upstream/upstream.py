"""A small HTTP service for the reverse-proxy tests: prints its port, then answers
  /echo...   the request as JSON (method, path, query, headers, body length), with a cookie
  /slow      after 3 seconds
  /big       11 MiB
  /seen      the paths of every request so far
Every answer also tries to act as the page's origin: it sets a cookie, Clear-Site-Data,
Service-Worker-Allowed and Refresh.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


SEEN = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        if not path.endswith("/seen"):
            SEEN.append(self.path)
        if path.endswith("/slow"):
            time.sleep(3)
        if path.endswith("/seen"):
            data = json.dumps(SEEN).encode()
            content_type = "application/json"
        elif path.endswith("/big"):
            data = b"x" * (11 << 20)
            content_type = "application/octet-stream"
        else:
            data = json.dumps({
                "method": self.command,
                "path": path,
                "query": query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body_len": len(body),
            }).encode()
            content_type = "application/json"
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.send_header("set-cookie", "session=upstream")
        self.send_header("x-upstream", "yes")
        self.send_header("clear-site-data", '"*"')
        self.send_header("service-worker-allowed", "/")
        self.send_header("refresh", "0; url=https://evil.example/")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = answer


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hung up early (the proxy refusing a large answer) is expected


server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
sys.exit(0)
