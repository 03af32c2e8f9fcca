#!/usr/bin/python3
"""Runs the sluice image as the restricted Pod manifest runs it (read-only root,
non-root user, every capability dropped, no privilege escalation, a CPU and a
memory limit, the state directory on a tmpfs as on an emptyDir) and sends real
traffic through it to the demo origin on the host: HTTP, a WebSocket and a
stream, a route added through the admin API, then a drain two ways: SIGTERM
(what the kubelet sends) and `sluice drain` run inside the image (what a
native sidecar's hook runs). Prints the image size and memory figures.

    deploy/test-image.sh [IMAGE]     (build it first: deploy/build-image.sh)
"""
import asyncio
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from pod_traffic import free_port, http_get, traffic_across_drain, wait_for  # noqa: E402

import websockets  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
PODMAN = ["podman"]
RUNTIME = ["--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def podman(*args, check=True, **kw):
    return subprocess.run(PODMAN + list(args), check=check, capture_output=True, text=True, **kw)


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Container:
    def __init__(self, image, config_dir, name):
        self.name = name
        podman("rm", "-f", name, check=False)
        podman(*RUNTIME, "run", "-d", "--name", name, *LIMITS,
               "--network", "host",
               "--read-only", "--user", "10001:10001", "--cap-drop=ALL",
               "--security-opt", "no-new-privileges",
               "--cpus", "0.5", "--memory", "128m",
               "--tmpfs", "/var/lib/sluice:rw,size=16m,mode=1777",
               "-v", f"{config_dir}:/etc/sluice:ro",
               image, "run", "--config", "/etc/sluice/config.yaml", "--watch",
               "--state-dir", "/var/lib/sluice", "--resume")

    def logs(self):
        r = podman("logs", self.name, check=False)
        return r.stdout + r.stderr

    def exec(self, *args):
        return podman("exec", self.name, *args, check=False)

    def pid(self):
        return int(podman("inspect", "--format", "{{.State.Pid}}", self.name).stdout.strip())

    def wait_exit(self, timeout=60):
        r = podman("wait", self.name, timeout=timeout)
        return int(r.stdout.strip().splitlines()[-1])

    def remove(self):
        podman("rm", "-f", self.name, check=False)


def write_config(directory, origin_port, ports):
    text = f"""
admin: {{address: 127.0.0.1, port: {ports['admin']}}}
probes: {{address: 127.0.0.1, port: {ports['probes']}, ready_clusters: [app]}}
listeners: [{{name: public, address: 127.0.0.1, port: {ports['public']}}}]
clusters:
  - name: app
    endpoints: ["127.0.0.1:{origin_port}"]
    health_check: {{path: /healthz, interval: 500ms, timeout: 500ms}}
routes: [{{name: all, match: {{path_prefix: /}}, cluster: app}}]
timeouts: {{drain_delay: 1s, drain: 4s}}
"""
    path = pathlib.Path(directory) / "config.yaml"
    path.write_text(text)
    os.chmod(directory, 0o755)
    os.chmod(path, 0o644)


async def idle_websockets(port, n):
    conns = []
    for _ in range(n):
        conns.append(await websockets.connect(f"ws://127.0.0.1:{port}/ws"))
    await conns[-1].send("x")
    assert await conns[-1].recv() == "x"
    return conns


def run_once(image, origin_port, how, measure):
    ports = {k: free_port() for k in ("admin", "probes", "public")}
    with tempfile.TemporaryDirectory() as d:
        write_config(d, origin_port, ports)
        c = Container(image, d, f"sluice-image-test-{os.getpid()}")
        try:
            # wait-ready from inside the image: what an app container runs.
            r = c.exec("/usr/local/bin/sluice", "wait-ready", "--url",
                       f"http://127.0.0.1:{ports['probes']}/ready", "--timeout", "30s")
            assert r.returncode == 0, f"wait-ready failed: {r.stdout}{r.stderr}\n{c.logs()}"
            logs = c.logs()
            m = re.search(r"workers: (\d+), from ([^\n\"]*)", logs)
            assert m, logs
            print(f"  workers: {m.group(1)} ({m.group(2)})")
            assert m.group(1) == "1", "a 0.5 CPU limit must give 1 worker"
            base = f"http://127.0.0.1:{ports['public']}"
            status, body = http_get(base + "/hello")
            assert status == 200 and "hello" in body, (status, body)
            # A route added through the admin API, as automation does.
            status, body = http_get(f"http://127.0.0.1:{ports['admin']}/routes", method="POST",
                                    data=json.dumps({"name": "api", "match": {"path_prefix": "/api/"},
                                                     "rewrite": {"path_prefix": "/"}, "cluster": "app"}).encode(),
                                    headers={"Content-Type": "application/json"})
            assert status == 201, (status, body)
            status, body = http_get(base + "/api/hello")
            assert status == 200 and "hello" in body, (status, body)
            # The state file lives on the tmpfs: a read-only root is no obstacle.
            r = c.exec("/usr/local/bin/sluice", "validate", "/etc/sluice/config.yaml")
            assert r.returncode == 0, r.stderr
            if measure:
                pid = c.pid()
                before = rss_kib(pid)
                loop = asyncio.new_event_loop()
                conns = loop.run_until_complete(idle_websockets(ports["public"], 200))
                time.sleep(0.5)
                after = rss_kib(pid)
                print(f"  memory: {before} KiB resident with no connections; {after} KiB with 200 idle WebSockets "
                      f"({(after - before) / 200:.1f} KiB each)")
                for ws in conns:
                    loop.run_until_complete(ws.close())
                loop.close()

            def terminate():
                if how == "SIGTERM":
                    podman("kill", "--signal", "TERM", c.name)
                else:
                    r = c.exec("/usr/local/bin/sluice", "drain", "--admin", f"127.0.0.1:{ports['admin']}")
                    assert r.returncode == 0, r.stderr
                # /ready turns 503 at once.
                wait_for("/ready to answer 503",
                         lambda: http_get(f"http://127.0.0.1:{ports['probes']}/ready")[0] == 503, timeout=5)

            line = asyncio.run(traffic_across_drain("127.0.0.1", ports["public"], terminate, drain_window=1 + 4 + 5))
            print(f"  {how}: {line}")
            code = c.wait_exit()
            logs = c.logs()
            assert code == 0, f"exit {code}\n{logs}"
            assert "drain: done" in logs, logs
            print(f"  {how}: exit 0 after the drain")
        except Exception:
            print(c.logs(), file=sys.stderr)
            raise
        finally:
            c.remove()


def main():
    version = re.search(r"project\(sluice VERSION ([0-9.]+)", (ROOT / "CMakeLists.txt").read_text()).group(1)
    image = sys.argv[1] if len(sys.argv) > 1 else f"localhost/sluice:{version}"
    if subprocess.run(PODMAN + ["image", "exists", image]).returncode != 0:
        print(f"test-image: no image {image}; build it with deploy/build-image.sh", file=sys.stderr)
        return 2
    origin_bin = ROOT / "build" / "sluice-demo-origin"
    if not origin_bin.exists():
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(ROOT / "build"), "-G", "Ninja",
                        "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
        subprocess.run(["cmake", "--build", str(ROOT / "build"), "--target", "sluice-demo-origin"], check=True)
    origin = subprocess.Popen([str(origin_bin), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        origin_port = int(re.search(r":(\d+)$", origin.stdout.readline().strip()).group(1))
        size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())
        print(f"image {image}: {size / 1024 / 1024:.1f} MiB")
        print("run 1: stopped by SIGTERM, as the kubelet stops a container")
        run_once(image, origin_port, "SIGTERM", measure=True)
        print("run 2: drained by `sluice drain` run inside the image, as a native sidecar's hook does")
        run_once(image, origin_port, "sluice drain", measure=False)
        print("test-image: OK")
        return 0
    finally:
        origin.terminate()


if __name__ == "__main__":
    sys.exit(main())
