#!/usr/bin/env python3
"""A WebSocket client nobody here wrote (Debian's python3-websockets) against
the demo origin's echo through sluice, while an NDJSON stream runs beside it."""
import asyncio
import json
import os
import sys

import websockets

sys.path.insert(0, os.path.dirname(__file__))
from harness import Running  # noqa: E402


async def echo(port):
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None, compression="deflate") as ws:
        for size in (1, 125, 126, 65535, 65536, 1 << 20):
            text = "é" * (size // 2) or "x"
            await ws.send(text)
            assert await ws.recv() == text, f"text of {size}"
            data = os.urandom(size)
            await ws.send(data)
            assert await ws.recv() == data, f"binary of {size}"
        # A fragmented message.
        await ws.send(iter([b"frag-", b"ment-", b"ed"]))
        assert await ws.recv() == b"frag-ment-ed"
        await ws.close()
    return "echo ok"


async def ndjson(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /stream?delay_ms=20 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
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
    return f"{len(tokens)} tokens"


async def main(port):
    results = await asyncio.gather(echo(port), ndjson(port), echo(port))
    print(*results, sep="; ")


if __name__ == "__main__":
    env = Running(sys.argv[1], sys.argv[2])
    try:
        asyncio.run(asyncio.wait_for(main(env.port), 60))
    finally:
        env.close()
