#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Python peers for tests/net/http.c (python3 standard library only).

  http_peers.py server
      A ThreadingHTTPServer speaking HTTP/1.1 on 127.0.0.1, port chosen by the
      kernel and printed as the first line of stdout. Paths:
        /fixed?n=N          N bytes (a pattern), Content-Length
        /chunked?n=N&k=K    N bytes in K chunks, Transfer-Encoding: chunked
        /eof?n=N            N bytes delimited by closing the connection
        /port               the client's port, to see connection reuse
        /redirect           302 to /fixed?n=1
        POST /echo          the request body back
      HEAD works on /fixed. Runs until killed.

  http_peers.py client PORT
      Talks to a coronet server with http.client on one connection: GET,
      POST with Content-Length, chunked POST, keep-alive checked by the local
      port staying the same. Exits 0 when every check passed.
"""
import http.client
import http.server
import sys
import urllib.parse


def pattern(n):
    return bytes((i * 31 + 7) & 0xFF for i in range(n))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _query(self):
        u = urllib.parse.urlsplit(self.path)
        q = {k: int(v[0]) for k, v in urllib.parse.parse_qs(u.query).items()}
        return u.path, q

    def _send(self, status, body, head=False, extra=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_HEAD(self):
        path, q = self._query()
        self._send(200, pattern(q.get("n", 10)), head=True)

    def do_GET(self):
        path, q = self._query()
        n = q.get("n", 0)
        if path == "/fixed":
            self._send(200, pattern(n))
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            k = max(q.get("k", 1), 1)
            data = pattern(n)
            step = (n + k - 1) // k or 1
            for i in range(0, n, step):
                part = data[i:i + step]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/eof":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(pattern(n))
            self.close_connection = True
        elif path == "/port":
            self._send(200, str(self.client_address[1]).encode())
        elif path == "/redirect":
            self._send(302, b"", extra=[("Location", "/fixed?n=1")])
        else:
            self._send(404, b"not found")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self._send(200, body)


def serve():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


def check(cond, what):
    if not cond:
        print("FAILED:", what, flush=True)
        sys.exit(1)


def client(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/hello?x=1")
    r = c.getresponse()
    body = r.read()
    check(r.status == 200, "GET status %d" % r.status)
    check(body == b"GET /hello x=1", "GET body %r" % body)
    local = c.sock.getsockname()[1]
    c.request("POST", "/echo", body=b"x" * 5000)
    r = c.getresponse()
    body = r.read()
    check(r.status == 200 and body == b"x" * 5000, "POST echo")
    check(c.sock.getsockname()[1] == local, "keep-alive after POST")
    c.request("POST", "/echo", body=iter([b"abc", b"defg", b"h" * 3000]),
              encode_chunked=True)
    r = c.getresponse()
    body = r.read()
    check(body == b"abcdefg" + b"h" * 3000, "chunked POST echo %r" % body[:20])
    check(c.sock.getsockname()[1] == local, "keep-alive after chunked POST")
    c.request("GET", "/stream-text")
    r = c.getresponse()
    body = r.read()
    check(r.getheader("Transfer-Encoding") == "chunked", "streamed response is chunked")
    check(body == b"0123456789" * 100, "streamed body")
    c.request("GET", "/missing")
    r = c.getresponse()
    r.read()
    check(r.status == 404, "404")
    check(c.sock.getsockname()[1] == local, "one connection served all")
    c.close()
    print("ok", flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "server":
        serve()
    elif len(sys.argv) >= 3 and sys.argv[1] == "client":
        client(int(sys.argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
