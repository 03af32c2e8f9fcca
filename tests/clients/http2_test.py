#!/usr/bin/env python3
"""HTTP/2 clients through sluice to an HTTP/1.1 origin, with clients nobody here
wrote: curl (--http2-prior-knowledge, and --http2 by ALPN over TLS), h2load,
and Debian's python3-h2 for everything a well-behaved client never does (raw
frames: resets, floods, a reader that stops reading). The origin runs in this
process, so each test can see what reached it and when.

usage: http2_test.py SLUICE [unittest args]"""
import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

sys.path.insert(0, os.path.dirname(__file__))
from python_wss_test import make_certs  # noqa: E402

SLUICE = None


class Origin(http.server.ThreadingHTTPServer):
    """An HTTP/1.1 origin that records what it saw."""
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), OriginHandler)
        self.lock = threading.Lock()
        self.seen = []             # (method, path, headers dict, body bytes)
        self.streams = {}          # name -> threading.Event the test sets to release the next token
        self.closed = {}           # name -> threading.Event set when the origin saw its client go
        self.sent = {}             # name -> bytes written so far (unbounded streams)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]

    def handle_error(self, request, client_address):
        pass  # clients that leave mid-response are what several tests are about


class OriginHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        n = self.headers.get("Content-Length")
        if n is not None:
            return self.rfile.read(int(n))
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.trailers = []
                    while (line := self.rfile.readline()) not in (b"\r\n", b""):
                        name, _, value = line.decode().partition(":")
                        self.trailers.append([name.strip().lower(), value.strip()])
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _send(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self):
        self._handle(b"")

    def do_POST(self):
        if self.path == "/hold-upload":
            # Takes no byte of the body until the test lets go.
            self.server.streams.setdefault("hold", threading.Event()).wait(30)
            self.close_connection = True
            return self._send(200, b"let go\n")
        self._handle(self._body())

    def do_PUT(self):
        self._handle(self._body())

    def _handle(self, body):
        srv = self.server
        with srv.lock:
            srv.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        path = self.path.split("?")[0]
        if path == "/echo":
            info = {"method": self.command, "path": self.path, "length": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "content_length": self.headers.get("Content-Length"),
                    "transfer_encoding": self.headers.get("Transfer-Encoding"),
                    "host": self.headers.get("Host"),
                    "x_forwarded_proto": self.headers.get("X-Forwarded-Proto"),
                    "trailers": getattr(self, "trailers", [])}
            return self._send(200, json.dumps(info).encode(), "application/json")
        m = re.match(r"^/tokens/(\w+)/(\d+)$", path)
        if m:
            # One SSE token each time the test releases one; sees a client that left.
            name, count = m.group(1), int(m.group(2))
            release = srv.streams.setdefault(name, threading.Event())
            closed = srv.closed.setdefault(name, threading.Event())
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            try:
                for i in range(count):
                    while not release.wait(0.05):
                        if _peer_gone(self.connection):
                            closed.set()
                            return
                    release.clear()
                    self._chunk(f"data: token {i}\n\n".encode())
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                closed.set()
            return
        m = re.match(r"^/flood/(\w+)$", path)
        if m:
            # Writes as fast as it is taken, counting what it got rid of.
            name = m.group(1)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            block = b"x" * 16384
            try:
                while True:
                    self._chunk(block)
                    with srv.lock:
                        srv.sent[name] = srv.sent.get(name, 0) + len(block)
            except OSError:
                srv.closed.setdefault(name, threading.Event()).set()
            return
        if path == "/never":
            # No answer until the client goes (or 30 s).
            for _ in range(600):
                if _peer_gone(self.connection):
                    return
                time.sleep(0.05)
            return
        if path == "/trailers":
            # A chunked body whose trailers carry a status, as gRPC-over-HTTP/1.1 bridges do.
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "grpc-status, x-checksum")
            self.end_headers()
            self._chunk(b"payload")
            self.wfile.write(b"0\r\ngrpc-status: 0\r\nX-Checksum: abc\r\nHost: elsewhere\r\n\r\n")
            return
        if path == "/big":
            return self._send(200, b"b" * (1 << 20), "application/octet-stream")
        return self._send(200, f"hello {self.path}\n".encode())


