#!/usr/bin/env python3
"""A WebSocket client nobody here wrote (Debian's python3-websockets) against
the demo origin's echo through sluice, while an NDJSON stream runs beside it."""
import asyncio
import os
import sys

import websockets

sys.path.insert(0, os.path.dirname(__file__))
from harness import Running, read_token_stream  # noqa: E402


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
    return f"{await read_token_stream(reader, writer)} tokens"


async def main(port):
    results = await asyncio.gather(echo(port), ndjson(port), echo(port))
    print(*results, sep="; ")


if __name__ == "__main__":
    env = Running(sys.argv[1], sys.argv[2])
    try:
        asyncio.run(asyncio.wait_for(main(env.port), 60))
    finally:
        env.close()
