"""The compose files need nothing from .env, never run privileged, and stay valid for compose v1 and v2.

`config` only reads the files (no engine needed); each installed compose tool is asked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMBINATIONS = [
    ["docker-compose.yml"],
    ["docker-compose.preview.yml"],
    ["docker-compose.segmenter.yml"],
    ["docker-compose.yml", "docker-compose.gpu.yml"],
    ["docker-compose.preview.yml", "docker-compose.gpu.yml"],
]


def tools() -> list[list[str]]:
    found = []
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        found.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        found.append(["docker-compose"])
    return found


@pytest.fixture(params=tools() or [None], ids=lambda t: " ".join(t) if t else "none")
def compose(request) -> list[str]:
    if request.param is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    return request.param


def config(compose: list[str], files: list[str], tmp_path: Path) -> str:
    # A clean environment and a project folder without .env: what a fresh clone has.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    args = [*compose, *sum((["-f", str(ROOT / f)] for f in files), []), "config"]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "variable is not set" not in done.stderr, done.stderr
    return done.stdout   # the merged YAML (no YAML parser in the test dependencies: read as text)


@pytest.mark.parametrize("files", COMBINATIONS, ids=lambda f: "+".join(f))
def test_compose_files_need_no_env_and_are_never_privileged(compose, files, tmp_path):
    merged = config(compose, files, tmp_path)
    assert "privileged: true" not in merged
    assert "group_add" not in merged, "the sink's entrypoint finds the devices' groups itself"
    if "segmenter.yml" not in files[0]:
        assert "SETUID" in merged and "SETGID" in merged and "no-new-privileges:true" in merged
        assert "/config" in merged and "holocam-config" in merged, "the generated token needs its volume"
    if "docker-compose.gpu.yml" in files:
        assert "driver: nvidia" in merged and "gpu" in merged and "--device" in merged
        assert "whl/cu" in merged, "the CUDA build of torch"


def test_no_compose_file_requires_a_variable():
    for path in ROOT.glob("docker-compose*.yml"):
        assert ":?" not in path.read_text(), f"{path.name} requires a variable: compose must work without .env"
