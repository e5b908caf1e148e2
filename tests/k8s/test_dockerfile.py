"""The Dockerfile, correct by construction (Docker cannot run here): hadolint passes,
the entrypoints it and the manifests name exist, the final stage ships no build tools."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKERFILE = os.path.join(ROOT, "Dockerfile")


def instructions() -> list[tuple[str, str]]:
    text = open(DOCKERFILE).read().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        result[-1].append(ins)
    return result


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or os.path.join(os.path.dirname(sys.executable), "hadolint")
    out = subprocess.run([hadolint, "--failure-threshold", "info", DOCKERFILE], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_base_images_are_pinned_and_final_stage_is_slim_and_non_root():
    froms = [rest.split()[0] for word, rest in instructions() if word == "FROM"]
    assert len(froms) >= 2  # multi-stage
    for image in froms:
        assert re.search(r":\d+\.\d+\.\d+-slim", image) or "@sha256:" in image, image
    final = stages()[-1]
    run = " ".join(rest for word, rest in final if word == "RUN")
    for tool in ("apt-get", "pip install", "gcc", "build-essential"):
        assert tool not in run
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_entrypoints_named_by_the_image_and_the_manifests_exist():
    final = stages()[-1]
    entry = json.loads([rest for word, rest in final if word == "ENTRYPOINT"][-1])
    cmd = json.loads([rest for word, rest in final if word == "CMD"][-1])
    assert entry == ["python", "-m"]
    modules = {cmd[0]}
    for path in ("pools/default.yaml", "pools/data-analysis.yaml"):
        for doc in yaml.safe_load_all(open(os.path.join(ROOT, "k8s", "base", path))):
            if doc["kind"] != "Deployment":
                continue
            spec = doc["spec"]["template"]["spec"]
            for c in spec["containers"] + spec.get("initContainers", []):
                assert c["command"][:2] == ["python", "-m"]
                modules.add(c["command"][2])
                probe = c.get("livenessProbe", {}).get("exec")
                if probe:
                    modules.add(probe["command"][2])
    assert modules == {"executor", "gc_sidecar", "warmfleet.contract.probe", "egress"}
    for mod in modules:
        spec = importlib.util.find_spec(mod)
        assert spec is not None, mod
        if spec.submodule_search_locations:  # a package must be runnable with -m
            assert importlib.util.find_spec(mod + ".__main__") is not None, mod


def test_every_package_is_copied_into_the_build_stage():
    copied = {rest.split()[0].rstrip("/") for word, rest in stages()[0] if word == "COPY"}
    pyproject = open(os.path.join(ROOT, "pyproject.toml")).read()
    include = re.search(r"include = \[(.*?)\]", pyproject).group(1)
    packages = {p.strip().strip('"').rstrip("*") for p in include.split(",")}
    assert packages <= copied, packages - copied
    for src in copied:
        assert os.path.exists(os.path.join(ROOT, src)), src
    ignored = open(os.path.join(ROOT, ".dockerignore")).read().split()
    assert not packages & set(ignored)
