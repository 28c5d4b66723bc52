"""The preview compose variant for real: both images built, 2 then 3 segmenter replicas, one stopped.

Runs from the checkout with no .env at all (the test fails if one is there): compose needs no
settings. Needs a Docker engine and the local python:3.11-slim base image (CI runs
../shared/tools/container-engine.sh first); elsewhere every test here skips with the reason.
Masks per replica and output frames are read from the sink's JSON API (with its token).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bench.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.preview.yml"
pytestmark = [pytest.mark.container, pytest.mark.slow]


def _compose_command() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def _skip_reason() -> str | None:
    if not shutil.which("docker"):
        return "no docker client: run ../shared/tools/container-engine.sh (CI does) to run the compose tests"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker engine running: run ../shared/tools/container-engine.sh (CI does) to start one"
    if subprocess.run(["docker", "image", "inspect", "python:3.11-slim"], capture_output=True).returncode != 0:
        return "no python:3.11-slim base image: run ../shared/tools/container-engine.sh to build it"
    if _compose_command() is None:
        return "neither `docker compose` nor `docker-compose` is installed"
    return None


class Stack:
    def __init__(self) -> None:
        self.project = f"holocamtest{os.getpid()}"
        self.port = free_port()
        self.token: str | None = None
        # One override through the environment, not a .env: another port, so a running holocam is
        # left alone. No token: the sink makes its own and logs the URL to open, as a user sees it.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOLOCAM_")}
        self.env.update(HOLOCAM_PREVIEW_PORT=str(self.port))
        self.base = [*_compose_command(), "-f", str(COMPOSE_FILE), "-p", self.project]

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.base, *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        assert result.returncode == 0, f"compose {' '.join(args)} failed:\n{result.stderr[-3000:]}"
        return result

    def containers(self, service: str | None = None, *, all_states: bool = False) -> list[str]:
        cmd = ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            cmd += ["--filter", f"label=com.docker.compose.service={service}"]
        if all_states:
            cmd.append("-a")
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()

    def logged_url(self) -> tuple[int, str] | None:
        """(port, token) of the ready-to-open URL in the sink's log, once it is there."""
        logs = subprocess.run([*self.base, "logs", "--no-color", "sink"], cwd=ROOT, env=self.env,
                              capture_output=True, text=True).stdout
        found = re.findall(r"web page at http://127\.0\.0\.1:(\d+)/\?token=([\w-]+)", logs)
        return (int(found[-1][0]), found[-1][1]) if found else None

    def status(self) -> dict | None:
        """The sink's /api/status with the token from its log (a fresh stack after `down -v` makes a
        new token: a refused request reads the log again)."""
        for _ in range(2):
            if self.token is None:
                logged = self.logged_url()
                if logged is None:
                    return None
                assert logged[0] == self.port, f"the log's URL names port {logged[0]}, the page is on {self.port}"
                self.token = logged[1]
            request = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/status",
                                             headers={"Authorization": f"Bearer {self.token}"})
            try:
                with urllib.request.urlopen(request, timeout=3) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code != 401:
                    return None
                self.token = None
            except (OSError, ValueError):
                return None
        return None

    def wait(self, condition, timeout_s: float, what: str) -> dict:
        deadline = time.monotonic() + timeout_s
        status = None
        while time.monotonic() < deadline:
            status = self.status()
            if status is not None and condition(status["stats"]):
                return status["stats"]
            time.sleep(1.0)
        logs = subprocess.run([*self.base, "logs", "--tail", "40"], cwd=ROOT, env=self.env,
                              capture_output=True, text=True).stdout
        raise AssertionError(f"timed out waiting for {what}; last status: "
                             f"{status and status['stats']}\n{logs[-4000:]}")


@pytest.fixture(scope="module")
def stack():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    assert not (ROOT / ".env").exists(), "the compose test runs with no .env: move it away to run this test"
    stack = Stack()
    try:
        stack.compose("build", timeout=900)
        yield stack
    finally:
        subprocess.run([*stack.base, "down", "-v", "--remove-orphans", "-t", "5"], cwd=ROOT, env=stack.env,
                       capture_output=True, timeout=300)


def _working(stats: dict) -> dict[str, int]:
    return {name: n for name, n in stats.get("masks_by_replica", {}).items() if n > 0}


