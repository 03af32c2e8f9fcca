#!/usr/bin/env python3
"""gRPC through sluice with Debian's python3-grpcio on both ends: a grpcio
server behind a cluster with protocol: http2 (h2c, and h2 by ALPN over TLS),
a grpcio client on sluice's h2c listener. Unary, server streaming, client
streaming and bidirectional calls; status and trailing metadata; a server
stream that lives through 100 config changes; and HTTP/1.1 clients (curl)
reaching the same HTTP/2 upstream, trailers included.

usage: grpc_test.py SLUICE [unittest args]"""
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import socket

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

sys.path.insert(0, os.path.dirname(__file__))
from python_wss_test import make_certs  # noqa: E402

SLUICE = None
SERVICE = "sluice.test.Echo"


class Backend:
    """A grpcio server with byte messages (no protobuf): echo, streams, errors."""

    def __init__(self, certs=None, max_streams=None):
        self.lock = threading.Lock()
        self.slow_calls = {}  # name -> {"release": Semaphore (one message each), "started", "cancelled": Event}
        self.seen_metadata = []
        options = [("grpc.max_concurrent_streams", max_streams)] if max_streams else []
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(32), options=options)
        handlers = grpc.method_handlers_generic_handler(SERVICE, {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "Fail": grpc.unary_unary_rpc_method_handler(self.fail),
            "Wait": grpc.unary_unary_rpc_method_handler(self.wait),
            "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
            "Slow": grpc.unary_stream_rpc_method_handler(self.slow),
            "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
        })
        self.server.add_generic_rpc_handlers((handlers,))
        if certs:
            with open(certs[1], "rb") as c, open(certs[2], "rb") as k:
                creds = grpc.ssl_server_credentials([(k.read(), c.read())])
            self.port = self.server.add_secure_port("127.0.0.1:0", creds)
        else:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def slow_call(self, name):
        with self.lock:
            return self.slow_calls.setdefault(name, {"release": threading.Semaphore(0), "started": threading.Event(),
                                               "cancelled": threading.Event()})

    def unary(self, req, ctx):
        self.seen_metadata.append(dict(ctx.invocation_metadata()))
        ctx.set_trailing_metadata((("x-trailer", "after %d bytes" % len(req)),))
        return b"echo:" + req

    def fail(self, req, ctx):
        ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing: " + req.decode())

    def wait(self, req, ctx):
        time.sleep(float(req.decode()))
        return b"waited"

    def server_stream(self, req, ctx):
        for i in range(int(req.decode())):
            yield b"msg %d" % i

    def slow(self, req, ctx):
        name, count = req.decode().split(":")
        call = self.slow_call(name)
        done = []
        # Called when the call ends however it ends: a call that did not finish was cancelled.
        ctx.add_callback(lambda: done or call["cancelled"].set())
        call["started"].set()
        for i in range(int(count)):
            while not call["release"].acquire(timeout=0.05):
                if not ctx.is_active():
                    return
            yield b"slow %d" % i
        done.append(True)

    def client_stream(self, it, ctx):
        total = b""
        n = 0
        for m in it:
            total += m
            n += 1
        return b"%d messages, %d bytes" % (n, len(total))

    def bidi(self, it, ctx):
        for m in it:
            yield m.upper()

    def stop(self):
        self.server.stop(0)


