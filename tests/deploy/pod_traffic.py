"""Traffic a Pod's users keep open while sluice is told to go: a WebSocket and
a Server-Sent Events stream through sluice, checked across a termination.
Shared by the image run test and the kubelet-like test."""
import asyncio
import socket
import time
import urllib.error
import urllib.request

import websockets


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def http_get(url, timeout=5, data=None, headers=None, method=None):
    """(status, body text); status 0 with the reason when nothing answered."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (OSError, urllib.error.URLError) as e:
        return 0, str(e)


def wait_for(what, check, timeout=30, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def _read_sse(reader, events):
    """Reads one chunked SSE response to its last chunk; returns (events seen, ended cleanly)."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = await reader.read(4096)
        if not more:
            raise AssertionError("the stream closed before its response head")
        data += more
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head[:80]
    while not body.endswith(b"0\r\n\r\n"):
        more = await reader.read(4096)
        if not more:
            break
        body += more
    return body.count(b"event: tick"), body.endswith(b"0\r\n\r\n")


async def traffic_across_drain(host, port, terminate, drain_window, events=8, gap_ms=150):
    """Opens a WebSocket and an SSE stream through sluice at host:port, then calls
    `terminate` (a blocking function that starts the drain). Checks that the
    WebSocket still echoes after the drain began, that the stream gets every
    event and its final chunk, and that sluice ends the WebSocket within
    `drain_window` seconds (drain_delay + drain, plus a margin). Returns a line
    describing what happened."""
    ws = await websockets.connect(f"ws://{host}:{port}/ws", open_timeout=10)
    await ws.send("before")
    assert await ws.recv() == "before"
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /sse?count={events}&delay_ms={gap_ms} HTTP/1.1\r\nHost: app\r\n\r\n".encode())
    await writer.drain()
    stream = asyncio.create_task(_read_sse(reader, events))
    await asyncio.sleep(0.2)  # the stream is under way
    started = time.monotonic()
    await asyncio.get_running_loop().run_in_executor(None, terminate)
    await ws.send("during the drain")
    assert await ws.recv() == "during the drain", "the WebSocket stopped echoing when the drain began"
    seen, clean = await asyncio.wait_for(stream, 30)
    writer.close()
    assert seen == events and clean, f"the stream was cut during the drain: {seen} of {events} events, clean end {clean}"
    try:
        await asyncio.wait_for(ws.recv(), drain_window)
        raise AssertionError("the WebSocket got a message nobody sent")
    except websockets.ConnectionClosed as e:
        code = e.rcvd.code if e.rcvd else None
    except asyncio.TimeoutError:
        raise AssertionError(f"sluice did not end the WebSocket within {drain_window}s of the drain")
    return (f"stream: {seen}/{events} events and its last chunk; WebSocket echoed during the drain and was ended "
            f"{time.monotonic() - started:.1f}s after it began (close code {code})")
