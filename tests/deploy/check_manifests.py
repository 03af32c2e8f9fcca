#!/usr/bin/env python3
"""Checks deploy/kubernetes/sidecar.yaml against the sluice it runs: the
ConfigMap's config validates, probes and ports point where sluice listens, and
the grace period covers the drain."""
import pathlib
import re
import subprocess
import sys
import tempfile

import yaml


def seconds(d):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", d)
    n, unit = int(m.group(1)), m.group(2)
    return n / 1000 if unit == "ms" else n * {"s": 1, "m": 60, "h": 3600}[unit]


def main():
    sluice, manifest = sys.argv[1], pathlib.Path(sys.argv[2])
    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d]
    kinds = {d["kind"]: d for d in docs}
    text = kinds["ConfigMap"]["data"]["config.yaml"]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        run = subprocess.run([sluice, "validate", f.name], capture_output=True, text=True)
    problems = []
    if run.returncode != 0:
        problems.append("ConfigMap config does not validate: " + run.stderr)
    cfg = yaml.safe_load(text)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "sluice")
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    if ports.get("probes") != cfg["probes"]["port"]:
        problems.append("the probes port differs between the manifest and the config")
    if ports.get("http") != cfg["listeners"][0]["port"]:
        problems.append("the http port differs between the manifest and the config")
    if sidecar["readinessProbe"]["httpGet"]["path"] != "/ready":
        problems.append("the readiness probe must be /ready")
    if cfg["admin"]["address"] != "127.0.0.1":
        problems.append("the admin API must stay on loopback")
    t = cfg.get("timeouts", {})
    needed = seconds(t.get("drain_delay", "5s")) + seconds(t.get("drain", "30s"))
    if pod["terminationGracePeriodSeconds"] <= needed:
        problems.append(f"terminationGracePeriodSeconds must exceed drain_delay + drain ({needed}s)")
    if "--watch" not in sidecar["args"]:
        problems.append("sluice must run with --watch so ConfigMap edits apply in place")
    app = next(c for c in pod["containers"] if c["name"] != "sluice")
    sleep = app.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if len(sleep) != 2 or sleep[0] != "sleep" or int(sleep[1]) < needed:
        problems.append(f"the app needs a preStop sleep of at least drain_delay + drain ({needed}s)")
    elif int(sleep[1]) >= pod["terminationGracePeriodSeconds"]:
        problems.append("the app's preStop sleep must end before terminationGracePeriodSeconds")
    notes = kinds["Deployment"]["spec"]["template"]["metadata"].get("annotations", {})
    if notes.get("prometheus.io/scrape") == "true":
        if not cfg["probes"].get("metrics"):
            problems.append("Prometheus scrapes the probes port, so probes.metrics must be true")
        if int(notes.get("prometheus.io/port", 0)) != cfg["probes"]["port"]:
            problems.append("prometheus.io/port differs from the probes port")
    mount = sidecar["volumeMounts"][0]["mountPath"]
    if sidecar["args"][-1] != mount + "/config.yaml":
        problems.append("--config does not point into the ConfigMap mount")
    for p in problems:
        print("FAIL", p)
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
