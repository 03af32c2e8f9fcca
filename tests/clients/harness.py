"""Starts the demo origin and sluice (both real binaries, port 0) for client tests."""
import json
import os
import re
import signal
import subprocess
import tempfile


class Running:
    def __init__(self, sluice, demo_origin, extra_clusters="", extra_routes="", tls=None):
        """tls: (cert, key) PEM paths to make the listener HTTPS and wss://."""
        self.procs = []
        tls_field = f", tls: {{cert: {tls[0]}, key: {tls[1]}}}" if tls else ""
        origin = self._start([demo_origin, "--port", "0"], r"address=127\.0\.0\.1:(\d+)")
        self.origin_port = origin
        config = f"""
listeners: [{{name: public, address: 127.0.0.1, port: 0{tls_field}}}]
clusters:
  - {{name: demo, endpoints: ["127.0.0.1:{origin}"]}}
{extra_clusters}
routes:
{extra_routes}
  - {{name: demo, match: {{path_prefix: /}}, cluster: demo}}
timeouts: {{drain_delay: 0s, drain: 2s}}
"""
        self.config = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        self.config.write(config)
        self.config.close()
        self.port = self._start([sluice, "run", "--config", self.config.name, "--admin", "127.0.0.1:0"],
                                r"^listening name=public address=127\.0\.0\.1:(\d+)$")
        self.admin_port = self._read_port(self.procs[-1], r"^admin listening address=127\.0\.0\.1:(\d+)$")

    def _start(self, argv, pattern):
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(p)
        return self._read_port(p, pattern)

    @staticmethod
    def _read_port(p, pattern):
        for line in p.stdout:
            m = re.search(pattern, line.strip())
            if m:
                return int(m.group(1))
        raise RuntimeError(f"{p.args[0]} did not start (no line matching {pattern})")

    def drain(self):
        """SIGTERM to sluice alone (the origin keeps running); returns its exit status."""
        sluice = self.procs[-1]
        sluice.send_signal(signal.SIGTERM)
        return sluice.wait(30)

    def close(self):
        for p in reversed(self.procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        os.unlink(self.config.name)


async def read_token_stream(reader, writer, host="t"):
    """GET /stream from the demo origin on an open connection; returns the
    number of tokens after checking they arrived whole and in order."""
    writer.write(b"GET /stream?delay_ms=20 HTTP/1.1\r\nHost: " + host.encode() + b"\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"200 OK" in head.split(b"\r\n")[0], head
    tokens = []
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        tokens += [json.loads(line) for line in rest[:size].decode().splitlines()]
        body = rest[size + 2:]
    assert [t["index"] for t in tokens] == list(range(len(tokens))) and len(tokens) > 5, tokens
    return len(tokens)