def _peer_gone(conn):
    """The client of this origin connection closed it (a read would see EOF now)."""
    import select
    r, _, _ = select.select([conn], [], [], 0)
    if not r:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class WebSocketOrigin:
    """A WebSocket echo server (python3-websockets) that records each upgrade's headers."""

    def __init__(self):
        import asyncio
        import websockets
        self.requests = []
        ready = threading.Event()

        async def echo(ws, path=None):
            self.requests.append({k.lower(): v for k, v in ws.request_headers.raw_items()})
            async for message in ws:
                await ws.send(message)

        async def main():
            # Trailer frames nothing on a tunnel: sluice must drop it from the
            # HTTP/2 answer, and keep the origin's own fields.
            self.server = await websockets.serve(echo, "127.0.0.1", 0, max_size=None,
                                                 extra_headers=[("Trailer", "x-digest"), ("X-Origin", "ws")])
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            await asyncio.Future()

        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_until_complete, args=(main(),), daemon=True).start()
        ready.wait(10)


def ws_frame(payload, opcode=0x1):
    """One masked WebSocket frame, as a client sends it."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_unmasked(payload, opcode=0x1):
    n = len(payload)
    if n < 126:
        return bytes([0x80 | opcode, n]) + payload
    if n < 65536:
        return bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big") + payload
    return bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big") + payload


class Sluice:
    def __init__(self, origin_port, certs, timeouts="drain_delay: 0s, drain: 5s", ws_port=None):
        self.dir = tempfile.mkdtemp()
        self.config = os.path.join(self.dir, "sluice.yaml")
        self.access_log = os.path.join(self.dir, "access.log")
        with open(self.config, "w") as f:
            f.write(f"""
listeners:
  - {{name: h2c, address: 127.0.0.1, port: 0}}
  - {{name: tls, address: 127.0.0.1, port: 0, tls: {{cert: {certs[1]}, key: {certs[2]}}}}}
  - {{name: h1only, address: 127.0.0.1, port: 0, http2: false}}
  - {{name: tls1, address: 127.0.0.1, port: 0, http2: false, tls: {{cert: {certs[1]}, key: {certs[2]}}}}}
clusters:
  - {{name: app, endpoints: ["127.0.0.1:{origin_port}"]}}
  - {{name: down, endpoints: ["127.0.0.1:1"]}}
  - {{name: capped, endpoints: ["127.0.0.1:{origin_port}"], max_requests_per_endpoint: 1, queue: {{size: 0}}}}
  - {{name: retry, endpoints: ["127.0.0.1:1", "127.0.0.1:{origin_port}"]}}
  - {{name: ws, endpoints: ["127.0.0.1:{ws_port or 1}"]}}
  - {{name: grpcish, endpoints: ["127.0.0.1:{origin_port}"], protocol: http2}}
routes:
  - {{name: ws, match: {{path_prefix: /ws/}}, cluster: ws}}
  - {{name: nows, match: {{path_prefix: /nows/}}, cluster: ws, websocket: false}}
  - {{name: wsh2, match: {{path_prefix: /wsh2/}}, cluster: grpcish}}
  - {{name: down, match: {{path_prefix: /down}}, cluster: down}}
  - {{name: capped, match: {{path_prefix: /capped/}}, rewrite: {{path_prefix: /}}, cluster: capped}}
  - {{name: retry, match: {{path_prefix: /retry/}}, rewrite: {{path_prefix: /}}, cluster: retry}}
  - {{name: idle, match: {{path_prefix: /idle/}}, rewrite: {{path_prefix: /}}, cluster: app, timeouts: {{stream_idle: 1s}}}}
  - {{name: slowhead, match: {{path_prefix: /slowhead/}}, rewrite: {{path_prefix: /}}, cluster: app,
      timeouts: {{upstream_response: 1s}}}}
  - {{name: app, match: {{path_prefix: /}}, cluster: app}}
