#!/usr/bin/env python3
"""A drain as a client nobody here wrote sees it (Debian's python3-websockets):
sluice gets SIGTERM while WebSocket sessions are open, over ws:// and wss://,
and each client receives a Close frame with code 1001 (going away), not a
dropped connection (1006); sluice then exits 0."""
import asyncio
import os
import ssl
import sys
import tempfile

import websockets

sys.path.insert(0, os.path.dirname(__file__))
from harness import Running  # noqa: E402
from python_wss_test import make_certs  # noqa: E402


async def session(url, ctx, ready):
    async with websockets.connect(url, ssl=ctx, max_size=None) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        ready.set()
        try:
            message = await asyncio.wait_for(ws.recv(), 20)
            raise AssertionError(f"a message instead of a Close frame: {message!r}")
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None, f"no Close frame received (code {ws.close_code}): {closed!r}"
            assert closed.rcvd.code == 1001, f"Close code {closed.rcvd.code}, want 1001 (going away)"
            return ws.close_code


async def drained(env, url, ctx, sessions=3):
    events = [asyncio.Event() for _ in range(sessions)]
    tasks = [asyncio.create_task(session(url, ctx, e)) for e in events]
    await asyncio.gather(*(e.wait() for e in events))
    status = await asyncio.get_running_loop().run_in_executor(None, env.drain)
    codes = await asyncio.gather(*tasks)
    assert status == 0, f"sluice exited {status}"
    return f"{url.split(':')[0]}: {len(codes)} sessions closed with {sorted(set(codes))}"


def main(sluice, origin):
    plain = Running(sluice, origin)
    try:
        print(asyncio.run(asyncio.wait_for(drained(plain, f"ws://127.0.0.1:{plain.port}/ws", None), 60)))
    finally:
        plain.close()
    with tempfile.TemporaryDirectory(prefix="sluice-drain-") as d:
        ca, cert, key = make_certs(d)
        ctx = ssl.create_default_context(cafile=ca)
        tls = Running(sluice, origin, tls=(cert, key))
        try:
            print(asyncio.run(asyncio.wait_for(drained(tls, f"wss://localhost:{tls.port}/ws", ctx), 60)))
        finally:
            tls.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
