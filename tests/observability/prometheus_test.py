#!/usr/bin/env python3
"""A real Prometheus against sluice: `promtool check metrics` on a scrape, then
a Prometheus server on loopback scraping sluice's admin port every second,
queried through its HTTP API until sluice_config_version and
sluice_websocket_connections_active show the expected values while a
WebSocket session is open (and move when the config changes and the session
ends). Exits 77 (skipped) where Debian's `prometheus` package is missing; the
CI setup (tools/deps.sh) installs it."""
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "clients"))
from harness import Running  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, data=None, method=None):
    headers = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, r.read().decode()


def query(prom, expr):
    """The value of an instant query with one result, or None."""
    _, body = http(f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    result = json.loads(body)["data"]["result"]
    return result[0]["value"][1] if len(result) == 1 else None


def wait_for(prom, expr, want, timeout=30):
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        got = query(prom, expr)
        if got == want:
            print(f"prometheus: {expr} = {got}")
            return
        time.sleep(0.25)
    raise AssertionError(f"prometheus: {expr} is {got}, expected {want} within {timeout}s")


async def scenario(env, prom):
    admin = env.admin_port
    async with websockets.connect(f"ws://127.0.0.1:{env.port}/ws", ping_interval=None) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"

        # The exposition passes Prometheus' own linter.
        _, text = http(f"http://127.0.0.1:{admin}/metrics")
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, f"promtool check metrics failed:\n{check.stdout}{check.stderr}"
        print("promtool check metrics: ok")

        wait_for(prom, 'up{job="sluice"}', "1")
        wait_for(prom, "sluice_config_version", "1")
        wait_for(prom, 'sluice_websocket_connections_active{route="demo"}', "1")
        # A route added on the admin API shows up as a new config version.
        status, _ = http(f"http://127.0.0.1:{admin}/routes/extra",
                         data=b'{"match": {"path": "/extra"}, "cluster": "demo"}', method="PUT")
        assert status == 200
        wait_for(prom, "sluice_config_version", "2")
        wait_for(prom, 'sluice_config_changes_total{result="applied"}', "1")
        # The WebSocket opened on version 1 is still there.
        await ws.send("still here")
        assert await ws.recv() == "still here"
        wait_for(prom, 'sluice_websocket_connections_active{route="demo"}', "1")
    wait_for(prom, 'sluice_websocket_connections_active{route="demo"}', "0")
    wait_for(prom, 'sluice_websocket_connections_total{route="demo"}', "1")


def main():
    sluice, origin = sys.argv[1], sys.argv[2]
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        print("skipped: Debian's prometheus package is not installed (tools/deps.sh installs it)")
        return 77
    env = Running(sluice, origin)
    work = tempfile.mkdtemp(prefix="sluice-prom-")
    prom_port = free_port()
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        f.write(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: sluice
    static_configs: [{{targets: ["127.0.0.1:{env.admin_port}"]}}]
""")
    log = open(os.path.join(work, "prometheus.log"), "w")
    prom = subprocess.Popen(["prometheus", f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/data",
                             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                if http(f"http://127.0.0.1:{prom_port}/-/ready")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or prom.poll() is not None:
                raise AssertionError("prometheus did not start:\n" + open(log.name).read()[-2000:])
            time.sleep(0.2)
        asyncio.run(asyncio.wait_for(scenario(env, prom_port), 90))
        print("prometheus scraped sluice: ok")
        return 0
    finally:
        prom.terminate()
        try:
            prom.wait(10)
        except subprocess.TimeoutExpired:
            prom.kill()
        env.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
