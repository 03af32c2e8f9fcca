#!/usr/bin/env python3
"""Checks that `sluice validate` and schemas/config.schema.json agree.

The corpus has three folders:
  valid/     both accept
  invalid/   both reject; sluice names the JSON pointer given in expected.json
  semantic/  the schema accepts (JSON Schema cannot express the rule: unique
             names, references between sections, address clashes) and sluice
             rejects at the pointer given in expected.json
Every file under --also (the shipped examples) must be valid too.
"""
import argparse
import json
import pathlib
import subprocess
import sys

import jsonschema
import yaml


def load(path):
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    # YAML 1.2 core scalars, as sluice reads them: no yes/no/on/off booleans.
    class Loader(yaml.SafeLoader):
        pass
    Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"))
    return yaml.load(text, Loader=Loader)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--schema", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--also", action="append", default=[])
    args = ap.parse_args()

    schema = json.loads(pathlib.Path(args.schema).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    corpus = pathlib.Path(args.corpus)
    expected = json.loads((corpus / "expected.json").read_text())

    failures = []
    checked = 0
    files = [(p, "valid") for p in sorted((corpus / "valid").iterdir())]
    files += [(p, "invalid") for p in sorted((corpus / "invalid").iterdir())]
    files += [(p, "semantic") for p in sorted((corpus / "semantic").iterdir())]
    for extra in args.also:
        files += [(p, "valid") for p in sorted(pathlib.Path(extra).iterdir())]

    for path, kind in files:
        checked += 1
        rel = f"{path.parent.name}/{path.name}"
        schema_errors = list(validator.iter_errors(load(path)))
        run = subprocess.run([args.sluice, "validate", str(path)], capture_output=True, text=True)
        sluice_ok = run.returncode == 0
        schema_ok = not schema_errors
        want_schema_ok = kind in ("valid", "semantic")
        want_sluice_ok = kind == "valid"
        if schema_ok != want_schema_ok:
            detail = "; ".join(e.message for e in schema_errors[:3]) or "accepted"
            failures.append(f"{rel}: JSON Schema {'accepted' if schema_ok else 'rejected'} it, expected "
                            f"{'accept' if want_schema_ok else 'reject'} ({detail})")
        if sluice_ok != want_sluice_ok:
            failures.append(f"{rel}: sluice validate exit {run.returncode}, expected "
                            f"{'0' if want_sluice_ok else '1'}: {run.stderr.strip() or run.stdout.strip()}")
        if run.returncode not in (0, 1):
            failures.append(f"{rel}: sluice validate crashed or misused (exit {run.returncode})")
        if kind != "valid":
            pointer = expected.get(rel)
            if pointer is None:
                failures.append(f"{rel}: no expected pointer in expected.json")
            elif f"{path}: {pointer}: " not in run.stderr:
                failures.append(f"{rel}: sluice did not report {pointer}; it said: {run.stderr.strip()}")
        if kind == "valid" and run.stdout != "config OK\n":
            failures.append(f"{rel}: expected 'config OK', got {run.stdout!r}")

    for f in failures:
        print("FAIL", f)
    print(f"{checked} configs checked, {len(failures)} disagreement(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