class RawH2Origin:
    """An HTTP/2 origin on python3-h2 that misbehaves on purpose, by path:
    /first is held until /second arrives on the same connection, which then
    gets a GOAWAY naming only /first; /reset-early and /refuse reset the
    stream before a head; /reset-mid resets it after some body."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.seen = []  # (connection number, path)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                n = self.connections
            threading.Thread(target=self.serve, args=(s, n), daemon=True).start()

    def serve(self, s, n):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        held = None
        floods = {}  # stream -> bytes still to send, as fast as the windows allow
        trailers = {}  # stream -> the request's trailers
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    return
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.TrailersReceived):
                        trailers[ev.stream_id] = ev.headers
                    if isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    if isinstance(ev, h2.events.StreamEnded) and ev.stream_id in trailers:
                        self.respond(conn, ev.stream_id, json.dumps(trailers.pop(ev.stream_id)).encode())
                    if not isinstance(ev, h2.events.RequestReceived):
                        continue
                    path = dict(ev.headers)[":path"].split("/")[-1]
                    with self.lock:
                        self.seen.append((n, path))
                    sid = ev.stream_id
                    if path == "first":
                        held = sid
                    elif path == "second" and held is not None:
                        self.respond(conn, held, b"first")
                        conn.close_connection(last_stream_id=held)  # /second was never processed
                    elif path == "reset-early":
                        conn.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                    elif path == "refuse":
                        conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                    elif path == "reset-mid":
                        conn.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
                        conn.send_data(sid, b"partial ")
                        conn.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                    elif path == "trailers-only":
                        conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc"),
                                                ("grpc-status", "7"), ("grpc-message", "denied")], end_stream=True)
                    elif path == "flood":
                        conn.send_headers(sid, [(":status", "200")])
                        floods[sid] = 2 << 20
                    elif path == "echo-trailers":
                        trailers[sid] = []  # answered when the request ends, with its trailers
                    else:
                        self.respond(conn, sid, path.encode())
                for sid in list(floods):
                    try:
                        while floods[sid] > 0:
                            size = min(floods[sid], conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                            if size <= 0:
                                break
                            conn.send_data(sid, b"f" * size, end_stream=floods[sid] == size)
                            floods[sid] -= size
                        if floods[sid] == 0:
                            del floods[sid]
                    except (h2.exceptions.StreamClosedError, KeyError):
                        floods.pop(sid, None)
                s.sendall(conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            s.close()

    @staticmethod
    def respond(conn, sid, body):
        conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))])
        conn.send_data(sid, body, end_stream=True)


def h2_post_with_trailers(port, path, body, trailers, timeout=10):
    """One POST on HTTP/2 to sluice whose body ends with trailers: (status, response body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "POST"), (":path", path), (":scheme", "http"), (":authority", "test"),
                          ("te", "trailers")])
    for at in range(0, len(body), 16384):  # within the first window: no WINDOW_UPDATE to wait for
        conn.send_data(1, body[at:at + 16384])
    conn.send_headers(1, trailers, end_stream=True)
    sock.sendall(conn.data_to_send())
    status, data = None, b""
    done = False
    while not done:
        chunk = sock.recv(65536)
        if not chunk:
            break
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived):
                status = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        sock.sendall(conn.data_to_send())
    sock.close()
    return status, data


def h2_get_many(port, paths, timeout=10):
    """GETs on one HTTP/2 connection to sluice, all in flight together: {path: (status, body, reset)}."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    streams = {}
    for path in paths:
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                (":authority", "test")], end_stream=True)
        streams[sid] = {"path": path, "status": None, "body": b"", "done": False, "reset": None}
        sock.sendall(conn.data_to_send())
        time.sleep(0.2)  # in this order at the origin
    while not all(st["done"] for st in streams.values()):
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            st = streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived):
                st["status"] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                st["body"] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                st["done"] = True
            elif isinstance(ev, h2.events.StreamReset):
                st["done"] = True
                st["reset"] = ev.error_code
        sock.sendall(conn.data_to_send())
    sock.close()
    return {st["path"]: (st["status"], st["body"], st["reset"]) for st in streams.values()}


class SilentOrigin:
    """Accepts TCP connections and never sends a byte: an HTTP/2 connection to
    it stays waiting for the peer's SETTINGS. Counts what it accepted."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.accepted = threading.Event()

        def serve():
            while True:
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                self.held.append(conn)
                self.accepted.set()
        threading.Thread(target=serve, daemon=True).start()

    def stop(self):
        self.sock.close()
        for c in self.held:
            c.close()


