#!/usr/bin/python3
"""The sidecar as a kubelet drives it, without a cluster: sluice and an app
(the demo origin) in a network namespace with an address of its own (a Pod),
started from the classic manifest's args and the ConfigMap's config.

- The kubelet's probes reach /healthz and /ready on the Pod's address; the
  admin API (loopback) does not answer there.
- A ConfigMap update and a Secret (certificate) renewal written exactly as the
  kubelet writes projected volumes: a new timestamped directory, then the
  `..data` symlink swapped atomically by rename.
- A route added through the admin API survives a restart of the sidecar alone
  (the state directory is the Pod's emptyDir).
- Termination with a live WebSocket and a stream, in both orders:
  classic: sluice gets SIGTERM while the app's preStop sleep keeps it serving;
  native: sluice's preStop runs `sluice drain`, the app's preStop sleeps, the
  app exits, then sluice gets SIGTERM.

Only timeouts are shortened (drain_delay 1s, drain 3s) and a TLS listener is
added for the Secret. Needs root for `ip netns`; elsewhere it exits 77 (skip)
and says why.

    kubelet_test.py SLUICE DEMO_ORIGIN
"""
import asyncio
import json
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import yaml

sys.path.insert(0, os.path.dirname(__file__))
from pod_traffic import http_get, traffic_across_drain, wait_for  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
DRAIN_DELAY, DRAIN = 1, 3


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


class PodNetwork:
    """A network namespace joined to the host by a veth pair: the Pod's own address."""

    def __init__(self):
        n = os.getpid() % 250 + 1
        self.ns = f"sluice-pod-{os.getpid()}"
        self.host_if, self.pod_if = f"slh{os.getpid()}"[:15], f"slp{os.getpid()}"[:15]
        self.host_ip, self.ip = f"10.233.{n}.1", f"10.233.{n}.2"
        r = sh("ip", "netns", "add", self.ns, check=False)
        if r.returncode != 0:
            print(f"!!!! SKIPPED: cannot make a network namespace here (ip netns add: {r.stderr.strip()}); "
                  "this test needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) !!!!")
            sys.exit(77)
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.pod_if)
        sh("ip", "link", "set", self.pod_if, "netns", self.ns)
        sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")
        self.run("ip", "addr", "add", f"{self.ip}/30", "dev", self.pod_if)
        self.run("ip", "link", "set", self.pod_if, "up")
        self.run("ip", "link", "set", "lo", "up")

    def run(self, *args, check=True):
        return sh("ip", "netns", "exec", self.ns, *args, check=check)

    def popen(self, *args, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.ns, *args], **kw)

    def call(self, method, path, body=None):
        """An admin API call from inside the Pod (loopback), as automation in the Pod makes it."""
        code = f"""
import json, sys, urllib.request, urllib.error
req = urllib.request.Request("http://127.0.0.1:9901{path}", method={method!r},
                             data={json.dumps(body).encode() if body is not None else None!r},
                             headers={{"Content-Type": "application/json"}})
try:
    r = urllib.request.urlopen(req, timeout=5); print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"""
        out = self.run("/usr/bin/python3", "-c", code).stdout
        status, _, text = out.partition("\n")
        return int(status), text

    def close(self):
        sh("ip", "netns", "del", self.ns, check=False)  # takes the veth pair with it


class ProjectedVolume:
    """A ConfigMap or Secret volume as the kubelet's atomic writer keeps it."""

    def __init__(self, path, files):
        self.path = pathlib.Path(path)
        self.path.mkdir(parents=True)
        self.current = None
        self.update(files)

    def update(self, files):
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + str(time.monotonic_ns())
        new = self.path / stamp
        new.mkdir()
        for name, content in files.items():
            (new / name).write_bytes(content if isinstance(content, bytes) else content.encode())
            link = self.path / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        tmp = self.path / "..data_tmp"
        tmp.symlink_to(stamp)
        os.rename(tmp, self.path / "..data")  # the one atomic step
        if self.current:
            shutil.rmtree(self.path / self.current)
        self.current = stamp


def make_certificate(directory, name):
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", f"/CN={name}")
    return cert.read_text(), key.read_text()


