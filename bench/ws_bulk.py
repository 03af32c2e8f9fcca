#!/usr/bin/env python3
"""One-way bulk through a WebSocket tunnel: the origin streams one endless
binary message as fast as the client takes it, the client only counts.

  ws_bulk.py origin PORT                 accepts upgrades on 127.0.0.1:PORT
  ws_bulk.py client PORT CONNS SECONDS   prints: bytes N mib_per_second R

Where a direction keeps its socket buffer full, which ping-pong never does:
the case splice(2) is for. Python is cheap here, each send and recv moves
up to 1 MiB. Not a test: it reports figures.
"""
import base64
import hashlib
import socket
import sys
import threading
import time

CHUNK = 1 << 20
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_head(sock):
    head = b""
    while b"\r\n\r\n" not in head:
        got = sock.recv(4096)
        if not got:
            raise ConnectionError("closed before the end of the head")
        head += got
    return head


def serve(conn):
    try:
        head = read_head(conn)
        key = b""
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        # One binary frame of 2^62 bytes: the tunnel sees payload and no frame edge.
        conn.sendall(bytes([0x82, 127]) + (1 << 62).to_bytes(8, "big"))
        payload = memoryview(b"x" * CHUNK)
        while True:
            conn.sendall(payload)
    except OSError:
        pass
    finally:
        conn.close()


def origin(port):
    listener = socket.create_server(("127.0.0.1", port), backlog=128)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def client(port, conns, seconds):
    totals = [0] * conns
    deadline = time.monotonic() + seconds

    def one(i):
        sock = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(b"bulk-bench-key!!").decode()
        sock.sendall((f"GET /bulk HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = read_head(sock)
        if not head.startswith(b"HTTP/1.1 101"):
            raise SystemExit(f"no upgrade: {head.splitlines()[0]!r}")
        buf = bytearray(CHUNK)
        got = len(head) - head.index(b"\r\n\r\n") - 4
        while time.monotonic() < deadline:
            n = sock.recv_into(buf)
            if n == 0:
                break
            got += n
        totals[i] = got
        sock.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(totals)
    print(f"bytes {total} mib_per_second {total / seconds / (1 << 20):.1f}")


if __name__ == "__main__":
    if sys.argv[1] == "origin":
        origin(int(sys.argv[2]))
    else:
        client(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
