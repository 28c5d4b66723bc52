"""The bench's capped runs really cap the libraries: its AVX2 run keeps torch, OpenCV and NumPy off
AVX-512 (bench.machine.AVX2_ONLY_ENV), the sse4 comparison keeps OpenCV and NumPy off AVX
(bench.machine.OPENCV_AT_SSE4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench import machine

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json, cv2, numpy, torch
from numpy._core._multiarray_umath import __cpu_features__ as npy
from bench import machine
print(json.dumps({"torch": torch.backends.cpu.get_cpu_capability(),
                  "cv2_avx512f": cv2.checkHardwareSupport(13),   # 13 = CV_CPU_AVX_512F
                  "cv2_avx2": cv2.checkHardwareSupport(11),      # 11 = CV_CPU_AVX2
                  "cv2_avx": cv2.checkHardwareSupport(10),       # 10 = CV_CPU_AVX
                  "cv2_sse42": cv2.checkHardwareSupport(7),      # 7 = CV_CPU_SSE4_2
                  "numpy_x86_v3": bool(npy.get("X86_V3")),
                  "numpy_x86_v4": bool(npy.get("X86_V4")), "numpy_avx2": bool(npy.get("AVX2")),
                  "caps": machine.library_caps(), "native": machine.sink_native_build()}))
"""


def _probe(env: dict[str, str]) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in machine.AVX2_ONLY_ENV and k not in machine.OPENCV_AT_SSE4}
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env={**clean, **env, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "unknown CPU feature" not in run.stderr, run.stderr   # OpenCV names each feature it ignores
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_avx2_run_caps_every_library_at_avx2():
    plain, capped = _probe({}), _probe(machine.AVX2_ONLY_ENV)
    if not machine.describe()["avx2"]:
        assert capped["torch"] == plain["torch"]
        return
    assert capped["torch"] == "AVX2" and capped["cv2_avx2"] and capped["numpy_avx2"]
    assert not capped["cv2_avx512f"] and not capped["numpy_x86_v4"]
    assert capped["native"] == "avx2" and set(capped["caps"]) == set(machine.LIBRARY_CAPS)
    assert plain["caps"] == {}
    if machine.describe()["avx512f"]:   # the caps change something only where there is AVX-512
        assert plain["torch"] == "AVX512" and plain["cv2_avx512f"] and plain["numpy_x86_v4"]


def test_the_sse4_comparison_keeps_opencv_and_numpy_off_avx():
    plain, capped = _probe({}), _probe(machine.OPENCV_AT_SSE4)
    assert capped["cv2_sse42"] and not capped["cv2_avx"] and not capped["cv2_avx2"] and not capped["cv2_avx512f"]
    assert not capped["numpy_x86_v3"] and not capped["numpy_x86_v4"]
    if machine.describe()["avx2"]:   # the caps change something only where there is AVX
        assert plain["cv2_avx"] and plain["cv2_avx2"] and plain["numpy_x86_v3"]
