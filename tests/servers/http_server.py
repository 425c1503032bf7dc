"""A static HTTP file server for the tests, with byte ranges, and an
emulation of OCI Object Storage pre-authenticated requests (PARs).

Usage: python3 http_server.py DIR
Serves DIR on a free loopback port, prints `READY <port>` and serves until
its stdin closes (the test ends).

- GET/HEAD /files/<path>: the file, with `Range: bytes=a-b` answered 206.
- GET/HEAD /p/<token>/n/<namespace>/b/<bucket>/o/<name>: the object <name>
  (a file under DIR/<bucket>/), if <token> is `good-token`; 404 otherwise,
  as OCI answers a wrong or expired PAR.
- GET /p/<token>/n/<namespace>/b/<bucket>/o/ (optionally ?prefix=&start=):
  the JSON object listing OCI returns for a PAR that allows listing, two
  objects a page, with `nextStartWith` to page on.
"""

import email.utils
import json
import os
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(sys.argv[1])
TOKEN = "good-token"
PAGE = 2
PAR = re.compile(r"^/p/([^/]+)/n/([^/]+)/b/([^/]+)/o/(.*)$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.answer(head=True)

    def do_GET(self):
        self.answer(head=False)

    def answer(self, head):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        if path.startswith("/files/"):
            return self.send_file(os.path.join(ROOT, path[len("/files/"):]), head)
        m = PAR.match(path)
        if not m:
            return self.fail(404, "NotFound")
        token, _namespace, bucket, name = m.groups()
        if token != TOKEN:
            return self.fail(404, "BucketNotFound")
        base = os.path.join(ROOT, bucket)
        if name == "" or name.endswith("/") and not os.path.isfile(os.path.join(base, name)):
            query = urllib.parse.parse_qs(url.query)
            return self.listing(base, name + query.get("prefix", [""])[0], query.get("start", [""])[0], head)
        return self.send_file(os.path.join(base, name), head)

    def listing(self, base, prefix, start, head):
        names = []
        for root, _, files in os.walk(base):
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), base).replace(os.sep, "/")
                if rel.startswith(prefix) and rel >= start:
                    names.append(rel)
        names.sort()
        page, rest = names[:PAGE], names[PAGE:]
        objects = []
        for n in page:
            st = os.stat(os.path.join(base, n))
            objects.append({"name": n, "size": st.st_size, "timeModified": modified_iso(st.st_mtime), "etag": f"{st.st_mtime_ns:x}"})
        body = {"objects": objects}
        if rest:
            body["nextStartWith"] = rest[0]
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def send_file(self, path, head):
        if not os.path.isfile(path):
            return self.fail(404, "ObjectNotFound")
        size = os.path.getsize(path)
        start, end = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng:
            m = re.match(r"bytes=(\d*)-(\d*)$", rng.strip())
            if not m:
                return self.fail(416, "InvalidRange")
            a, b = m.groups()
            if a == "":
                start, end = max(0, size - int(b)), size - 1
            else:
                start, end = int(a), min(size - 1, int(b)) if b else size - 1
            if start >= size:
                return self.fail(416, "InvalidRange")
            status = 206
        st = os.stat(path)
        self.send_response(status)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{st.st_mtime_ns:x}"')
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not head:
            with open(path, "rb") as f:
                f.seek(start)
                self.wfile.write(f.read(end - start + 1))

    def fail(self, status, code):
        data = json.dumps({"code": code, "message": f"{code}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def modified_iso(ts):
    import datetime
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(f"READY {server.server_address[1]}", flush=True)
sys.stdin.read()
server.shutdown()
