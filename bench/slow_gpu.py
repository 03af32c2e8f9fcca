#!/usr/bin/env python3
"""The "slow GPU" benchmark's two halves (python3 standard library only).

  slow_gpu.py origin PORT STATS_FILE eof|write
      An LLM server that runs 4 generations at a time and queues the rest
      itself, as Ollama (OLLAMA_NUM_PARALLEL=4) or vLLM would: the head at
      once, 0.2 s of thinking, then 40 tokens at 100 tokens/s, as SSE. "eof":
      like Ollama (Go's HTTP server reads in the background) it sees a closed
      connection at once, stops that generation and skips a queued one whose
      connection ended. "write": like many small servers it finds out only
      when a write fails. On SIGTERM it writes what it generated to
      STATS_FILE as JSON.

  slow_gpu.py load PORT CLIENTS SEED
      CLIENTS clients arrive over one second, each POSTing a prompt; every
      third leaves at a random moment in its first 3 s (while queued, waiting
      or streaming). Prints JSON: tokens received, completed, left, errors,
      time to first token percentiles of the clients that stayed.
"""
import asyncio
import json
import random
import signal
import sys
import time

PARALLEL = 4
THINK = 0.2
TOKENS = 40
TOKEN_INTERVAL = 0.01


async def origin(port, stats_file, detect):
    slots = asyncio.Semaphore(PARALLEL)
    stats = {"generated": 0, "generations": 0, "skipped_gone": 0, "stopped_gone": 0, "max_parallel": 0}
    running = 0

    async def handle(reader, writer):
        nonlocal running
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                gone = asyncio.Event()

                async def watch():  # a real server's background read: EOF means the client is gone
                    try:
                        if not await reader.read(1):
                            gone.set()
                    except (ConnectionError, asyncio.IncompleteReadError):
                        gone.set()
                watcher = asyncio.create_task(watch() if detect == "eof" else asyncio.sleep(0))
                async with slots:
                    if gone.is_set():
                        stats["skipped_gone"] += 1
                        return
                    running += 1
                    stats["max_parallel"] = max(stats["max_parallel"], running)
                    stats["generations"] += 1
                    try:
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n")
                        await writer.drain()
                        await asyncio.sleep(THINK)
                        for i in range(TOKENS):
                            if gone.is_set() or writer.is_closing():
                                stats["stopped_gone"] += 1
                                return
                            await asyncio.sleep(TOKEN_INTERVAL)
                            stats["generated"] += 1
                            data = b"data: {\"token\": %d}\n\n" % i
                            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                            await writer.drain()
                        writer.write(b"0\r\n\r\n")
                        await writer.drain()
                    finally:
                        running -= 1
                watcher.cancel()
                try:
                    await watcher
                except asyncio.CancelledError:
                    pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass  # the connection ended, or the server is stopping
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    with open(stats_file, "w") as f:
        json.dump(stats, f)


async def client(port, leave_after, out):
    start = time.monotonic()
    tokens = 0
    first = None
    status = None

    async def run():
        nonlocal tokens, first, status
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            body = b'{"model": "m", "prompt": "hi", "stream": true}'
            writer.write(b"POST /v1/generate HTTP/1.1\r\nHost: gpu\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ")[1])
            if status != 200:
                return
            buf = b""
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                buf += chunk
                n = buf.count(b"data: ")
                if n and first is None:
                    first = time.monotonic() - start
                tokens = n
                if buf.endswith(b"0\r\n\r\n"):
                    return
        finally:
            writer.close()

    try:
        if leave_after is None:
            await asyncio.wait_for(run(), 300)
            out.append({"left": False, "tokens": tokens, "status": status, "ttft": first})
        else:
            try:
                await asyncio.wait_for(run(), leave_after)  # cancelled: the connection closes
                out.append({"left": False, "tokens": tokens, "status": status, "ttft": first, "leaver_done": True})
            except asyncio.TimeoutError:
                out.append({"left": True, "tokens": tokens, "status": status})
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
        out.append({"left": False, "tokens": tokens, "status": status or 0, "error": True})


async def load(port, clients, seed):
    rng = random.Random(seed)
    out = []
    tasks = []
    start = time.monotonic()
    for i in range(clients):
        leave = rng.uniform(0.1, 3.0) if i % 3 == 0 else None
        tasks.append(asyncio.create_task(client(port, leave, out)))
        await asyncio.sleep(1.0 / clients)
    await asyncio.gather(*tasks)
    stayed = sorted(r["ttft"] for r in out if not r["left"] and r.get("ttft") is not None)

    def pct(p):
        return round(stayed[min(len(stayed) - 1, int(p * len(stayed)))], 3) if stayed else None
    print(json.dumps({
        "received": sum(r["tokens"] for r in out),
        "completed": sum(1 for r in out if not r["left"] and r["status"] == 200 and r["tokens"] == TOKENS),
        "left": sum(1 for r in out if r["left"]),
        "errors": sum(1 for r in out if not r["left"] and (r.get("error") or r["status"] != 200)),
        "ttft_p50": pct(0.5), "ttft_p90": pct(0.9), "ttft_p99": pct(0.99),
        "seconds": round(time.monotonic() - start, 1),
    }))


if __name__ == "__main__":
    if sys.argv[1] == "origin":
        asyncio.run(origin(int(sys.argv[2]), sys.argv[3], sys.argv[4]))
    else:
        asyncio.run(load(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
