"""`python -m capture_sink doctor`: each check finds its problem and prints the fix.

On this machine there is no v4l2loopback module and no camera, so those checks run for real;
the loopback's module parameters are also read from a sysfs-shaped folder, the device checks
run against the FUSE fake device, and the segmenter checks against real segmenter processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from capture_sink.config import SinkConfig, validate
from capture_sink.doctor import (FAIL, INFO, OK, WARN, check_camera, check_device, check_loopback, check_segmenters,
                                 check_weights, diagnose, run_doctor)
from test_web_helpers import free_port, start_segmenter, stop_process

HAS_LOOPBACK = Path("/sys/module/v4l2loopback").is_dir()


def statuses(findings) -> list[str]:
    return [f.status for f in findings]


def fake_sysfs(root: Path, *, exclusive_caps: str, video_nr: str = "20,-1,-1,-1") -> Path:
    params = root / "module" / "v4l2loopback" / "parameters"
    params.mkdir(parents=True)
    (params / "exclusive_caps").write_text(exclusive_caps + "\n")
    (params / "video_nr").write_text(video_nr + "\n")
    (root / "class" / "video4linux").mkdir(parents=True)
    return root


@pytest.mark.skipif(HAS_LOOPBACK, reason="this machine has v4l2loopback loaded")
def test_doctor_on_this_machine_prints_the_modprobe_fix(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLOCAM_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "capture_sink", "doctor", "--timeout", "0.3",
                           "--bind", f"tcp://127.0.0.1:{free_port()}"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "[FAIL] v4l2loopback: the kernel module is not loaded" in out
    assert 'sudo modprobe v4l2loopback devices=1 video_nr=20 card_label="holocam" exclusive_caps=1' in out
    assert "problems found" in out or "problem found" in out
    assert "Traceback" not in done.stderr


def test_module_without_exclusive_caps_is_a_problem(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, exclusive_caps="N,N,N,N")
    findings = check_loopback("/dev/video20", sys_root=root)
    assert findings[0].status == FAIL and "exclusive_caps=0" in findings[0].message
    assert findings[0].fix.startswith("sudo modprobe -r v4l2loopback && sudo modprobe v4l2loopback")
    assert "exclusive_caps=1" in findings[0].fix


def test_exclusive_caps_is_read_for_our_device(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, exclusive_caps="N,Y,N,N", video_nr="10,20,-1,-1")
    assert check_loopback("/dev/video20", sys_root=root)[0].status == OK
    assert check_loopback("/dev/video10", sys_root=root)[0].status == FAIL


def test_missing_module_in_a_container_says_to_load_it_on_the_host(tmp_path: Path) -> None:
    finding = check_loopback("/dev/video20", sys_root=tmp_path, in_container=True)[0]
    assert finding.status == FAIL and finding.fix.startswith("on the host")


def test_missing_device_node_lists_what_exists(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, exclusive_caps="Y")
    (root / "class" / "video4linux" / "video7").mkdir()
    findings = check_loopback(str(tmp_path / "video20"), sys_root=root)
    device = [f for f in findings if f.check == "device"][0]
    assert device.status == FAIL and "video7" in device.message and "--device" in device.fix


@pytest.mark.fuse
def test_fake_loopback_device_passes(fake_v4l2) -> None:
    findings = check_device(str(fake_v4l2.device))
    assert [f.status for f in findings if f.check == "permissions"] == [OK]
    assert any(f.status == OK and "v4l2loopback output" in f.message for f in findings)
    assert fake_v4l2.all_closed()


@pytest.mark.fuse
def test_device_we_may_not_open_names_the_video_group(fake_v4l2_with) -> None:
    fake = fake_v4l2_with("--open-error", "EACCES")
    findings = check_device(str(fake.device))
    failed = [f for f in findings if f.status == FAIL]
    assert failed and "permission denied" in failed[0].message and "usermod -aG video" in failed[0].fix


@pytest.mark.fuse
def test_a_webcam_given_as_the_loopback_device(fake_v4l2_with) -> None:
    fake = fake_v4l2_with("--driver", "uvcvideo", "--card", "Integrated Camera")
    failed = [f for f in check_device(str(fake.device)) if f.status == FAIL]
    assert failed and "Integrated Camera" in failed[0].message and "modprobe" in failed[0].fix


@pytest.mark.fuse
def test_camera_without_mjpg_is_a_warning(fake_v4l2_with) -> None:
    fake = fake_v4l2_with("--driver", "uvcvideo", "--card", "Integrated Camera")
    findings = check_camera(str(fake.device), device="/dev/video20", width=1280, height=720)
    assert statuses(findings) == [WARN] and "no MJPG" in findings[0].message and "--width 640" in findings[0].fix


def test_missing_camera_and_demo_source() -> None:
    assert statuses(check_camera("/dev/video97", device="/dev/video20", width=1280, height=720)) == [FAIL]
    assert statuses(check_camera("demo", device="/dev/video20", width=1280, height=720)) == [INFO]
    findings = check_camera("/dev/null", device="/dev/video20", width=1280, height=720)
    assert statuses(findings) == [FAIL] and "not a V4L2 device" in findings[0].message


def test_weights_in_the_cache() -> None:
    findings = check_weights(local_segmenter=True)
    assert statuses(findings) == [OK] and "selfie-auto" in findings[0].message
    # the default model runs both MediaPipe files: both are checked and named
    assert "selfie_segmentation.tflite" in findings[0].message
    assert "selfie_segmentation_landscape.tflite" in findings[0].message


def test_missing_weights_name_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLOCAM_CACHE_DIR", str(tmp_path))
    finding = check_weights(local_segmenter=True)[0]
    assert finding.status == FAIL and "make weights" in finding.fix
    assert check_weights(local_segmenter=False)[0].status == WARN


def test_without_the_segmenter_package_weights_are_left_to_the_segmenters() -> None:
    """The sink's image has no segmenter package: say so, do not fail (unless --with-segmenter)."""
    code = ("import sys; sys.modules['segmenter'] = None\n"
            "from capture_sink.doctor import check_weights\n"
            "print(check_weights(local_segmenter=False)[0].status, check_weights(local_segmenter=True)[0].status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [INFO, FAIL]


@pytest.mark.slow
def test_a_replica_that_binds_answers(tmp_path: Path) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = start_segmenter(endpoint.replace("127.0.0.1", "127.0.0.1"), mode="bind")
    try:
        config = validate(SinkConfig(segmenters=[endpoint], bind=[], outputs=["null"], source="demo"))
        findings = check_segmenters(config, timeout_s=30)
    finally:
        stop_process(proc)
    assert statuses(findings) == [OK]
    assert "selfie-auto 256x256 or 256x144 (by aspect)" in findings[0].message


def test_a_silent_endpoint_is_a_problem() -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    config = validate(SinkConfig(segmenters=[endpoint], bind=[], outputs=["null"], source="demo"))
    findings = check_segmenters(config, timeout_s=0.3)
    assert statuses(findings) == [FAIL]
    assert "no answer" in findings[0].message and "segmenter serve --bind" in findings[0].fix


@pytest.mark.slow
def test_a_replica_connects_to_the_bind_endpoint() -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = start_segmenter(endpoint, mode="connect")
    try:
        config = validate(SinkConfig(bind=[endpoint], outputs=["null"], source="demo"))
        findings = check_segmenters(config, timeout_s=30)
    finally:
        stop_process(proc)
    assert statuses(findings) == [OK] and "replica" in findings[0].message


def test_nobody_connecting_to_the_bind_endpoint() -> None:
    config = validate(SinkConfig(bind=[f"tcp://127.0.0.1:{free_port()}"], outputs=["null"], source="demo"))
    findings = check_segmenters(config, timeout_s=0.3)
    assert statuses(findings) == [FAIL] and "--with-segmenter" in findings[0].fix


def test_plain_text_beyond_this_machine_is_refused_with_the_fix() -> None:
    config = SinkConfig(segmenters=["tcp://192.0.2.1:5556"], bind=[], outputs=["null"], source="demo")
    findings = check_segmenters(config, timeout_s=0.1)
    assert statuses(findings) == [FAIL] and "--curve-dir" in findings[0].message


def test_report_and_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = fake_sysfs(tmp_path, exclusive_caps="N")
    config = validate(SinkConfig(bind=[f"tcp://127.0.0.1:{free_port()}"], outputs=["null"], source="demo",
                                 device=str(tmp_path / "video20"), http_port=0))
    findings = diagnose(config, timeout_s=0.2, sys_root=root, in_container=False)
    failed = [f for f in findings if f.status == FAIL]
    assert {f.check for f in failed} >= {"v4l2loopback", "device", "segmenter"}
    assert run_doctor(config, timeout_s=0.2) == 1
    out = capsys.readouterr().out
    assert out.startswith("holocam doctor\n") and "fix: " in out


# -- the module's release, and Firefox ------------------------------------------------------------

def with_version(root: Path, text: str) -> Path:
    (root / "module" / "v4l2loopback" / "version").write_text(text + "\n")
    return root


def test_release_with_the_capture_only_after_close_bug_is_a_warning(tmp_path: Path) -> None:
    root = with_version(fake_sysfs(tmp_path, exclusive_caps="Y"), "0.12.7")
    versions = [f for f in check_loopback("/dev/video20", sys_root=root) if f.check == "v4l2loopback version"]
    warned = [f for f in versions if f.status == WARN]
    assert len(warned) == 1 and "leaves the device capture-only" in warned[0].message
    assert "0.13.2 or newer" in warned[0].fix and "modprobe -r v4l2loopback" in warned[0].fix


@pytest.mark.parametrize("text, expected", [
    ("0.15.4", [OK, INFO]),                    # fine for holocam; OBS's own virtual camera note
    ("v0.14.0-0-g60a0315", [OK, INFO]),        # a snapshot build names its release
    ("0.13.2", [OK]),
    ("0.12.3", [INFO, WARN]),
    ("my-build", [INFO]),
])
def test_module_version_is_read_and_judged(tmp_path: Path, text: str, expected: list[str]) -> None:
    root = with_version(fake_sysfs(tmp_path, exclusive_caps="Y"), text)
    versions = [f for f in check_loopback("/dev/video20", sys_root=root) if f.check == "v4l2loopback version"]
    assert statuses(versions) == expected
    assert text in versions[0].message


def test_module_without_a_version_file_is_a_warning(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, exclusive_caps="Y")
    versions = [f for f in check_loopback("/dev/video20", sys_root=root) if f.check == "v4l2loopback version"]
    assert statuses(versions) == [WARN]


def firefox_profile(home: Path, name: str, *, prefs: str | None = None, user: str | None = None,
                    root: str = ".mozilla/firefox") -> Path:
    profile = home / root / name
    profile.mkdir(parents=True)
    (profile / "prefs.js").write_text('user_pref("browser.startup.page", 3);\n' + (prefs or ""))
    if user is not None:
        (profile / "user.js").write_text(user)
    return profile


PIPEWIRE_ON = 'user_pref("media.webrtc.camera.allow-pipewire", true);\n'
PIPEWIRE_OFF = 'user_pref("media.webrtc.camera.allow-pipewire", false);\n'


def test_firefox_profile_using_pipewire_cameras_is_a_warning_naming_the_pref(tmp_path: Path) -> None:
    from capture_sink.doctor import check_firefox

    home, root = tmp_path / "home", tmp_path / "root"
    on = firefox_profile(home, "abc.default-release", prefs=PIPEWIRE_ON)
    firefox_profile(home, "off.other", prefs=PIPEWIRE_OFF)
    firefox_profile(home, "snap.default", prefs=PIPEWIRE_ON, root="snap/firefox/common/.mozilla/firefox")
    findings = check_firefox(home=home, root=root)
    assert statuses(findings) == [WARN, WARN]
    assert "abc.default-release uses PipeWire for cameras" in findings[0].message
    assert findings[0].fix.startswith("in Firefox open about:config, set media.webrtc.camera.allow-pipewire to false")
    assert str(on / "user.js") in findings[0].fix
    assert "snap.default" in findings[1].message


def test_firefox_user_js_overrides_prefs_js_and_packaged_defaults_count(tmp_path: Path) -> None:
    from capture_sink.doctor import check_firefox

    home, root = tmp_path / "home", tmp_path / "root"
    firefox_profile(home, "fixed.default", prefs=PIPEWIRE_ON, user=PIPEWIRE_OFF)
    assert check_firefox(home=home, root=root) == []
    firefox_profile(home, "plain.default")   # no value of its own: the packaged default decides
    defaults = root / "usr/lib64/firefox/defaults/pref"
    defaults.mkdir(parents=True)
    (defaults / "fedora-default-prefs.js").write_text('pref("media.webrtc.camera.allow-pipewire", true);\n')
    (finding,) = check_firefox(home=home, root=root)
    assert "plain.default" in finding.message and "fedora-default-prefs.js" in finding.message