def served_certificate(ip, port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((ip, port), timeout=5) as s, ctx.wrap_socket(s, server_hostname="chat") as t:
        return t.getpeercert(binary_form=True)


class Pod:
    def __init__(self, sluice, origin, work):
        self.sluice, self.origin, self.work = sluice, origin, pathlib.Path(work)
        self.net = PodNetwork()
        manifests = ROOT / "deploy" / "kubernetes"
        cfg_text = yaml.safe_load((manifests / "base" / "configmap.yaml").read_text())["data"]["config.yaml"]
        cfg = yaml.safe_load(cfg_text)
        deployment = yaml.safe_load((manifests / "classic" / "deployment.yaml").read_text())
        container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "sluice")
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        self.config_dir, self.tls_dir, self.state_dir = self.work / "config", self.work / "tls", self.work / "state"
        self.state_dir.mkdir()
        # The container's args, with its mounts where this test keeps them.
        self.args = [a.replace(mounts["sluice-config"], str(self.config_dir))
                      .replace(mounts["sluice-state"], str(self.state_dir)) for a in container["args"]]
        self.args = [self.sluice] + self.args
        cfg["timeouts"].update({"drain_delay": f"{DRAIN_DELAY}s", "drain": f"{DRAIN}s"})
        for c in cfg["clusters"]:
            if "health_check" in c:
                c["health_check"].update({"interval": "200ms", "timeout": "200ms"})
        cfg["listeners"].append({"name": "secure", "address": "0.0.0.0", "port": 8443,
                                 "tls": {"cert": str(self.tls_dir / "tls.crt"), "key": str(self.tls_dir / "tls.key")}})
        self.cfg = cfg
        self.certs = self.work / "certs"
        self.certs.mkdir()
        crt, key = make_certificate(self.certs, "chat-v1")
        self.tls = ProjectedVolume(self.tls_dir, {"tls.crt": crt, "tls.key": key})
        self.config = ProjectedVolume(self.config_dir, {"config.yaml": yaml.safe_dump(cfg)})
        self.app = self.sidecar = None

    def start_app(self):
        self.app = self.net.popen(self.origin, "--address", "127.0.0.1", "--port", "3000",
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert "listening" in self.app.stdout.readline()

    def start_sidecar(self):
        self.log = open(self.work / "sluice.log", "a")
        self.sidecar = self.net.popen(*self.args, stdout=subprocess.DEVNULL, stderr=self.log)
        # The kubelet's probes, from outside the Pod.
        def started():
            if self.sidecar.poll() is not None:
                raise AssertionError(f"sluice exited {self.sidecar.returncode} at start")
            return http_get(f"http://{self.net.ip}:9902/healthz")[0] == 200

        wait_for("/healthz on the Pod's address", started)
        wait_for("/ready on the Pod's address", lambda: http_get(f"http://{self.net.ip}:9902/ready")[0] == 200)

    def url(self, path):
        return f"http://{self.net.ip}:8080{path}"

    def close(self):
        for p in (self.sidecar, self.app):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        self.net.close()


def check_probes_and_admin(pod):
    status, body = http_get(f"http://{pod.net.ip}:9902/ready")
    assert status == 200 and body == "ready\n", (status, body)
    try:
        socket.create_connection((pod.net.ip, 9901), timeout=2).close()
        raise AssertionError("the admin API answers on the Pod's address")
    except ConnectionRefusedError:
        pass
    status, body = pod.net.call("GET", "/config")
    assert status == 200 and json.loads(body)["version"] >= 1, (status, body)
    status, _ = http_get(pod.url("/hello"))
    assert status == 200
    print("probes answer on the Pod's address, the admin API only on its loopback; traffic flows")


def check_configmap_update(pod):
    before = json.loads(pod.net.call("GET", "/config")[1])
    assert http_get(pod.url("/v2/hello"))[0] == 404  # the app has no /v2/
    pod.cfg["routes"].insert(0, {"name": "v2", "match": {"path_prefix": "/v2/"}, "rewrite": {"path_prefix": "/"},
                                 "cluster": "app"})
    pod.config.update({"config.yaml": yaml.safe_dump(pod.cfg)})
    wait_for("the ConfigMap update to apply", lambda: http_get(pod.url("/v2/hello"))[0] == 200, timeout=15)
    after = json.loads(pod.net.call("GET", "/config")[1])
    assert after["version"] == before["version"] + 1 and after["hash"] != before["hash"], (before, after)
    print(f"ConfigMap update (..data swapped) applied as version {after['version']}")


def check_secret_renewal(pod):
    old = served_certificate(pod.net.ip, 8443)
    assert old == ssl.PEM_cert_to_DER_cert((pod.certs / "chat-v1.crt").read_text())
    crt, key = make_certificate(pod.certs, "chat-v2")
    pod.tls.update({"tls.crt": crt, "tls.key": key})
    new = ssl.PEM_cert_to_DER_cert(crt)
    wait_for("the renewed certificate to be served", lambda: served_certificate(pod.net.ip, 8443) == new, timeout=15)
    print("Secret renewal (..data swapped) served on new handshakes")


def check_sidecar_restart_keeps_api_routes(pod):
    status, body = pod.net.call("POST", "/routes", {"name": "api", "match": {"path_prefix": "/api/"},
                                                    "rewrite": {"path_prefix": "/"}, "cluster": "app"})
    assert status == 201, (status, body)
    assert http_get(pod.url("/api/hello"))[0] == 200
    version = json.loads(pod.net.call("GET", "/config")[1])["version"]
    # The container dies (OOM kill, crash) and the kubelet starts it again; the emptyDir stays.
    pod.sidecar.send_signal(signal.SIGKILL)
    pod.sidecar.wait()
    pod.start_sidecar()
    assert http_get(pod.url("/api/hello"))[0] == 200, "the API-added route was lost in the restart"
    assert http_get(pod.url("/v2/hello"))[0] == 200, "the ConfigMap's change was lost in the restart"
    after = json.loads(pod.net.call("GET", "/config")[1])["version"]
    assert after == version, (version, after)
    print(f"sidecar-only restart: resumed at version {after} with the API-added route")


def terminate_classic(pod):
    """Both containers get SIGTERM at once; the app's preStop sleep delays its own."""
    events = []

    def app_prestop_then_sigterm():
        time.sleep(DRAIN_DELAY + DRAIN + 1)
        events.append(("app stopped", pod.sidecar.poll()))
        pod.app.send_signal(signal.SIGTERM)

    threading.Thread(target=app_prestop_then_sigterm, daemon=True).start()

    def terminate():
        pod.sidecar.send_signal(signal.SIGTERM)
        wait_for("/ready to turn 503", lambda: http_get(f"http://{pod.net.ip}:9902/ready")[0] == 503, timeout=5)

    line = asyncio.run(traffic_across_drain(pod.net.ip, 8080, terminate, DRAIN_DELAY + DRAIN + 5))
    code = pod.sidecar.wait(timeout=30)
    pod.app.wait(timeout=30)
    assert code == 0, f"sluice exited {code}"
    assert events and events[0][1] == 0, f"sluice had not finished its drain when the app stopped: {events}"
    print(f"classic termination: {line}; sluice exited 0 before the app stopped")


def terminate_native(pod):
    """sluice's preStop (`sluice drain`) and the app's preStop start together;
    the app exits after its sleep; then sluice gets SIGTERM."""
    order = []

    def terminate():
        started = time.monotonic()
        r = pod.net.run(pod.sluice, "drain", "--admin", "127.0.0.1:9901", check=False)
        assert r.returncode == 0, r.stderr
        order.append(f"preStop `sluice drain` returned in {time.monotonic() - started:.2f}s")
        wait_for("/ready to turn 503", lambda: http_get(f"http://{pod.net.ip}:9902/ready")[0] == 503, timeout=5)

        def app_then_sidecar():
            time.sleep(DRAIN_DELAY + DRAIN + 1)  # the app's preStop
            pod.app.send_signal(signal.SIGTERM)
            pod.app.wait()
            order.append("app exited")
            if pod.sidecar.poll() is None:  # the kubelet's SIGTERM to the sidecar, last
                pod.sidecar.send_signal(signal.SIGTERM)
                order.append("sluice got SIGTERM")
            else:
                order.append("sluice had already drained and exited")

        threading.Thread(target=app_then_sidecar, daemon=True).start()

    line = asyncio.run(traffic_across_drain(pod.net.ip, 8080, terminate, DRAIN_DELAY + DRAIN + 5))
    code = pod.sidecar.wait(timeout=30)
    wait_for("the app to exit", lambda: len(order) >= 3, timeout=30)
    assert code == 0, f"sluice exited {code}"
    print(f"native termination: {line}; {'; '.join(order)}; sluice exited 0")


def main():
    sluice, origin = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="sluice-pod-")
    os.chmod(work, 0o755)
    pod = None
    try:
        pod = Pod(sluice, origin, work)
        pod.start_app()
        pod.start_sidecar()
        check_probes_and_admin(pod)
        check_configmap_update(pod)
        check_secret_renewal(pod)
        check_sidecar_restart_keeps_api_routes(pod)
        terminate_classic(pod)
        # The next Pod life: the same volumes, a native sidecar this time.
        pod.start_app()
        pod.start_sidecar()
        terminate_native(pod)
        print("kubelet-like test: OK")
        return 0
    except BaseException:
        if pod and (pod.work / "sluice.log").exists():
            print((pod.work / "sluice.log").read_text()[-4000:], file=sys.stderr)
        raise
    finally:
        if pod:
            pod.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