timeouts: {{{timeouts}}}
limits: {{http2_max_concurrent_streams: 20, request_headers: 8KiB}}
access_log: {{enabled: true, path: {self.access_log}}}
""")
        self.proc = subprocess.Popen([SLUICE, "run", "--config", self.config, "--admin", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.ports = {}
        for line in self.proc.stdout:
            m = re.match(r"^listening name=(\w+) address=127\.0\.0\.1:(\d+)$", line.strip())
            if m:
                self.ports[m.group(1)] = int(m.group(2))
            m = re.match(r"^admin listening address=127\.0\.0\.1:(\d+)$", line.strip())
            if m:
                self.admin = int(m.group(1))
            if len(self.ports) == 4 and hasattr(self, "admin"):
                break
        self.output = []  # what sluice printed, shown when it dies (a sanitizer report)
        threading.Thread(target=lambda: self.output.extend(self.proc.stdout), daemon=True).start()

    def admin_call(self, method, path, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()

    def metric(self, name, **labels):
        _, text = self.admin_call("GET", "/metrics")
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def log_lines(self):
        try:
            with open(self.access_log) as f:
                # Only whole lines: the writer may be half-way through the last one.
                return [json.loads(line) for line in f if line.endswith("\n") and line.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc.poll() not in (None, 0):
            sys.stderr.write("sluice died:\n" + "".join(self.output[-200:]))
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Client:
    """A raw HTTP/2 connection with python3-h2: frames in, events out."""

    def __init__(self, port, settings=None, tls_ctx=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls_ctx:
            self.sock = tls_ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.events = []
        self.responses = {}   # stream -> {"headers": dict, "data": bytes, "ended": bool, "reset": code}
        self.terminated = None

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, method="GET", headers=(), body=None, end=True):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "example.test")]
        hdrs += list(headers)
        self.conn.send_headers(sid, hdrs, end_stream=end and body is None)
        if body is not None:
            self.send_body(sid, body, end)
        self.flush()
        self.responses[sid] = {"headers": None, "data": b"", "ended": False, "reset": None}
        return sid

    def send_body(self, sid, body, end=True):
        view = memoryview(body)
        while len(view):
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if window == 0:
                self.pump(lambda: self.conn.local_flow_control_window(sid) > 0)
                continue
            self.conn.send_data(sid, bytes(view[:window]))
            view = view[window:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def pump(self, until, timeout=10, ack=True):
        """Reads frames until until() is true; acknowledges received data unless ack is False."""
        deadline = time.time() + timeout
        while not until():
            if time.time() > deadline:
                raise TimeoutError("condition not met in time")
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                self.terminated = self.terminated or "closed"
                if not until():
                    raise ConnectionError("sluice closed the connection")
                return
            for e in self.conn.receive_data(data):
                self.events.append(e)
                r = self.responses.get(getattr(e, "stream_id", None))
                if isinstance(e, h2.events.ResponseReceived):
                    r["headers"] = dict(e.headers)
                elif isinstance(e, h2.events.DataReceived):
                    r["data"] += e.data
                    if ack:
                        self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                elif isinstance(e, h2.events.TrailersReceived):
                    r["trailers"] = dict(e.headers)
                elif isinstance(e, h2.events.StreamEnded):
                    r["ended"] = True
                elif isinstance(e, h2.events.StreamReset) and r is not None:
                    r["reset"] = e.error_code
                elif isinstance(e, h2.events.ConnectionTerminated):
                    self.terminated = e
            try:
                self.flush()
            except OSError:
                pass

    def wait(self, sid, timeout=10):
        r = self.responses[sid]
        self.pump(lambda: r["ended"] or r["reset"] is not None, timeout)
        return r

    def get(self, path, **kw):
        return self.wait(self.request(path, **kw))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def curl(*args):
    out = subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True)
    return out.returncode, out.stdout, out.stderr


class Http2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.certs = make_certs(cls.tmp)
        cls.origin = Origin()
        cls.ws_origin = WebSocketOrigin()
        cls.sluice = Sluice(cls.origin.port, cls.certs, ws_port=cls.ws_origin.port)
        cls.h2c = cls.sluice.ports["h2c"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        cls.sluice.stop()
        cls.origin.shutdown()

    def client(self, **kw):
        c = Client(self.h2c, **kw)
        self.addCleanup(c.close)
        return c

    # Real clients: curl and h2load.

    def test_curl_prior_knowledge_speaks_http2_to_a_plain_listener(self):
        rc, out, err = curl("--http2-prior-knowledge", "-w", "\n%{http_version}", f"http://127.0.0.1:{self.h2c}/hi?x=1")
        self.assertEqual(rc, 0, err)
        body, version = out.rsplit("\n", 1)
        self.assertEqual(version, "2")
        self.assertEqual(body, "hello /hi?x=1\n")

    def test_curl_negotiates_h2_by_alpn_on_a_tls_listener_and_http11_when_asked(self):
        port = self.sluice.ports["tls"]
        rc, out, err = curl("--http2", "--cacert", self.certs[0], "-w", "%{http_version}", "-o", "/dev/null",
                            f"https://localhost:{port}/tls-x", "--resolve", f"localhost:{port}:127.0.0.1")
        self.assertEqual((rc, out), (0, "2"), err)
        rc, out, err = curl("--http1.1", "--cacert", self.certs[0], "-w", "%{http_version}", "-o", "/dev/null",
                            f"https://localhost:{port}/tls-x", "--resolve", f"localhost:{port}:127.0.0.1")
        self.assertEqual((rc, out), (0, "1.1"), err)
        seen = [s for s in self.origin.seen if s[1] == "/tls-x"]
        self.assertEqual(seen[0][2].get("x-forwarded-proto"), "https")

    def test_http2_false_keeps_a_listener_on_http11(self):
        port = self.sluice.ports["tls1"]
        rc, out, err = curl("--http2", "--cacert", self.certs[0], "-w", "%{http_version}", "-o", "/dev/null",
                            f"https://localhost:{port}/x", "--resolve", f"localhost:{port}:127.0.0.1")
        self.assertEqual((rc, out), (0, "1.1"), err)
        # The preface on a plain listener without http2 is not HTTP/1.1 either: refused, not served.
        rc, out, err = curl("--http2-prior-knowledge", f"http://127.0.0.1:{self.sluice.ports['h1only']}/x")
        self.assertNotEqual(rc, 0)
        rc, out, err = curl(f"http://127.0.0.1:{self.sluice.ports['h1only']}/x")
        self.assertEqual((rc, out), (0, "hello /x\n"), err)

    def test_h2load_many_streams_on_few_connections(self):
        out = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "16", f"http://127.0.0.1:{self.h2c}/load"],
                             capture_output=True, text=True, timeout=60).stdout
        self.assertIn("2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed", out)
        self.assertIn("status codes: 2000 2xx", out)

    # Per stream: routing, bodies, errors, streaming.

    def test_concurrent_streams_are_routed_and_answered_independently(self):
        c = self.client()
        ok = [c.request(f"/echo?i={i}") for i in range(10)]
        missing = c.request("/down/x")
        for i, sid in enumerate(ok):
            r = c.wait(sid)
            self.assertEqual(r["headers"][":status"], "200")
            info = json.loads(r["data"])
            self.assertEqual(info["path"], f"/echo?i={i}")
            self.assertEqual(info["host"], "example.test")
        r = c.wait(missing)
        self.assertEqual(r["headers"][":status"], "502")
        self.assertEqual(r["headers"]["x-sluice-error"], "upstream_connect_failed")
        self.assertIn("127.0.0.1:1", r["data"].decode())

    def test_request_bodies_reach_the_origin_whole(self):
        c = self.client()
        body = os.urandom(600_000)  # ten times the stream window: windows must reopen as it goes
        sized = c.wait(c.request("/echo", method="POST", headers=[("content-length", str(len(body)))], body=body))
        unsized = c.wait(c.request("/echo", method="POST", body=body))
        for r in (sized, unsized):
            info = json.loads(r["data"])
            self.assertEqual(info["length"], len(body))
            self.assertEqual(info["sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(json.loads(sized["data"])["content_length"], str(len(body)))
        self.assertEqual(json.loads(unsized["data"])["transfer_encoding"], "chunked")

    def test_response_trailers_from_an_http1_origin_reach_both_kinds_of_client(self):
        r = self.client().get("/trailers")
        self.assertEqual(r["data"], b"payload")
        # Fields that frame or route a message are never trailers: Host is left out.
        self.assertEqual(r.get("trailers"), {"grpc-status": "0", "x-checksum": "abc"})
        code, out, _ = curl("--http1.1", "--raw", f"http://127.0.0.1:{self.sluice.ports['h1only']}/trailers")
        self.assertEqual(code, 0)
        # (curl's output is read as text here: its CRLFs arrive as newlines.)
        self.assertTrue(out.endswith("0\ngrpc-status: 0\nx-checksum: abc\n\n"), repr(out))
        for _ in range(50):
            lines = [l for l in self.sluice.log_lines() if l.get("path") == "/trailers"]
            if len(lines) >= 2:
                break
            time.sleep(0.1)
        self.assertEqual([l.get("grpc_status") for l in lines], ["0", "0"])

    def test_request_trailers_from_an_http1_client_reach_the_origin(self):
        s = socket.create_connection(("127.0.0.1", self.sluice.ports["h1only"]), timeout=10)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                  b"5\r\nhello\r\n0\r\nX-Digest: d1\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        info = json.loads(data.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(info["length"], 5)
        self.assertEqual(info["trailers"], [["x-digest", "d1"]])

    def test_request_trailers_reach_an_http1_origin_in_the_last_chunk(self):
        c = self.client()
        body = os.urandom(200_000)
        sid = c.request("/echo", method="POST", body=body, end=False)
        c.conn.send_headers(sid, [("x-digest", hashlib.sha256(body).hexdigest())], end_stream=True)
        c.flush()
        info = json.loads(c.wait(sid)["data"])
        self.assertEqual(info["length"], len(body))
        self.assertEqual(info["transfer_encoding"], "chunked")
        self.assertEqual(info["trailers"], [["x-digest", hashlib.sha256(body).hexdigest()]])

    def websocket(self, c, path):
        sid = c.request(path, method="CONNECT", headers=[(":protocol", "websocket"), ("sec-websocket-version", "13")],
                        end=False)
        c.pump(lambda: c.responses[sid]["headers"] is not None or c.responses[sid]["reset"] is not None)
        return sid

    def test_websocket_over_http2_is_bridged_to_an_http1_upgrade(self):
        c = self.client()
        # sluice's SETTINGS say it takes extended CONNECT (h2 knows the setting as 0 until then).
        c.pump(lambda: c.conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL) == 1)
        sid = self.websocket(c, "/ws/echo")
        r = c.responses[sid]
        self.assertEqual(r["headers"][":status"], "200")
        self.assertNotIn("sec-websocket-accept", r["headers"])
        self.assertNotIn("trailer", r["headers"])
        self.assertEqual(r["headers"].get("x-origin"), "ws")
        # The upstream saw an HTTP/1.1 upgrade with a key sluice made (its
        # handler, which records it, runs just after its 101 went out).
        for _ in range(100):
            if self.ws_origin.requests:
                break
            time.sleep(0.05)
        up = self.ws_origin.requests[-1]
        self.assertEqual(up["upgrade"].lower(), "websocket")
        self.assertEqual(len(up["sec-websocket-key"]), 24)
        self.assertEqual(up["sec-websocket-version"], "13")
        # Messages both ways, one small, one many windows long.
        big = os.urandom(300_000)
        for payload, opcode in ((b"hello", 0x1), (big, 0x2)):
            r["data"] = b""
            c.send_body(sid, ws_frame(payload, opcode), end=False)
            want = ws_unmasked(payload, opcode)
            c.pump(lambda: len(r["data"]) >= len(want))
            self.assertEqual(r["data"], want)
        # A Close frame: the origin answers it and closes, which ends the stream.
        r["data"] = b""
        c.send_body(sid, ws_frame((1000).to_bytes(2, "big"), 0x8), end=False)
        c.pump(lambda: r["ended"] or r["reset"] is not None)
        self.assertTrue(r["ended"])
        self.assertEqual(r["data"][:2], b"\x88\x02")
        self.assertEqual(self.sluice.metric("sluice_websocket_connections_total", route="ws"), 1)
        for _ in range(50):
            lines = [l for l in self.sluice.log_lines() if l.get("kind") == "websocket" and l.get("route") == "ws"]
            if lines:
                break
            time.sleep(0.1)
        self.assertEqual(lines[-1]["status"], 200)
        self.assertGreater(lines[-1]["bytes_received"], 300_000)

    def test_websocket_over_http2_refusals(self):
        c = self.client()
        sid = self.websocket(c, "/nows/echo")
        self.assertEqual(c.responses[sid]["headers"][":status"], "403")
        sid = self.websocket(c, "/wsh2/echo")
        self.assertEqual(c.responses[sid]["headers"][":status"], "403")
        c.wait(sid)
        self.assertIn(b"protocol: http2", c.responses[sid]["data"])
        other = c.request("/x", method="CONNECT", headers=[(":protocol", "webtransport")], end=False)
        c.wait(other)
        self.assertEqual(c.responses[other]["headers"][":status"], "400")
        self.assertIn(b"only websocket", c.responses[other]["data"])

    def test_a_large_response_flows_through_the_client_window(self):
        r = self.client().get("/big")
        self.assertEqual(len(r["data"]), 1 << 20)

    def test_tokens_arrive_one_by_one_as_the_origin_writes_them(self):
        c = self.client()
        sid = c.request("/tokens/order/3")
        release = self.origin.streams.setdefault("order", threading.Event())
        c.pump(lambda: c.responses[sid]["headers"] is not None)
        for i in range(3):
            self.assertNotIn(f"token {i}".encode(), c.responses[sid]["data"])
            release.set()
            c.pump(lambda: f"token {i}".encode() in c.responses[sid]["data"])
        r = c.wait(sid)
        self.assertTrue(r["ended"])
        deadline = time.time() + 5  # the access log is written by its own thread
        while not [l for l in self.sluice.log_lines() if l["path"] == "/tokens/order/3"] and time.time() < deadline:
            time.sleep(0.05)
        line = [l for l in self.sluice.log_lines() if l["path"] == "/tokens/order/3"]
        self.assertEqual(line[-1]["kind"], "stream")

    def test_a_stream_reset_by_the_client_cancels_its_upstream_alone(self):
        c = self.client()
        before = self.sluice.metric("sluice_client_cancels_total", phase="streaming")
        gone = c.request("/tokens/reset/10")
        stays = c.request("/tokens/stays/2")
        c.pump(lambda: c.responses[gone]["headers"] is not None and c.responses[stays]["headers"] is not None)
        self.origin.streams["reset"].set()
        c.pump(lambda: b"token 0" in c.responses[gone]["data"])
        c.conn.reset_stream(gone, h2.errors.ErrorCodes.CANCEL)
        c.flush()
        self.assertTrue(self.origin.closed.setdefault("reset", threading.Event()).wait(5),
                        "the origin did not see its connection close after the client reset the stream")
        for _ in range(2):
            self.origin.streams["stays"].set()
            time.sleep(0.05)
        r = c.wait(stays)
        self.assertTrue(r["ended"])
        self.assertIn(b"token 1", r["data"])
        self.assertEqual(self.sluice.metric("sluice_client_cancels_total", phase="streaming"), before + 1)

    def test_a_reader_that_stops_holds_its_sender(self):
        # The client never acknowledges DATA: once its windows are spent,
        # sluice stops reading the origin, whose writes then block.
        c = self.client()
        sid = c.request("/flood/stall")
        c.pump(lambda: c.responses[sid]["headers"] is not None, ack=False)
        time.sleep(1.0)
        c.pump(lambda: False if time.sleep(0.2) else True, ack=False)
        first = self.origin.sent.get("stall", 0)
        time.sleep(1.0)
        second = self.origin.sent.get("stall", 0)
        self.assertEqual(first, second, "the origin kept writing to a client that reads nothing")
        self.assertLess(second, 16 << 20, "far more than windows and socket buffers were taken from the origin")
        c.close()
        self.assertTrue(self.origin.closed.setdefault("stall", threading.Event()).wait(5))

    def test_an_upstream_that_takes_no_upload_holds_the_client(self):
        # sluice opens the client's window only as body bytes go upstream: once
        # the origin's socket buffers are full, the client can send no more.
        c = self.client()
        sid = c.request("/hold-upload", method="POST", end=False)

        def upload_for(seconds, sent):
            end = time.time() + seconds
            while time.time() < end:
                window = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
                if window > 0:
                    c.conn.send_data(sid, b"u" * window)
                    c.flush()
                    sent += window
                else:
                    try:
                        c.pump(lambda: c.conn.local_flow_control_window(sid) > 0, timeout=0.2)
                    except TimeoutError:
                        pass
            return sent

        first = upload_for(3, 0)
        second = upload_for(1, first)
        self.assertEqual(first, second, "the client could still send with the origin taking nothing")
        self.assertLess(second, 32 << 20, "far more than windows and socket buffers were taken")
        self.origin.streams["hold"].set()
        c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        c.flush()

    def test_sluice_answers_per_stream_with_its_error_words(self):
        c = self.client()
        big = c.get("/x", headers=[("x-big", "v" * 9000)])
        self.assertEqual(big["headers"][":status"], "431")
        self.assertEqual(big["headers"]["x-sluice-error"], "headers_too_large")
        self.assertIn("limits.request_headers", big["data"].decode())
        bad = c.get("/a/../../etc")
        self.assertEqual(bad["headers"][":status"], "400")
        after = c.get("/still-fine")
        self.assertEqual(after["headers"][":status"], "200")

    def test_a_config_change_never_touches_an_open_stream(self):
        c = self.client()
        sid = c.request("/tokens/change/3")
        c.pump(lambda: c.responses[sid]["headers"] is not None)
        self.origin.streams["change"].set()
        c.pump(lambda: b"token 0" in c.responses[sid]["data"])
        status, _ = self.sluice.admin_call("POST", "/routes", {"name": "moved", "match": {"path_prefix": "/moved"},
                                                                "cluster": "down"})
        self.assertIn(status, (200, 201))
        self.addCleanup(self.sluice.admin_call, "DELETE", "/routes/moved")
        moved = c.get("/moved/x")  # the same connection, a new stream: the new config
        self.assertEqual(moved["headers"][":status"], "502")
        for _ in range(2):
            self.origin.streams["change"].set()
            time.sleep(0.05)
        r = c.wait(sid)
        self.assertTrue(r["ended"] and r["reset"] is None)
        self.assertIn(b"token 2", r["data"])

    def test_stream_idle_ends_the_idle_stream_alone(self):
        c = self.client()
        idle = c.request("/idle/tokens/idle/3")
        busy = c.request("/tokens/busy/2")
        c.pump(lambda: c.responses[idle]["headers"] is not None and c.responses[busy]["headers"] is not None)
        self.origin.streams["idle"].set()
        c.pump(lambda: b"token 0" in c.responses[idle]["data"])
        # No byte on the idle stream for its route's stream_idle (1s): reset,
        # so the client can tell the response is cut. The other stream goes on.
        r = c.wait(idle, timeout=10)
        self.assertEqual(r["reset"], h2.errors.ErrorCodes.INTERNAL_ERROR)
        self.assertTrue(self.origin.closed.setdefault("idle", threading.Event()).wait(5))
        for _ in range(2):
            self.origin.streams["busy"].set()
            time.sleep(0.05)
        self.assertTrue(c.wait(busy)["ended"])
        self.assertIsNone(c.terminated)

    def test_upstream_response_answers_504_on_the_stream(self):
        c = self.client()
        slow = c.request("/slowhead/never")
        fine = c.get("/fine")
        self.assertEqual(fine["headers"][":status"], "200")
        r = c.wait(slow, timeout=10)
        self.assertEqual(r["headers"][":status"], "504")
        self.assertEqual(r["headers"]["x-sluice-error"], "upstream_timeout")
        self.assertIn("upstream sent no response headers within 1s", r["data"].decode())
        self.assertIsNone(c.terminated)

    def test_http_idle_ends_a_connection_with_no_stream_open(self):
        s = Sluice(self.origin.port, self.certs, timeouts="drain_delay: 0s, drain: 5s, http_idle: 1s")
        self.addCleanup(s.stop)
        c = Client(s.ports["h2c"])
        self.addCleanup(c.close)
        self.assertEqual(c.get("/before-idle")["headers"][":status"], "200")
        try:
            c.pump(lambda: c.terminated is not None and c.terminated != "closed", timeout=10)
        except ConnectionError:
            pass
        self.assertGoaway(c, h2.errors.ErrorCodes.NO_ERROR)

    def test_admission_counts_streams(self):
        c = self.client()
        first = c.request("/capped/tokens/cap/1")
        c.pump(lambda: c.responses[first]["headers"] is not None)
        second = c.get("/capped/x")  # the one slot is taken and the queue has no room
        self.assertEqual(second["headers"][":status"], "503")
        self.assertEqual(second["headers"]["x-sluice-error"], "queue_full")
        self.assertEqual(second["headers"]["retry-after"], "1")
        self.origin.streams["cap"].set()
        self.assertTrue(c.wait(first)["ended"])
        self.assertEqual(c.get("/capped/x")["headers"][":status"], "200")  # the slot is free again

    def test_a_stream_is_retried_on_another_endpoint(self):
        c = self.client()
        for i in range(4):  # round robin: every other one meets the dead endpoint first
            r = c.get(f"/retry/echo?n={i}")
            self.assertEqual(r["headers"][":status"], "200", r["data"])

    def test_connections_lists_every_stream_of_a_connection(self):
        c = self.client()
        sids = [c.request(f"/tokens/listed{i}/1") for i in range(2)]
        c.pump(lambda: all(c.responses[s]["headers"] is not None for s in sids))
        _, body = self.sluice.admin_call("GET", "/connections?kind=stream")
        listed = [x for x in json.loads(body)["connections"] if x["route"] == "app"]
        self.assertGreaterEqual(len(listed), 2, body)
        for i in range(2):
            self.origin.streams[f"listed{i}"].set()
        for s in sids:
            self.assertTrue(c.wait(s)["ended"])
        deadline = time.time() + 5  # the access log is written by its own thread
        while True:
            lines = [l for l in self.sluice.log_lines() if l["path"].startswith("/tokens/listed")]
            if len(lines) >= 2 or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(sorted(l["path"] for l in lines), ["/tokens/listed0/1", "/tokens/listed1/1"])
        self.assertTrue(all(l["status"] == 200 and l["kind"] == "stream" for l in lines))

    # Abuse: each answered with the right error, without unbounded work.

    def assertGoaway(self, c, code):
        self.assertIsInstance(c.terminated, h2.events.ConnectionTerminated, c.terminated)
        self.assertEqual(c.terminated.error_code, code)

    def test_rapid_reset_ends_the_connection_with_enhance_your_calm(self):
        c = self.client()
        seen = len(self.origin.seen)
        for _ in range(1000):
            try:
                sid = c.request("/tokens/rapid/1")
                c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                c.flush()
            except OSError:
                break
        try:
            c.pump(lambda: c.terminated is not None)
        except ConnectionError:
            pass
        self.assertGoaway(c, h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        self.assertLess(len(self.origin.seen) - seen, 400, "most reset streams still reached the origin")

    def test_too_many_streams_are_refused(self):
        # Sent before sluice's SETTINGS arrive (python3-h2 itself keeps to the
        # limit once it knows it): the 5 streams over the limit of 20 are refused.
        c = self.client()
        sids = [c.request(f"/tokens/many{i}/1") for i in range(25)]
        c.pump(lambda: all(c.responses[s]["reset"] is not None for s in sids[20:]))
        self.assertEqual([c.responses[s]["reset"] for s in sids[20:]], [h2.errors.ErrorCodes.REFUSED_STREAM] * 5)
        for i in range(20):
            self.origin.streams.setdefault(f"many{i}", threading.Event()).set()
        for s in sids[:20]:
            self.assertTrue(c.wait(s)["ended"])
        self.assertIsNone(c.terminated)

    def test_a_continuation_flood_ends_the_connection(self):
        c = self.client()
        c.flush()
        # HEADERS without END_HEADERS, then endless empty CONTINUATION frames.
        frames = b"\x00\x00\x00\x01\x00\x00\x00\x00\x01" + b"\x00\x00\x00\x09\x00\x00\x00\x00\x01" * 10000
        try:
            c.sock.sendall(frames)
        except OSError:
            pass
        raw = b""
        c.sock.settimeout(5)
        try:
            while True:
                d = c.sock.recv(65536)
                if not d:
                    break
                raw += d
        except OSError:
            pass
        # The last frame sluice sent is a GOAWAY (type 7).
        self.assertIn(b"\x07\x00\x00\x00\x00\x00", raw, "no GOAWAY before the close")

    def assertFloodEndsTheConnection(self, frame):
        # The client writes and never reads, with a small receive buffer: sluice's
        # answers pile up until it ends the connection. A send that times out,
        # or a flood taken whole, means it did not.
        sock = socket.socket()
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", self.h2c))
        sock.settimeout(10)
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        ended = False
        try:
            for _ in range(2000):
                sock.sendall(frame * 1000)
        except socket.timeout:
            self.fail("sluice stopped reading a flooding connection but kept it open")
        except (BrokenPipeError, ConnectionResetError):
            ended = True
        self.assertTrue(ended, "sluice took the whole flood")
        probe = self.client()
        self.assertEqual(probe.get("/after-flood")["headers"][":status"], "200")

    def test_a_ping_flood_from_a_client_that_does_not_read_ends_the_connection(self):
        self.assertFloodEndsTheConnection(b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678")

    def test_a_settings_flood_from_a_client_that_does_not_read_ends_the_connection(self):
        self.assertFloodEndsTheConnection(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x03\x00\x00\x00\x64")

    def test_a_drain_sends_goaway_and_lets_open_streams_finish(self):
        # A sluice of its own, since a drain stops it. curl holds a stream open
        # across the drain (python3-h2 treats any GOAWAY as the end of the
        # connection, so it only watches for the GOAWAY on a second connection).
        s = Sluice(self.origin.port, self.certs)
        self.addCleanup(s.stop)
        watcher = Client(s.ports["h2c"])
        self.addCleanup(watcher.close)
        watcher.get("/first")
        stream = subprocess.Popen(["curl", "-sS", "-N", "--http2-prior-knowledge", "--max-time", "20",
                                   f"http://127.0.0.1:{s.ports['h2c']}/tokens/drain/2"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(stream.kill)
        deadline = time.time() + 10
        while not [x for x in self.origin.seen if x[1] == "/tokens/drain/2"] and time.time() < deadline:
            time.sleep(0.02)
        s.proc.terminate()
        watcher.pump(lambda: watcher.terminated is not None)
        self.assertGoaway(watcher, h2.errors.ErrorCodes.NO_ERROR)
        for _ in range(2):
            self.origin.streams["drain"].set()
            time.sleep(0.1)
        out, err = stream.communicate(timeout=15)
        self.assertEqual(stream.returncode, 0, err)
        self.assertEqual(out, "data: token 0\n\ndata: token 1\n\n")
        code = s.proc.wait(15)
        self.assertEqual(code, 0, "".join(s.output[-300:]))

if __name__ == "__main__":
    SLUICE = sys.argv.pop(1)
    unittest.main(verbosity=2)
