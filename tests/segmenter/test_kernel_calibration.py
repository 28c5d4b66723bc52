"""Fused kernels or stock ops: the decision, the interleaved timing, the cache, and a real
calibration of the real model (segmenter.kernels.calibrate, used by load_selfie)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from segmenter.kernels import calibrate, load
from segmenter.kernels.build import library_path
from segmenter.model.selfie import load_selfie
from segmenter.weights import WEIGHTS, weights_path
from shared.resize import prepare_input

REPO = Path(__file__).resolve().parents[2]


def test_the_faster_path_wins_by_median():
    assert calibrate.decide([2.0, 2.1, 9.0], [3.0, 3.1, 3.2]).use_fused
    slower = calibrate.decide([4.0, 4.2, 0.1], [3.0, 3.1, 3.2])
    assert not slower.use_fused and slower.fused_ms == pytest.approx(4.0) and slower.stock_ms == pytest.approx(3.1)


def test_a_tie_keeps_stock_ops_and_no_timings_is_an_error():
    assert not calibrate.decide([3.0], [3.0]).use_fused
    with pytest.raises(ValueError, match="at least one timing"):
        calibrate.decide([], [1.0])


def test_timing_alternates_the_paths_and_measures_each():
    calls: list[str] = []

    def fused():
        calls.append("f")
        time.sleep(0.001)

    def stock():
        calls.append("s")
        time.sleep(0.004)

    fused_ms, stock_ms = calibrate.time_interleaved(fused, stock, rounds=6, warmup=1, budget_s=10)
    assert len(fused_ms) == len(stock_ms) == 6
    timed = "".join(calls[2:])
    assert timed == "fs" + "sf" + "fs" + "sf" + "fs" + "sf"     # alternating, never one path in a block
    assert calibrate.decide(fused_ms, stock_ms).use_fused        # 1 ms beats 4 ms
    assert min(stock_ms) >= 4.0 > max(fused_ms) - 1.0


def test_timing_stops_at_its_budget():
    fused_ms, _ = calibrate.time_interleaved(lambda: time.sleep(0.02), lambda: time.sleep(0.02),
                                             rounds=100, warmup=0, budget_s=0.1)
    assert 4 <= len(fused_ms) < 10


def test_cache_round_trip_and_key_parts(tmp_path):
    model_file = weights_path("selfie")
    key = calibrate.cache_key("selfie", model_file, "avx2", 1)
    assert calibrate.cached(key, tmp_path) is None
    calibrate.store(key, calibrate.Choice(2.5, 4.0, True), tmp_path)
    hit = calibrate.cached(key, tmp_path)
    assert hit == calibrate.Choice(2.5, 4.0, True, cached=True)
    # another thread count, build, model or file is another entry
    for other in (calibrate.cache_key("selfie", model_file, "avx2", 2),
                  calibrate.cache_key("selfie", model_file, "generic", 1),
                  calibrate.cache_key("selfie-landscape", weights_path("selfie-landscape"), "avx2", 1)):
        assert other != key and calibrate.cached(other, tmp_path) is None
    assert calibrate.cpu_model() in key


def test_stock_ops_capped_to_another_instruction_set_is_another_entry():
    """A timing made with stock torch at AVX-512 must not decide for stock torch capped at AVX2."""
    code = ("from segmenter.kernels import calibrate; from segmenter.weights import weights_path; "
            "print(calibrate.cache_key('selfie', weights_path('selfie'), 'avx2', 1))")
    keys = {}
    for cap in ("", "default"):
        env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
        if cap:
            env.update(ATEN_CPU_CAPABILITY=cap, ONEDNN_MAX_CPU_ISA="SSE41")
        run = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stderr
        keys[cap] = run.stdout.strip()
    assert keys[""] != keys["default"]
    assert "stock=default/onednn=sse41" in keys["default"]


def test_a_corrupt_cache_is_reported_and_rewritten(tmp_path, caplog):
    path = tmp_path / "kernels" / calibrate.CACHE_FILE
    path.parent.mkdir()
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert calibrate.cached("k", tmp_path) is None
    assert "ignoring the kernel calibration cache" in caplog.text
    calibrate.store("k", calibrate.Choice(1.0, 2.0, True), tmp_path)
    assert calibrate.cached("k", tmp_path).use_fused


@pytest.fixture
def weights_cache(tmp_path):
    """A cache with the real weights and kernel library (linked) and no calibration yet."""
    if load() is None:
        pytest.skip("the fused kernels do not build here; .ci/run installs g++ so CI runs this")
    for name in WEIGHTS:
        (tmp_path / weights_path(name).name).symlink_to(weights_path(name))
    library = library_path()
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / library.parent.name).symlink_to(library.parent)
    assert library_path(tmp_path).is_file()
    return tmp_path


def test_real_calibration_of_the_real_model(weights_cache, monkeypatch, caplog):
    monkeypatch.delenv("HOLOCAM_KERNELS", raising=False)
    with caplog.at_level(logging.INFO, logger="segmenter.model.selfie"):
        started = time.perf_counter()
        first = load_selfie("selfie", cache_dir=weights_cache)
        first_s = time.perf_counter() - started
    lines = [r.getMessage() for r in caplog.records if "per mask ->" in r.getMessage()]
    assert len(lines) == 1 and "(calibration)" in lines[0], caplog.text
    entry = next(iter(calibrate._read(weights_cache / "kernels" / calibrate.CACHE_FILE).values()))
    assert entry["fused_ms"] > 0 and entry["stock_ms"] > 0
    assert first.net.kernels == entry["use_fused"] == (entry["fused_ms"] < entry["stock_ms"])

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="segmenter.model.selfie"):
        started = time.perf_counter()
        again = load_selfie("selfie", cache_dir=weights_cache)
        again_s = time.perf_counter() - started
    assert any("(cached calibration)" in r.getMessage() for r in caplog.records), caplog.text
    assert again.net.kernels == first.net.kernels
    assert again_s < first_s   # the cached start builds one model and times nothing

    rgb = prepare_input(skimage.data.astronaut(), first.input_spec)
    stock = load_selfie("selfie", cache_dir=weights_cache, kernels=False)
    assert np.abs(first.segment(rgb).astype(int) - stock.segment(rgb).astype(int)).max() <= 1


@pytest.mark.parametrize("setting,expect_kernels", [("1", True), ("0", False)])
def test_forcing_the_kernels_skips_calibration(weights_cache, setting, expect_kernels):
    code = ("import logging; logging.basicConfig(level=logging.INFO)\n"
            "from segmenter.model.selfie import load_selfie\n"
            "print('KERNELS', load_selfie('selfie').net.kernels)\n")
    env = {**os.environ, "HOLOCAM_KERNELS": setting, "HOLOCAM_CACHE_DIR": str(weights_cache)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"KERNELS {expect_kernels}" in result.stdout
    assert "loaded selfie" in result.stderr and "per mask ->" not in result.stderr
    assert not (weights_cache / "kernels" / calibrate.CACHE_FILE).exists()
