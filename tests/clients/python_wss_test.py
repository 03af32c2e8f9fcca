#!/usr/bin/env python3
"""wss:// and HTTPS through sluice with clients nobody here wrote: Debian's
python3-websockets over TLS (text and binary up to 1 MiB, a fragmented
message) beside an NDJSON stream read over TLS with Python's ssl module. The
certificates are made at test time with the openssl CLI and trusted through a
test CA only."""
import asyncio
import os
import ssl
import subprocess
import sys
import tempfile

import websockets

sys.path.insert(0, os.path.dirname(__file__))
from harness import Running, read_token_stream  # noqa: E402


def make_certs(d):
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{d}/ca.key",
        "-out", f"{d}/ca.crt", "-days", "2", "-subj", "/CN=sluice test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{d}/tls.key",
        "-out", f"{d}/tls.csr", "-subj", "/CN=localhost")
    with open(f"{d}/ext.cnf", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", f"{d}/tls.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key", "-CAcreateserial",
        "-out", f"{d}/tls.crt", "-days", "2", "-extfile", f"{d}/ext.cnf")
    return f"{d}/ca.crt", f"{d}/tls.crt", f"{d}/tls.key"


async def echo(port, ctx):
    async with websockets.connect(f"wss://localhost:{port}/ws", ssl=ctx, max_size=None) as ws:
        for size in (1, 125, 126, 65535, 65536, 1 << 20):
            text = "é" * (size // 2) or "x"
            await ws.send(text)
            assert await ws.recv() == text, f"text of {size}"
            data = os.urandom(size)
            await ws.send(data)
            assert await ws.recv() == data, f"binary of {size}"
        await ws.send(iter([b"frag-", b"ment-", b"ed"]))
        assert await ws.recv() == b"frag-ment-ed"
        await ws.close()
    return "wss echo ok"


async def ndjson(port, ctx):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    return f"{await read_token_stream(reader, writer, host='localhost')} tokens over TLS"


async def main(port, ctx):
    print(*await asyncio.gather(echo(port, ctx), ndjson(port, ctx), echo(port, ctx)), sep="; ")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="sluice-wss-") as d:
        ca, cert, key = make_certs(d)
        ctx = ssl.create_default_context(cafile=ca)
        env = Running(sys.argv[1], sys.argv[2], tls=(cert, key))
        try:
            asyncio.run(asyncio.wait_for(main(env.port, ctx), 60))
        finally:
            env.close()