def test_replicas_share_work_scale_up_survive_a_stop_and_down_cleans_up(stack):
    stack.compose("up", "-d", "--scale", "segmenter=2")
    stats = stack.wait(lambda s: s.get("replicas") == 2 and len(_working(s)) == 2 and s["fps_out"] > 0,
                       240, "masks from both replicas")
    first_two = set(_working(stats))
    # The image ships the fused kernels prebuilt (no compiler in it): both replicas must load them.
    segmenter_logs = stack.compose("logs", "--no-color", "segmenter").stdout
    assert segmenter_logs.count("fused NHWC kernels loaded") == 2, segmenter_logs[-3000:]
    assert "fused kernels unavailable" not in segmenter_logs

    stack.compose("up", "-d", "--no-recreate", "--scale", "segmenter=3")
    stats = stack.wait(lambda s: s.get("replicas") == 3 and len(set(_working(s)) - first_two) >= 1,
                       180, "the third replica to get work")

    victim = stack.containers("segmenter")[0]
    subprocess.run(["docker", "stop", "-t", "5", victim], check=True, capture_output=True)
    before = stats["counters"]["frames"], sum(stats["masks_by_replica"].values())
    stats = stack.wait(lambda s: s.get("replicas") == 2 and s["counters"]["frames"] > before[0] + 60
                       and sum(s["masks_by_replica"].values()) > before[1] + 30,
                       120, "output and masks to continue with one replica stopped")
    assert stats["fps_out"] > 5

    stack.compose("down", "-v", "--remove-orphans", "-t", "5")
    assert stack.containers(all_states=True) == []
    networks = subprocess.run(["docker", "network", "ls", "-q", "--filter", f"name={stack.project}"],
                              capture_output=True, text=True, check=True).stdout.split()
    assert networks == []


def _proc_status(container: str) -> dict[str, str]:
    text = subprocess.run(["docker", "exec", container, "cat", "/proc/1/status"], capture_output=True, text=True,
                          check=True).stdout
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_sink_runs_unprivileged_as_its_user_with_a_config_volume(stack):
    stack.compose("up", "-d", "--scale", "segmenter=1")
    stack.wait(lambda s: s["fps_out"] > 0, 240, "the sink to write frames")
    (sink,) = stack.containers("sink")
    status = _proc_status(sink)
    assert status["Uid"].split()[:2] == ["10001", "10001"], status["Uid"]
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0, "no capabilities left"
    assert status["NoNewPrivs"].strip() == "1"
    inspect = json.loads(subprocess.run(["docker", "inspect", sink], capture_output=True, text=True,
                                        check=True).stdout)[0]
    assert inspect["HostConfig"]["Privileged"] is False
    mounts = {m["Destination"]: m for m in inspect["Mounts"]}
    assert mounts["/config"]["Type"] == "volume" and mounts["/config"]["Name"].endswith("holocam-config")
    # The sink's user can keep its generated token there (issue 13 writes /config/holocam/).
    probe = subprocess.run(["docker", "exec", "-u", "holocam", sink, "sh", "-c", "touch /config/holocam/.probe && echo ok"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "ok", probe.stderr


def test_entrypoint_joins_the_group_of_the_device_nodes_it_was_given(stack, tmp_path):
    """A device node owned by an unusual gid (as the host's video group can be) is joined, no gid typed."""
    node = tmp_path / "video42"
    subprocess.run(["mknod", str(node), "c", "1", "3"], check=True)   # /dev/null's numbers: harmless
    os.chown(node, 0, 4242)
    node.chmod(0o660)
    done = subprocess.run(
        ["docker", "run", "--rm", "--device", f"{node}:/dev/video42", "--cap-drop", "ALL", "--cap-add", "SETUID",
         "--cap-add", "SETGID", "--security-opt", "no-new-privileges:true", "holocam-sink:latest",
         "sh", "-c", "id -u; id -G; echo frame > /dev/video42 && echo wrote"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    uid, groups, wrote = done.stdout.split("\n")[:3]
    assert uid == "10001" and "4242" in groups.split() and wrote == "wrote", done.stdout
    assert "groups" in done.stderr and "4242" in done.stderr