class Sluice:
    def __init__(self, plain_port, tls_port, h1_port, limited_port, raw_port, https1_port, certs, silent_port):
        self.dir = tempfile.mkdtemp()
        self.config = os.path.join(self.dir, "sluice.yaml")
        self.access_log = os.path.join(self.dir, "access.log")
        with open(self.config, "w") as f:
            f.write(f"""
listeners:
  - {{name: h2c, address: 127.0.0.1, port: 0}}
clusters:
  - {{name: grpc, endpoints: ["127.0.0.1:{plain_port}"], protocol: http2}}
  - {{name: grpctls, endpoints: ["127.0.0.1:{tls_port}"], protocol: http2, tls: {{ca: {certs[0]}, sni: localhost}}}}
  - {{name: notgrpc, endpoints: ["127.0.0.1:{h1_port}"], protocol: http2}}
  - {{name: limited, endpoints: ["127.0.0.1:{limited_port}"], protocol: http2}}
  - {{name: raw, endpoints: ["127.0.0.1:{raw_port}"], protocol: http2}}
  - {{name: https1, endpoints: ["127.0.0.1:{https1_port}"], protocol: http2, tls: {{ca: {certs[0]}, sni: localhost}}}}
  - {{name: checked, endpoints: ["127.0.0.1:{plain_port}", "127.0.0.1:{h1_port}"], protocol: http2,
      health_check: {{path: /healthz, interval: 100ms, healthy_threshold: 1, unhealthy_threshold: 1}}}}
  - {{name: checkedtls, endpoints: ["127.0.0.1:{tls_port}"], protocol: http2, tls: {{ca: {certs[0]}, sni: localhost}},
      health_check: {{path: /healthz, interval: 100ms, healthy_threshold: 1, unhealthy_threshold: 1}}}}
  - {{name: silent, endpoints: ["127.0.0.1:{silent_port}"], protocol: http2}}
routes:
  - {{name: silent, match: {{path_prefix: /silent/}}, cluster: silent,
      timeouts: {{connect: 200ms, upstream_response: 800ms}}}}
  - {{name: raw, match: {{path_prefix: /raw/}}, cluster: raw}}
  - {{name: https1, match: {{path_prefix: /https1/}}, cluster: https1}}
  - {{name: limited, match: {{path_prefix: /limited/}}, rewrite: {{path_prefix: /}}, cluster: limited}}
  - {{name: tls, match: {{path_prefix: /tls/}}, rewrite: {{path_prefix: /}}, cluster: grpctls}}
  - {{name: h1, match: {{path_prefix: /h1/}}, rewrite: {{path_prefix: /}}, cluster: notgrpc}}
  - {{name: grpc, match: {{path_prefix: /}}, cluster: grpc}}
timeouts: {{drain_delay: 0s, drain: 5s}}
access_log: {{enabled: true, path: {self.access_log}}}
""")
        # One worker: every client connection shares one pool of upstream connections.
        self.proc = subprocess.Popen([SLUICE, "run", "--config", self.config, "--admin", "127.0.0.1:0",
                                      "--workers", "1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in self.proc.stdout:
            m = re.match(r"^listening name=h2c address=127\.0\.0\.1:(\d+)$", line.strip())
            if m:
                self.port = int(m.group(1))
            m = re.match(r"^admin listening address=127\.0\.0\.1:(\d+)$", line.strip())
            if m:
                self.admin = int(m.group(1))
            if hasattr(self, "port") and hasattr(self, "admin"):
                break
        self.output = []
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
            if (line.startswith(name + "{") or line.startswith(name + " ")) and \
                    all(f'{k}="{v}"' in line for k, v in labels.items()):
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


class GrpcThroughSluice(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.certs = make_certs(cls.tmp)
        cls.backend = Backend()
        cls.tls_backend = Backend(certs=cls.certs)
        # An HTTP/1.1 origin behind a protocol: http2 cluster: every call there fails, saying why.
        cls.h1 = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cls.tmp)
        line = cls.h1.stdout.readline()
        cls.h1_port = int(re.search(r"port (\d+)", line).group(1))
        cls.limited = Backend(max_streams=4)
        cls.raw = RawH2Origin()
        # An HTTPS origin that speaks HTTP/1.1 only (no ALPN h2).
        import http.server
        import ssl
        cls.https1 = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cls.certs[1], cls.certs[2])
        cls.https1.socket = ctx.wrap_socket(cls.https1.socket, server_side=True)
        threading.Thread(target=cls.https1.serve_forever, daemon=True).start()
        cls.silent = SilentOrigin()
        cls.sluice = Sluice(cls.backend.port, cls.tls_backend.port, cls.h1_port, cls.limited.port, cls.raw.port,
                            cls.https1.server_address[1], cls.certs, cls.silent.port)
        cls.channel = grpc.insecure_channel(f"127.0.0.1:{cls.sluice.port}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        cls.channel.close()
        cls.sluice.stop()
        cls.backend.stop()
        cls.tls_backend.stop()
        cls.limited.stop()
        cls.silent.stop()
        cls.h1.terminate()

    def call(self, method, prefix=""):
        return f"{prefix}/{SERVICE}/{method}"

    def test_unary_with_metadata_and_trailers(self):
        stub = self.channel.unary_unary(self.call("Unary"))
        reply, call = stub.with_call(b"hello", metadata=(("x-user", "ada"),), timeout=10)
        self.assertEqual(reply, b"echo:hello")
        self.assertEqual(dict(call.trailing_metadata()).get("x-trailer"), "after 5 bytes")
        self.assertEqual(self.backend.seen_metadata[-1].get("x-user"), "ada")
        self.assertIn("127.0.0.1", self.backend.seen_metadata[-1].get("x-forwarded-for", ""))

    def test_error_status_and_access_log(self):
        with self.assertRaises(grpc.RpcError) as e:
            self.channel.unary_unary(self.call("Fail"))(b"widget", timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(e.exception.details(), "no such thing: widget")
        for _ in range(100):
            lines = [l for l in self.sluice.log_lines() if l.get("path") == self.call("Fail")]
            if lines:
                break
            time.sleep(0.05)
        self.assertEqual(lines[-1].get("grpc_status"), "5")
        self.assertEqual(lines[-1].get("status"), 200)

    def test_server_streaming(self):
        replies = list(self.channel.unary_stream(self.call("ServerStream"))(b"500", timeout=20))
        self.assertEqual(replies, [b"msg %d" % i for i in range(500)])

    def test_client_streaming(self):
        msgs = [os.urandom(1000) for _ in range(300)]
        reply = self.channel.stream_unary(self.call("ClientStream"))(iter(msgs), timeout=20)
        self.assertEqual(reply, b"300 messages, 300000 bytes")

    def test_bidirectional(self):
        got = []
        send = threading.Semaphore(1)

        def requests():
            for i in range(50):
                send.acquire()  # one in flight: each answer before the next request
                yield b"word %d" % i

        for reply in self.channel.stream_stream(self.call("Bidi"))(requests(), timeout=20):
            got.append(reply)
            send.release()
        self.assertEqual(got, [b"WORD %d" % i for i in range(50)])

    def test_large_messages_both_ways(self):
        big = os.urandom(3 << 20)
        reply = self.channel.unary_unary(self.call("Unary"))(big, timeout=30)
        self.assertEqual(reply, b"echo:" + big)

    def upstream_connections(self, port):
        out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
                             capture_output=True, text=True).stdout
        return len([l for l in out.splitlines() if l.strip()])

    def test_many_concurrent_calls_share_connections(self):
        stub = self.channel.unary_unary(self.call("Wait"))
        futures = [stub.future(b"0.5", timeout=20) for _ in range(50)]
        time.sleep(0.25)
        # 50 calls in flight: one upstream connection carries them all. The
        # "checked" cluster's health checks connect to the same port every
        # 100 ms for a moment (longer under TSan), so the fewest seen in a few
        # looks is the pool's own.
        during = []
        for _ in range(5):
            during.append(self.upstream_connections(self.backend.port))
            time.sleep(0.02)
        self.assertEqual([f.result() for f in futures], [b"waited"] * 50)
        self.assertEqual(min(during), 1, during)

    def test_peer_max_concurrent_streams_is_respected(self):
        # The upstream takes 4 streams per connection: 12 calls at once need 3 connections, none refused.
        stub = self.channel.unary_unary(self.call("Wait", "/limited"))
        futures = [stub.future(b"0.5", timeout=20) for _ in range(12)]
        time.sleep(0.25)
        during = self.upstream_connections(self.limited.port)
        self.assertEqual([f.result() for f in futures], [b"waited"] * 12)
        self.assertGreaterEqual(during, 3)

    def test_health_checks_over_http2(self):
        # The gRPC server answers the GET (200, grpc-status 2); the HTTP/1.1 origin cannot speak HTTP/2.
        for _ in range(100):
            ok = self.sluice.metric("sluice_upstream_endpoint_healthy", cluster="checked",
                                    endpoint=f"127.0.0.1:{self.backend.port}")
            bad = self.sluice.metric("sluice_upstream_endpoint_healthy", cluster="checked",
                                     endpoint=f"127.0.0.1:{self.h1_port}")
            tls = self.sluice.metric("sluice_upstream_endpoint_healthy", cluster="checkedtls")
            if (ok, bad, tls) == (1, 0, 1):
                break
            time.sleep(0.1)
        self.assertEqual((ok, bad, tls), (1, 0, 1))

    def test_tls_upstream_by_alpn(self):
        reply = self.channel.unary_unary(self.call("Unary", "/tls"))(b"secret", timeout=10)
        self.assertEqual(reply, b"echo:secret")
        # An HTTPS upstream that does not choose h2 is refused with words.
        out = subprocess.run(["curl", "-s", "-i", f"http://127.0.0.1:{self.sluice.port}/https1/x"],
                             capture_output=True, text=True, timeout=20).stdout
        self.assertIn("HTTP/1.1 502", out)
        self.assertIn("upstream did not agree to HTTP/2 by ALPN", out)
        self.assertIn('set protocol: http1 on cluster "https1"', out)

    def test_http1_upstream_behind_http2_cluster_fails_clearly(self):
        with self.assertRaises(grpc.RpcError) as e:
            self.channel.unary_unary(self.call("Unary", "/h1"))(b"x", timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)  # an HTTP 502
        out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-i",
                              f"http://127.0.0.1:{self.sluice.port}/h1/x"], capture_output=True, text=True)
        self.assertIn("x-sluice-error", out.stdout)
        self.assertIn("HTTP/2", out.stdout.split("\r\n\r\n", 1)[-1])

    def test_http1_client_reaches_http2_upstream_with_trailers(self):
        framed = b"\x00" + len(b"curl").to_bytes(4, "big") + b"curl"
        out = subprocess.run(["curl", "-s", "--http1.1", "--raw", "-i", "-X", "POST",
                              "-H", "content-type: application/grpc", "-H", "te: trailers",
                              "--data-binary", "@-", f"http://127.0.0.1:{self.sluice.port}{self.call('Unary')}"],
                             input=framed, capture_output=True)
        text = out.stdout.decode("latin-1")
        head, body = text.split("\r\n\r\n", 1)
        self.assertIn("HTTP/1.1 200", head)
        self.assertIn("transfer-encoding: chunked", head.lower())
        self.assertIn("echo:curl", body)
        # The last chunk carries the upstream's trailers.
        self.assertRegex(body, r"\r\n0\r\n(?:[^\r]*\r\n)*grpc-status: 0\r\n")
        self.assertIn("x-trailer: after 4 bytes", body)

    def test_server_stream_survives_100_config_changes(self):
        call = self.backend.slow_call("changes")
        stream = self.channel.unary_stream(self.call("Slow"))(b"changes:101", timeout=120)
        self.assertTrue(call["started"].wait(10))
        got = []
        call["release"].release()
        got.append(next(stream))
        for i in range(100):
            # Each change replaces the cluster: a new config every time.
            status, _ = self.sluice.admin_call("PUT", "/clusters/grpc", {
                "endpoints": [f"127.0.0.1:{self.backend.port}"], "protocol": "http2",
                "max_requests_per_endpoint": 1000 + i})
            self.assertEqual(status, 200)
            call["release"].release()
            got.append(next(stream))
        self.assertEqual(got, [b"slow %d" % i for i in range(101)])
        self.assertEqual(list(stream), [])
        self.assertEqual(stream.code(), grpc.StatusCode.OK)
        self.assertFalse(call["cancelled"].is_set())
        _, config = self.sluice.admin_call("GET", "/config")
        self.assertIn('"max_requests_per_endpoint":1099', config.replace(" ", ""))

    def test_client_cancel_reaches_the_server(self):
        call = self.backend.slow_call("cancel")
        stream = self.channel.unary_stream(self.call("Slow"))(b"cancel:10", timeout=60)
        self.assertTrue(call["started"].wait(10))
        call["release"].release()
        self.assertEqual(next(stream), b"slow 0")
        stream.cancel()
        self.assertTrue(call["cancelled"].wait(10), "the upstream stream was not reset")


    def test_goaway_retries_only_unprocessed_streams(self):
        got = h2_get_many(self.sluice.port, ["/raw/first", "/raw/second"])
        self.assertEqual(got["/raw/first"], (200, b"first", None))
        self.assertEqual(got["/raw/second"], (200, b"second", None))
        with self.raw.lock:
            seen = list(self.raw.seen)
        # /first ran once; /second, left out of the GOAWAY, went again on a new connection.
        self.assertEqual([p for _, p in seen].count("first"), 1)
        firsts = [n for n, p in seen if p == "first"]
        seconds = [n for n, p in seen if p == "second"]
        self.assertEqual(len(seconds), 2)
        self.assertEqual(seconds[0], firsts[0])
        self.assertNotEqual(seconds[1], firsts[0])

    def test_upstream_stream_errors_are_explained(self):
        for path, words in (("/raw/reset-early", "upstream reset the HTTP/2 stream (INTERNAL_ERROR) before sending "
                                                 "response headers"),
                            ("/raw/refuse", "upstream refused the HTTP/2 stream (REFUSED_STREAM)")):
            out = subprocess.run(["curl", "-s", "-i", f"http://127.0.0.1:{self.sluice.port}{path}"],
                                 capture_output=True, text=True, timeout=20).stdout
            self.assertIn("HTTP/1.1 502", out, path)
            self.assertIn("x-sluice-error: upstream_reset", out.lower(), path)
            self.assertIn(words, out, path)
        # After the head, a reset cuts the client's response: no last chunk, and curl says so.
        out = subprocess.run(["curl", "-s", "-S", f"http://127.0.0.1:{self.sluice.port}/raw/reset-mid"],
                             capture_output=True, text=True, timeout=20)
        self.assertNotEqual(out.returncode, 0)
        got = h2_get_many(self.sluice.port, ["/raw/reset-mid"])
        self.assertEqual(got["/raw/reset-mid"][0], 200)
        self.assertEqual(got["/raw/reset-mid"][2], h2.errors.ErrorCodes.INTERNAL_ERROR)

    def test_request_trailers_reach_an_http2_upstream(self):
        status, body = h2_post_with_trailers(self.sluice.port, "/raw/echo-trailers", b"x" * 50000,
                                             [("x-checksum", "abc123"), ("x-count", "2")])
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), [["x-checksum", "abc123"], ["x-count", "2"]])

    def test_clients_that_stop_reading_hold_only_their_own_streams(self):
        # 20 streams whose client reads nothing: each holds its stream window
        # (64 KiB) at most, more than the upstream connection's 1 MiB together.
        stalled = socket.create_connection(("127.0.0.1", self.sluice.port), timeout=10)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        for _ in range(20):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":path", "/raw/flood"), (":scheme", "http"),
                                    (":authority", "test")], end_stream=True)
        stalled.sendall(conn.data_to_send())
        time.sleep(1)
        # Another client's request on the same upstream connection still goes through.
        got = h2_get_many(self.sluice.port, ["/raw/after-the-flood"], timeout=5)
        self.assertEqual(got["/raw/after-the-flood"][:2], (200, b"after-the-flood"))
        stalled.close()
        # 21 streams that arrived at once on a cold pool shared one new connection.
        with self.raw.lock:
            used = {n for n, p in self.raw.seen if p in ("flood", "after-the-flood")}
        self.assertEqual(len(used), 1, self.raw.seen)

    def test_a_wait_for_a_starting_connection_ends_at_the_connect_deadline(self):
        # The first request opens the connection, which the origin accepts and
        # never speaks on: it gets no answer within upstream_response (800ms).
        # The second waits for that connection to be ready; its wait must end
        # with its own connect deadline (200ms), not a fixed second later, so
        # it is answered first.
        done = []

        def get(name):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.sluice.port}/silent/{name}", timeout=10)
                done.append((name, 200, ""))
            except urllib.error.HTTPError as e:
                done.append((name, e.code, e.headers.get("x-sluice-error")))
        first = threading.Thread(target=get, args=("first",))
        first.start()
        self.assertTrue(self.silent.accepted.wait(5), "sluice did not connect to the silent origin")
        second = threading.Thread(target=get, args=("second",))
        second.start()
        first.join(10)
        second.join(10)
        self.assertEqual(done, [("second", 504, "upstream_connect_timeout"), ("first", 504, "upstream_timeout")])

    def test_trailers_only_answer(self):
        with self.assertRaises(grpc.RpcError) as e:
            self.channel.unary_unary("/raw/trailers-only")(b"x", timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(e.exception.details(), "denied")


if __name__ == "__main__":
    SLUICE = sys.argv.pop(1)
    unittest.main(verbosity=2)
