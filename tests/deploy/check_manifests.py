#!/usr/bin/env python3
"""Checks the Kubernetes manifests in deploy/kubernetes against the sluice they
run, offline:
- each form (classic, native) is its kustomization's resources, expanded here
  (the kustomizations use `resources` only, so no kustomize binary is needed);
- the ConfigMap's config passes `sluice validate`; probes, ports, the admin
  address and the Prometheus annotations agree with it;
- termination: the grace period covers drain_delay + drain, the app's preStop
  keeps it serving that long, the native sidecar starts its drain from preStop;
- Pod Security "restricted" for every container, a read-only root, the state
  on an emptyDir with --resume, requests and limits, a CPU limit or --workers;
- with --schemas NODE_MODULES, every object against the Kubernetes object
  schemas (the npm package kubernetes-models) through validate_objects.mjs.

    check_manifests.py SLUICE DEPLOY_KUBERNETES_DIR [--schemas NODE_MODULES]
"""
import json
import pathlib
import re
import subprocess
import sys
import tempfile

import yaml

FORMS = ("classic", "native")


def seconds(d):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", d)
    n, unit = int(m.group(1)), m.group(2)
    return n / 1000 if unit == "ms" else n * {"s": 1, "m": 60, "h": 3600}[unit]


def expand(directory, seen=None):
    """The objects of a kustomization: its resources, files or directories, in order."""
    seen = seen or set()
    directory = directory.resolve()
    if directory in seen:
        raise ValueError(f"{directory}: kustomization cycle")
    seen.add(directory)
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(k) - {"apiVersion", "kind", "resources"}
    if unknown:
        raise ValueError(f"{directory}/kustomization.yaml uses {sorted(unknown)}: this check expands resources only")
    out = []
    for r in k.get("resources", []):
        path = directory / r
        if path.is_dir():
            out += expand(path, seen)
        else:
            out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def containers(pod):
    """(container, is_native_sidecar) for every container of the Pod spec."""
    for c in pod.get("initContainers", []):
        yield c, c.get("restartPolicy") == "Always"
    for c in pod.get("containers", []):
        yield c, False


def restricted_problems(pod, where):
    """Pod Security Standards, level "restricted" (the checks that apply to a Deployment's Pod)."""
    problems = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{where}: {key} is not allowed")
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                       "projected", "secret"}
    for v in pod.get("volumes", []):
        kinds = set(v) - {"name"}
        if not kinds <= allowed_volumes:
            problems.append(f"{where}: volume {v['name']} of type {sorted(kinds)} is not allowed")
    psc = pod.get("securityContext", {})
    seccomp_pod = psc.get("seccompProfile", {}).get("type")
    for c, _ in containers(pod):
        sc = c.get("securityContext", {})
        name = f"{where}: container {c['name']}"
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
            problems.append(f"{name}: runAsNonRoot must be true (Pod or container)")
        if sc.get("runAsUser", psc.get("runAsUser", 1)) == 0:
            problems.append(f"{name}: runAsUser 0")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: may add NET_BIND_SERVICE only")
        seccomp = sc.get("seccompProfile", {}).get("type", seccomp_pod)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
    return problems


