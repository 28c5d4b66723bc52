"""`install-service` / `uninstall-service`: the systemd user unit, checked by systemd itself where present."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from capture_sink import service
from capture_sink.doctor import INFO, OK, WARN, check_service

ROOT = Path(__file__).resolve().parents[2]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLOCAM_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "capture_sink", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def unit_file(tmp_path: Path) -> Path:
    return tmp_path / "config" / "systemd" / "user" / "holocam.service"


def exec_start(text: str) -> list[str]:
    (line,) = [l for l in text.splitlines() if l.startswith("ExecStart=")]
    return [a.replace("%%", "%") for a in shlex.split(line.removeprefix("ExecStart="))]


def test_install_writes_a_user_unit_and_says_how_to_enable_it(tmp_path: Path) -> None:
    done = cli(tmp_path, "install-service")
    assert done.returncode == 0, done.stderr
    path = unit_file(tmp_path)
    assert done.stdout.splitlines()[0] == f"wrote {path}"
    assert "systemctl --user daemon-reload && systemctl --user enable --now holocam.service" in done.stdout
    text = path.read_text()
    for line in ("After=graphical-session.target", "PartOf=graphical-session.target", "Restart=on-failure",
                 "WantedBy=graphical-session.target", "UMask=0077", f"Environment=PYTHONPATH={ROOT}"):
        assert line in text.splitlines(), line
    assert exec_start(text) == [sys.executable, "-m", "capture_sink", "run", "--with-segmenter"]
    assert "sudo" not in done.stdout and oct(path.stat().st_mode & 0o777) != "0o777"


def test_run_options_after_the_double_dash_reach_the_unit_and_its_command_runs(tmp_path: Path) -> None:
    background = tmp_path / "my pics" / "100% beach.png"
    done = cli(tmp_path, "install-service", "--", "--effect", "none", "--background", str(background))
    assert done.returncode == 0, done.stderr
    command = exec_start(unit_file(tmp_path).read_text())
    assert command[-4:] == ["--effect", "none", "--background", str(background)]
    # The unit's command line, as systemd splits it, is a working sink command.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLOCAM_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), PYTHONPATH=str(ROOT))
    shown = subprocess.run([*command, "--print-config"], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert 'effect = "none"' in shown.stdout and "with_segmenter = true" in shown.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here (apt-get install systemd)")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    assert cli(tmp_path, "install-service", "--", "--effect", "none", "--background", "/a b/50%.png").returncode == 0
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    verify = subprocess.run(["systemd-analyze", "--user", "verify", str(unit_file(tmp_path))], env=env,
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr.strip() == "", verify.stderr   # systemd only warns about bad settings


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here (apt-get install systemd)")
def test_systemd_verify_would_catch_a_broken_command(tmp_path: Path) -> None:
    broken = tmp_path / "holocam.service"
    broken.write_text(service.render_unit(python=str(tmp_path / "no-python")))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    verify = subprocess.run(["systemd-analyze", "--user", "verify", str(broken)],
                            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)}, capture_output=True, text=True)
    assert verify.returncode != 0 and "is not executable" in verify.stderr


def test_uninstall_removes_the_unit_and_its_enable_link(tmp_path: Path) -> None:
    assert cli(tmp_path, "install-service").returncode == 0
    path = unit_file(tmp_path)
    wants = path.parent / "graphical-session.target.wants"
    wants.mkdir()
    (wants / "holocam.service").symlink_to(path)   # what `systemctl --user enable` makes
    done = cli(tmp_path, "uninstall-service")
    assert done.returncode == 0, done.stderr
    assert not path.exists() and not (wants / "holocam.service").is_symlink()
    again = cli(tmp_path, "uninstall-service")
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_install_again_updates_the_unit(tmp_path: Path) -> None:
    assert cli(tmp_path, "install-service").returncode == 0
    done = cli(tmp_path, "install-service", "--", "--effect", "none")
    assert done.stdout.startswith("updated ") and "--effect none" in unit_file(tmp_path).read_text()


def test_doctor_reports_the_autostart_state(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    (missing,) = check_service(environ=environ)
    assert missing.status == INFO and "install-service" in missing.fix
    service.install(environ=environ)
    (installed,) = check_service(environ=environ)
    assert installed.status in (WARN, INFO) and "not enabled" in installed.message
    wants = service.unit_dir(environ) / "graphical-session.target.wants"
    wants.mkdir()
    (wants / service.UNIT_NAME).symlink_to(service.unit_path(environ))
    (enabled,) = check_service(environ=environ)
    assert "installed and enabled" in enabled.message or enabled.status == OK
