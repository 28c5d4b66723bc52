"""`make up`'s preflight: .env mistakes and missing host devices read as one line naming the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "x" * 24


def _preflight(tmp_path: Path, env_text: str | None, variant: str = "camera") -> subprocess.CompletedProcess:
    # A copy of the script in a scratch checkout, so the test's .env never touches the real one.
    (tmp_path / "compose").mkdir(exist_ok=True)
    (tmp_path / "compose" / "preflight.py").write_text((ROOT / "compose" / "preflight.py").read_text())
    if env_text is not None:
        (tmp_path / ".env").write_text(env_text)
    env = {"PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, str(tmp_path / "compose" / "preflight.py"), variant],
                          capture_output=True, text=True, env=env, timeout=30)


def test_good_preview_settings_pass(tmp_path):
    result = _preflight(tmp_path, f"HOLOCAM_HTTP_TOKEN={TOKEN}\nHOLOCAM_PREVIEW_PORT=8081\n", "preview")
    assert result.returncode == 0, result.stderr


def test_no_env_file_at_all_passes_for_the_preview(tmp_path):
    result = _preflight(tmp_path, None, "preview")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_no_token_and_no_gid_are_needed_for_the_camera_variant(tmp_path):
    # Only the devices are checked (/dev/null stands in for them: a character device).
    result = _preflight(tmp_path, "HOLOCAM_CAMERA=/dev/null\nHOLOCAM_LOOPBACK=/dev/null\nHOLOCAM_HTTP_TOKEN=\n")
    assert result.returncode == 0, result.stderr


def test_an_old_video_gid_setting_is_a_note_not_a_failure(tmp_path):
    result = _preflight(tmp_path, "HOLOCAM_CAMERA=/dev/null\nHOLOCAM_LOOPBACK=/dev/null\nHOLOCAM_VIDEO_GID=44\n")
    assert result.returncode == 0
    assert "HOLOCAM_VIDEO_GID is no longer used" in result.stderr and "remove it from .env" in result.stderr


def test_missing_loopback_device_names_the_modprobe_line(tmp_path):
    result = _preflight(tmp_path, f"HOLOCAM_HTTP_TOKEN={TOKEN}\nHOLOCAM_CAMERA=/dev/null\n"
                                  f"HOLOCAM_LOOPBACK={tmp_path}/video20\n")
    assert result.returncode == 2
    assert "modprobe v4l2loopback" in result.stderr and "exclusive_caps=1" in result.stderr


def test_a_regular_file_is_not_a_device(tmp_path):
    (tmp_path / "video0").write_text("")
    result = _preflight(tmp_path, f"HOLOCAM_HTTP_TOKEN={TOKEN}\nHOLOCAM_CAMERA={tmp_path}/video0\n"
                                  "HOLOCAM_LOOPBACK=/dev/null\n")
    assert result.returncode == 2 and "is not a device" in result.stderr


@pytest.mark.parametrize("line, expected", [
    ("HOLOCAM_CAMERA=/dev/null\nHOLOCAM_LOOPBACK=/dev/null\nHOLOCAM_V4L2_FORMAT=NV12", "use YUYV"),
    ("HOLOCAM_PREVIEW_PORT=99999", "port number"),
    ("HOLOCAM_SEGMENTER_THREADS=many", "whole number of threads"),
    ("HOLOCAM_HTTP_TOKEN=short", "too short: remove it from .env"),
    ("HOLOCAM_CAMRA=/dev/video0", "unknown setting HOLOCAM_CAMRA"),
    ("this line is wrong", "is not NAME=value"),
])
def test_bad_env_values_are_one_line_each(tmp_path, line, expected):
    base = f"HOLOCAM_HTTP_TOKEN={TOKEN}\n" if "TOKEN" not in line else ""
    variant = "camera" if "FORMAT" in line else "preview"
    result = _preflight(tmp_path, base + line + "\n", variant)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert all(l.startswith("preflight: ") for l in result.stderr.strip().splitlines())