def check_form(sluice, form, objects):
    problems = []
    kinds = {d["kind"]: d for d in objects}
    for want in ("ConfigMap", "Deployment", "Service"):
        if want not in kinds:
            return [f"{form}: no {want}"]
    text = kinds["ConfigMap"]["data"]["config.yaml"]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        run = subprocess.run([sluice, "validate", f.name], capture_output=True, text=True)
    if run.returncode != 0:
        problems.append(f"{form}: the ConfigMap's config does not validate: {run.stderr}")
    cfg = yaml.safe_load(text)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    problems += restricted_problems(pod, form)
    all_containers = list(containers(pod))
    sluice_c = [c for c, _ in all_containers if c["name"] == "sluice"]
    if len(sluice_c) != 1:
        return problems + [f"{form}: exactly one container named sluice is expected"]
    sc = sluice_c[0]
    native = any(native and c["name"] == "sluice" for c, native in all_containers)
    if (form == "native") != native:
        problems.append(f"{form}: sluice must {'' if form == 'native' else 'not '}be a native sidecar "
                        "(an init container with restartPolicy Always)")
    args = sc["args"]
    ports = {p["name"]: p["containerPort"] for p in sc["ports"]}
    if ports.get("probes") != cfg["probes"]["port"]:
        problems.append(f"{form}: the probes port differs between the manifest and the config")
    if ports.get("http") != cfg["listeners"][0]["port"]:
        problems.append(f"{form}: the http port differs between the manifest and the config")
    if sc["readinessProbe"]["httpGet"]["path"] != "/ready":
        problems.append(f"{form}: the readiness probe must be /ready")
    if sc.get("startupProbe", {}).get("httpGet", {}).get("path") != "/healthz":
        problems.append(f"{form}: the startup probe must be /healthz (/ready waits for the app)")
    if cfg["admin"]["address"] != "127.0.0.1":
        problems.append(f"{form}: the admin API must stay on loopback")
    if "--watch" not in args:
        problems.append(f"{form}: sluice must run with --watch so ConfigMap edits apply in place")
    mounts = {m["name"]: m["mountPath"] for m in sc["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_path = args[args.index("--config") + 1]
    config_vol = [n for n, p in mounts.items() if config_path.startswith(p + "/") and "configMap" in volumes[n]]
    if not config_vol or pathlib.PurePath(config_path).name != "config.yaml":
        problems.append(f"{form}: --config must point at config.yaml in the ConfigMap mount (no subPath: a "
                        "subPath mount never sees an update)")
    if any("subPath" in m for m in sc["volumeMounts"]):
        problems.append(f"{form}: no subPath mounts (they are not updated when the ConfigMap changes)")
    if "--state-dir" not in args or "--resume" not in args:
        problems.append(f"{form}: sluice needs --state-dir on an emptyDir and --resume")
    else:
        state = args[args.index("--state-dir") + 1]
        state_vol = [n for n, p in mounts.items() if (state == p or state.startswith(p + "/")) and "emptyDir" in volumes[n]]
        if not state_vol:
            problems.append(f"{form}: --state-dir {state} is not on an emptyDir")
    if not sc.get("securityContext", {}).get("readOnlyRootFilesystem"):
        problems.append(f"{form}: sluice must run with readOnlyRootFilesystem")
    res = sc.get("resources", {})
    if not res.get("requests", {}).get("memory") or not res.get("limits", {}).get("memory"):
        problems.append(f"{form}: sluice needs a memory request and limit")
    if not res.get("limits", {}).get("cpu") and "--workers" not in args:
        problems.append(f"{form}: sluice needs a CPU limit or --workers (else one worker per node CPU)")
    # Termination.
    t = cfg.get("timeouts", {})
    needed = seconds(t.get("drain_delay", "5s")) + seconds(t.get("drain", "30s"))
    grace = pod["terminationGracePeriodSeconds"]
    if grace <= needed:
        problems.append(f"{form}: terminationGracePeriodSeconds must exceed drain_delay + drain ({needed}s)")
    app = next(c for c, _ in all_containers if c["name"] != "sluice")
    sleep = app.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if len(sleep) != 2 or sleep[0] != "sleep" or int(sleep[1]) < needed:
        problems.append(f"{form}: the app needs a preStop sleep of at least drain_delay + drain ({needed}s)")
    elif int(sleep[1]) >= grace:
        problems.append(f"{form}: the app's preStop sleep must end before terminationGracePeriodSeconds")
    if form == "native":
        hook = sc.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        if hook[:2] != ["/usr/local/bin/sluice", "drain"] or "--wait" in hook:
            problems.append(f"{form}: the sidecar's preStop must run `/usr/local/bin/sluice drain` (without --wait: "
                            "the hook must return while sluice drains)")
        elif "--admin" in hook and hook[hook.index("--admin") + 1] != f"127.0.0.1:{cfg['admin']['port']}":
            problems.append(f"{form}: the preStop's --admin differs from the config's admin address")
    notes = kinds["Deployment"]["spec"]["template"]["metadata"].get("annotations", {})
    if notes.get("prometheus.io/scrape") == "true":
        if not cfg["probes"].get("metrics"):
            problems.append(f"{form}: Prometheus scrapes the probes port, so probes.metrics must be true")
        if int(notes.get("prometheus.io/port", 0)) != cfg["probes"]["port"]:
            problems.append(f"{form}: prometheus.io/port differs from the probes port")
    return problems


def main():
    sluice, root = sys.argv[1], pathlib.Path(sys.argv[2])
    node_modules = sys.argv[sys.argv.index("--schemas") + 1] if "--schemas" in sys.argv else None
    problems = []
    all_objects = []
    for form in FORMS:
        objects = expand(root / form)
        problems += check_form(sluice, form, objects)
        all_objects += [{"form": form, "object": o} for o in objects]
    if node_modules:
        if not (pathlib.Path(node_modules) / "kubernetes-models").exists():
            print(f"!!!! SKIPPED: no kubernetes-models under {node_modules} (npm unavailable?) !!!!")
            return 77
        run = subprocess.run(["node", str(pathlib.Path(__file__).with_name("validate_objects.mjs")), node_modules],
                             input=json.dumps(all_objects), capture_output=True, text=True)
        print(run.stdout, end="")
        if run.returncode != 0:
            problems.append("Kubernetes object schemas: " + (run.stderr or run.stdout))
    for p in problems:
        print("FAIL", p)
    print(f"{len(problems)} problem(s) in {', '.join(FORMS)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
