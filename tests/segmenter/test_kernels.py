"""torch.ops.holocam's kernels (depthwise, pointwise, mask_head, ...) against stock torch ops, and how the
library loads.

Shapes cover what the tiling code branches on: channel counts that are and are not multiples of
8 and 16, windows clipped at every border, stride 1 and 2 with TF SAME (odd and even sizes),
inputs smaller than the kernel, and one-pixel inputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from segmenter.kernels import ACTIVATIONS, load
from segmenter.kernels.build import build_key, library_path
from segmenter.model.selfie_net import _same_padding

REPO = Path(__file__).resolve().parents[2]


def require_kernels() -> str:
    """The loaded build; skips where they cannot build, unless HOLOCAM_KERNELS=1 (CI) demands them."""
    isa = load()   # raises under HOLOCAM_KERNELS=1 when they do not load
    if isa is None:
        pytest.skip("the fused kernels do not build here (no g++?); .ci/run installs g++ and sets HOLOCAM_KERNELS=1")
    return isa


@pytest.fixture(scope="module", autouse=True)
def kernels() -> str:
    return require_kernels()


def _nhwc(*shape: int, seed: int = 0) -> torch.Tensor:
    n, c, h, w = shape
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((n, h, w, c), generator=generator).permute(0, 3, 1, 2)   # channels_last


def _activate(x: torch.Tensor, act: str) -> torch.Tensor:
    return {"NONE": lambda t: t, "RELU": F.relu, "RELU6": F.relu6, "HARD_SWISH": F.hardswish}[act](x)


def _reference_depthwise(x, weight_khkwc, bias, stride, act):
    """TF SAME depthwise conv with F.pad (asymmetric) and F.conv2d."""
    kh, kw, c = weight_khkwc.shape
    top, bottom = _same_padding(x.shape[2], kh, stride, 1)
    left, right = _same_padding(x.shape[3], kw, stride, 1)
    weight = weight_khkwc.permute(2, 0, 1).unsqueeze(1).contiguous()     # (C, 1, kh, kw)
    y = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, stride=stride, groups=c)
    return _activate(y, act), (top, left)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("channels,size,kernel,stride", [
    (16, (20, 20), 3, 1), (16, (21, 19), 3, 2), (72, (16, 16), 3, 2), (24, (9, 13), 3, 1), (88, (8, 8), 3, 1),
    (96, (10, 10), 5, 2), (128, (7, 9), 5, 1), (3, (6, 5), 3, 2), (40, (3, 2), 5, 1), (8, (1, 1), 3, 1),
    (17, (11, 12), 4, 2),
])
def test_depthwise_matches_stock_torch(channels, size, kernel, stride, act):
    x = _nhwc(1, channels, *size, seed=channels)
    weight = torch.randn((kernel, kernel, channels), generator=torch.Generator().manual_seed(1))
    bias = torch.randn(channels, generator=torch.Generator().manual_seed(2))
    expected, (top, left) = _reference_depthwise(x, weight, bias, stride, act)
    out = torch.ops.holocam.depthwise(x, weight, bias, stride, top, left, expected.shape[2], expected.shape[3],
                                      ACTIVATIONS[act])
    assert out.shape == expected.shape and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("k_in,n_out,size", [
    (16, 16, (32, 32)), (16, 72, (16, 16)), (72, 24, (8, 8)), (24, 88, (9, 7)), (128, 32, (4, 4)),
    (3, 5, (5, 3)), (32, 1, (6, 6)), (8, 40, (1, 1)), (5, 23, (3, 11)),
])
def test_pointwise_matches_stock_torch(k_in, n_out, size, act, residual):
    x = _nhwc(1, k_in, *size, seed=k_in)
    weight = torch.randn((n_out, k_in), generator=torch.Generator().manual_seed(3))
    bias = torch.randn(n_out, generator=torch.Generator().manual_seed(4))
    other = _nhwc(1, n_out, *size, seed=99) if residual else None
    expected = F.conv2d(x, weight[:, :, None, None], bias)
    expected = _activate(expected + other if residual else expected, act)
    out = torch.ops.holocam.pointwise(x, weight.t().contiguous(), bias, other, ACTIVATIONS[act])
    assert out.shape == expected.shape and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("with_residual", [False, True])
def test_depthwise_adds_a_residual_after_the_activation(with_residual):
    x = _nhwc(1, 24, 13, 10, seed=5)
    weight, bias = torch.randn(3, 3, 24), torch.randn(24)
    expected, (top, left) = _reference_depthwise(x, weight, bias, 1, "RELU")
    residual = _nhwc(1, 24, 13, 10, seed=6) if with_residual else None
    out = torch.ops.holocam.depthwise(x, weight, bias, 1, top, left, 13, 10, ACTIVATIONS["RELU"], residual)
    torch.testing.assert_close(out, expected + residual if with_residual else expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("channels,hidden,size", [(16, 8, (128, 128)), (96, 24, (16, 16)), (128, 32, (9, 16)),
                                                   (5, 3, (3, 7)), (8, 8, (1, 1))])
def test_squeeze_excite_matches_pool_conv_conv_sigmoid(channels, hidden, size, relu):
    x = _nhwc(1, channels, *size, seed=channels)
    g = torch.Generator().manual_seed(11)
    w1, b1 = torch.randn((hidden, channels), generator=g), torch.randn(hidden, generator=g)
    w2, b2 = torch.randn((channels, hidden), generator=g), torch.randn(channels, generator=g)
    h = F.conv2d(x.mean(dim=(2, 3), keepdim=True), w1[:, :, None, None], b1)
    expected = torch.sigmoid(F.conv2d(F.relu(h) if relu else h, w2[:, :, None, None], b2))
    out = torch.ops.holocam.squeeze_excite(x, w1.t().contiguous(), b1, ACTIVATIONS["RELU" if relu else "NONE"],
                                           w2.t().contiguous(), b2)
    assert out.shape == (1, channels, 1, 1)
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("channels,hidden,size", [(16, 16, (72, 128)), (24, 8, (18, 32)), (5, 3, (3, 7))])
def test_squeeze_excite_of_two_maps_is_the_gate_of_their_sum_to_the_bit(channels, hidden, size):
    a, b = _nhwc(1, channels, *size, seed=channels), _nhwc(1, channels, *size, seed=channels + 1)
    g = torch.Generator().manual_seed(12)
    w1, b1 = torch.randn((channels, hidden), generator=g), torch.randn(hidden, generator=g)
    w2, b2 = torch.randn((hidden, channels), generator=g), torch.randn(channels, generator=g)
    relu = ACTIVATIONS["RELU"]
    summed = torch.ops.holocam.squeeze_excite(a + b, w1, b1, relu, w2, b2)
    fused = torch.ops.holocam.squeeze_excite(a, w1, b1, relu, w2, b2, b)
    assert torch.equal(fused, summed)
    assert not torch.equal(fused, torch.ops.holocam.squeeze_excite(a, w1, b1, relu, w2, b2))


@pytest.mark.parametrize("channels,size", [(16, (72, 128)), (24, (36, 64)), (5, (3, 7)), (8, (1, 1))])
def test_gated_add_is_addcmul_to_the_bit(channels, size):
    x, y = _nhwc(1, channels, *size, seed=channels), _nhwc(1, channels, *size, seed=channels + 2)
    gate = torch.sigmoid(torch.randn((1, channels, 1, 1), generator=torch.Generator().manual_seed(3)))
    out = torch.ops.holocam.gated_add(x, gate, y)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, torch.addcmul(y, x, gate))


@pytest.mark.parametrize("channels,size", [(16, (64, 64)), (24, (16, 16)), (16, (9, 16)), (5, (3, 7)), (8, (1, 1))])
def test_upsample2x_matches_torch_bilinear_half_pixel(channels, size):
    x = _nhwc(1, channels, *size, seed=channels)
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    out = torch.ops.holocam.upsample2x(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("act", ["NONE", "RELU", "HARD_SWISH"])
@pytest.mark.parametrize("size,kernel,stride,cout", [((256, 256), 3, 2, 16), ((255, 17), 3, 2, 16), ((9, 8), 3, 1, 24),
                                                     ((5, 6), 5, 2, 3), ((2, 2), 3, 2, 8)])
def test_conv_u8_matches_a_float_conv_of_the_frame(size, kernel, stride, cout, act):
    frame = torch.randint(0, 256, (1, *size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    weight = torch.randn((kernel, kernel, 3, cout), generator=torch.Generator().manual_seed(8)) / 255.0
    bias = torch.randn(cout, generator=torch.Generator().manual_seed(9))
    x = frame.permute(0, 3, 1, 2).float()
    top, bottom = _same_padding(size[0], kernel, stride, 1)
    left, right = _same_padding(size[1], kernel, stride, 1)
    expected = F.conv2d(F.pad(x, (left, right, top, bottom)), weight.permute(3, 2, 0, 1), bias, stride=stride)
    expected = _activate(expected, act)
    out = torch.ops.holocam.conv_u8(frame, weight, bias, stride, top, left, expected.shape[2], expected.shape[3],
                                    ACTIVATIONS[act])
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_activations_treat_nan_and_infinity_as_torch_does(act):
    values = torch.tensor([float("inf"), -float("inf"), float("nan"), 2.0, -2.0, 7.0, -0.0, 0.5] * 2)
    x = values.reshape(1, 1, 1, 16).permute(0, 3, 1, 2)        # 16 channels, one pixel
    identity = torch.ones(1, 1, 16)                          # a 1x1 depthwise: y = x exactly
    out = torch.ops.holocam.depthwise(x, identity, torch.zeros(16), 1, 0, 0, 1, 1, ACTIVATIONS[act])
    # inf, -inf and NaN exactly where torch has them; finite values to the last bit but one.
    torch.testing.assert_close(out, _activate(x, act), equal_nan=True, atol=0, rtol=3e-7)


@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.trace` is deprecated:DeprecationWarning")
def test_kernels_are_traced_as_torch_ops():
    x = _nhwc(1, 16, 8, 8)
    weight, bias = torch.randn(3, 3, 16), torch.randn(16)
    traced = torch.jit.trace(lambda t: torch.ops.holocam.depthwise(t, weight, bias, 1, 1, 1, 8, 8, 1), x)
    assert "holocam::depthwise" in str(traced.graph)
    torch.testing.assert_close(traced(x), torch.ops.holocam.depthwise(x, weight, bias, 1, 1, 1, 8, 8, 1))


def test_isa_is_one_of_the_builds(kernels):
    assert torch.ops.holocam.isa() == kernels in ("avx512", "avx2", "generic")


@pytest.mark.parametrize("channels,size,stride,outs", [
    (16, (72, 128), 2, 1), (16, (128, 128), 2, 1), (5, (3, 7), 2, 1), (16, (1, 1), 2, 1), (9, (5, 6), 3, 2),
    (33, (4, 9), 1, 3),
])
def test_mask_head_matches_the_transposed_conv_and_sigmoid(channels, size, stride, outs):
    """holocam.mask_head = sigmoid(ConvTranspose2d with kernel == stride), the selfie models' last step."""
    x = _nhwc(1, channels, *size, seed=channels) * 3
    weight = torch.randn((channels, outs, stride, stride), generator=torch.Generator().manual_seed(5))  # (in, out, kh, kw)
    bias = torch.randn(outs, generator=torch.Generator().manual_seed(6))
    expected = torch.sigmoid(F.conv_transpose2d(x, weight, bias, stride=stride))
    taps = weight.permute(0, 2, 3, 1).reshape(channels, stride * stride * outs).contiguous()   # (in, (ky, kx, o))
    out = torch.ops.holocam.mask_head(x, taps, bias.repeat(stride * stride).contiguous(), stride)
    assert out.shape == expected.shape and out.is_contiguous()
    torch.testing.assert_close(out, expected, atol=2e-6, rtol=1e-5)
    # the logistic's ends: saturated, never NaN; a NaN input stays NaN
    extreme = torch.full((1, 1, 2, 3), 1e4).contiguous(memory_format=torch.channels_last)
    extreme[0, 0, 0, 0] = -1e4
    extreme[0, 0, 1, 2] = float("nan")
    ends = torch.ops.holocam.mask_head(extreme, torch.ones(1, 4), torch.zeros(4), 2)[0, 0]
    assert 0 <= ends[0, 0] < 1e-30 and ends[0, 2] == 1.0 and bool(torch.isnan(ends[3, 5]))


@pytest.mark.parametrize("call,message", [
    (lambda x: torch.ops.holocam.depthwise(x.contiguous(), torch.randn(3, 3, 16), torch.randn(16), 1, 1, 1, 8, 8, 0),
     "channels_last"),
    (lambda x: torch.ops.holocam.depthwise(x.double(), torch.randn(3, 3, 16), torch.randn(16), 1, 1, 1, 8, 8, 0),
     "float32"),
    (lambda x: torch.ops.holocam.depthwise(x, torch.randn(3, 3, 8), torch.randn(16), 1, 1, 1, 8, 8, 0),
     "do not match"),
    (lambda x: torch.ops.holocam.depthwise(x, torch.randn(3, 3, 16), torch.randn(16), 0, 1, 1, 8, 8, 0),
     "out of range"),
    (lambda x: torch.ops.holocam.depthwise(x, torch.randn(3, 3, 16), torch.randn(16), 1, 1, 1, 8, 8, 7),
     "unknown activation"),
    (lambda x: torch.ops.holocam.pointwise(x, torch.randn(8, 4), torch.randn(4), None, 0), "do not match"),
    (lambda x: torch.ops.holocam.pointwise(x, torch.randn(16, 4), torch.randn(4), _nhwc(1, 4, 7, 8), 0),
     "residual"),
    (lambda x: torch.ops.holocam.pointwise(torch.cat([x, x]), torch.randn(16, 4), torch.randn(4), None, 0),
     "(1, C, H, W)"),
    (lambda x: torch.ops.holocam.depthwise(x, torch.randn(3, 3, 16), torch.randn(16), 1, 1, 1, 8, 8, 0,
                                           _nhwc(1, 16, 4, 4)), "residual"),
    (lambda x: torch.ops.holocam.upsample2x(x.contiguous()), "channels_last"),
    (lambda x: torch.ops.holocam.squeeze_excite(x, torch.randn(8, 4), torch.randn(4), 1, torch.randn(4, 16),
                                                torch.randn(16)), "do not match"),
    (lambda x: torch.ops.holocam.squeeze_excite(x, torch.randn(16, 4), torch.randn(4), 3, torch.randn(4, 16),
                                                torch.randn(16)), "NONE or RELU"),
    (lambda x: torch.ops.holocam.squeeze_excite(x, torch.randn(16, 4), torch.randn(4), 1, torch.randn(4, 16),
                                                torch.randn(16), _nhwc(1, 16, 4, 8)), "second input"),
    (lambda x: torch.ops.holocam.gated_add(x, torch.rand(1, 8, 1, 1), _nhwc(1, 16, 8, 8)), "gate"),
    (lambda x: torch.ops.holocam.gated_add(x, torch.rand(1, 16, 1, 1), _nhwc(1, 16, 8, 4)), "addend"),
    (lambda x: torch.ops.holocam.gated_add(x, torch.rand(1, 16, 1, 1), x.contiguous()), "channels_last"),
    (lambda x: torch.ops.holocam.conv_u8(x, torch.randn(3, 3, 3, 16), torch.randn(16), 2, 0, 0, 4, 4, 0), "uint8"),
    (lambda x: torch.ops.holocam.conv_u8(torch.zeros(1, 8, 8, 4, dtype=torch.uint8), torch.randn(3, 3, 3, 16),
                                         torch.randn(16), 2, 0, 0, 4, 4, 0), "do not match"),
    (lambda x: torch.ops.holocam.mask_head(x, torch.randn(8, 4), torch.randn(4), 2), "do not match"),
    (lambda x: torch.ops.holocam.mask_head(x, torch.randn(16, 6), torch.randn(6), 2), "do not match"),
    (lambda x: torch.ops.holocam.mask_head(x, torch.randn(16, 4), torch.randn(4), 0), "out of range"),
    (lambda x: torch.ops.holocam.mask_head(x.contiguous(), torch.randn(16, 4), torch.randn(4), 2), "channels_last"),
])
def test_bad_arguments_raise_instead_of_reading_out_of_bounds(call, message):
    with pytest.raises(RuntimeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(_nhwc(1, 16, 8, 8))


def _load_in_subprocess(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = ("import logging, sys; logging.basicConfig(level=logging.WARNING, stream=sys.stdout)\n"
            "from segmenter.kernels import load, KernelsUnavailable\n"
            "try:\n    print('ISA', load())\n"
            "except KernelsUnavailable as exc:\n    print('ERROR', exc); sys.exit(3)\n")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("setting,code", [("auto", 0), ("1", 3)])
def test_a_build_the_cpu_does_not_run_is_refused_not_used(setting, code):
    # An unknown name stands for any build this CPU cannot run: the library runs its best build instead.
    result = _load_in_subprocess({"HOLOCAM_KERNELS": setting, "HOLOCAM_KERNELS_ISA": "sse9"})
    assert result.returncode == code
    assert "HOLOCAM_KERNELS_ISA=sse9 but this CPU runs the" in result.stdout
    assert "choose one of avx512, avx2, generic" in result.stdout
    if setting == "auto":
        assert "ISA None" in result.stdout   # the model then runs on stock torch ops


def test_off_switch_leaves_the_library_unloaded():
    result = _load_in_subprocess({"HOLOCAM_KERNELS": "0"})
    assert result.returncode == 0 and "ISA None" in result.stdout


def test_bad_switch_value_is_a_one_line_error():
    result = _load_in_subprocess({"HOLOCAM_KERNELS": "fast"})
    assert result.returncode == 3 and "HOLOCAM_KERNELS='fast' is not one of auto, 0, 1" in result.stdout


@pytest.mark.parametrize("setting,code", [("auto", 0), ("1", 3)])
def test_without_a_compiler_auto_falls_back_and_require_fails(tmp_path, setting, code):
    # An empty cache (nothing prebuilt) and a compiler that does not exist.
    env = {"HOLOCAM_KERNELS": setting, "HOLOCAM_CACHE_DIR": str(tmp_path), "CXX": "/nonexistent/g++",
           "PATH": str(tmp_path)}
    result = _load_in_subprocess(env)
    assert result.returncode == code, result.stdout + result.stderr
    assert "no C++ compiler" in result.stdout and "g++" in result.stdout
    if setting == "auto":
        assert "ISA None" in result.stdout and "stock torch ops" in result.stdout
    assert not any(tmp_path.rglob("*.so"))


def test_library_lives_under_a_key_of_sources_and_torch(tmp_path):
    path = library_path(tmp_path)
    assert path.parent.parent == tmp_path / "kernels"
    assert build_key() in path.parent.name and torch.__version__ in path.parent.name


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


@pytest.mark.parametrize("isa", ["avx2", "generic"])
def test_lower_builds_match_stock_torch_and_litert(isa, kernels):
    """This machine runs the best build; the others are forced here so each one is tested."""
    if isa == kernels:
        pytest.skip(f"{isa} is this CPU's default build, tested above")
    if isa == "avx2" and not {"avx2", "fma", "bmi2"} <= _cpu_flags():
        pytest.skip("this CPU has no AVX2: the avx2 build cannot run here")
    env = {**os.environ, "HOLOCAM_KERNELS": "1", "HOLOCAM_KERNELS_ISA": isa}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/segmenter/test_kernels.py", "tests/segmenter/test_selfie_parity.py",
         "-k", "matches or residual or isa_is_one or match_litert"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_kernels_command_prints_the_library_and_its_build(kernels):
    result = subprocess.run([sys.executable, "-m", "segmenter", "kernels"], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "libholocam_ops.so" in result.stdout
    assert f"({kernels} on this CPU)" in result.stdout


def test_failed_compile_is_a_one_line_error_and_leaves_no_library(tmp_path):
    fake = tmp_path / "fake-g++"
    fake.write_text("#!/bin/sh\necho 'nhwc_kernels.cpp:1:1: error: out of disk' >&2\nexit 1\n")
    fake.chmod(0o755)
    result = subprocess.run([sys.executable, "-m", "segmenter", "kernels", "--cache-dir", str(tmp_path / "cache")],
                            cwd=REPO, env={**os.environ, "CXX": str(fake)}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error: out of disk" in lines[0] and "apt install g++" in lines[0]
    assert not any((tmp_path / "cache").rglob("*.so"))


def test_threads_split_the_rows_without_changing_a_bit():
    """At 2 torch threads the large maps are split by rows: results must equal the 1-thread ones."""
    x = _nhwc(1, 16, 128, 128, seed=11)
    frame = torch.randint(0, 256, (1, 256, 256, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(12))
    w_dw, b16 = torch.randn(3, 3, 16), torch.randn(16)
    w_pw, w_conv = torch.randn(16, 16), torch.randn(3, 3, 3, 16) / 255.0
    calls = {
        "depthwise": lambda: torch.ops.holocam.depthwise(x, w_dw, b16, 1, 1, 1, 128, 128, 1, x),
        "pointwise": lambda: torch.ops.holocam.pointwise(x, w_pw, b16, x, 3),
        "upsample2x": lambda: torch.ops.holocam.upsample2x(x),
        "conv_u8": lambda: torch.ops.holocam.conv_u8(frame, w_conv, b16, 2, 0, 0, 128, 128, 1),
        "mask_head": lambda: torch.ops.holocam.mask_head(x, w_pw[:, :4].contiguous(), b16[:4].contiguous(), 2),
    }
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = {name: call() for name, call in calls.items()}
        torch.set_num_threads(2)
        for name, call in calls.items():
            assert torch.equal(call(), single[name]), name
    finally:
        torch.set_num_threads(before)
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(single["upsample2x"], expected, atol=1e-5, rtol=1e-5)


def test_a_corrupt_library_in_the_cache_falls_back_with_one_warning(tmp_path):
    # What a full disk or a killed copy could leave behind: build() never writes this (it renames a
    # finished file into place), but load() must survive it, and =1 must refuse it.
    env = {"HOLOCAM_CACHE_DIR": str(tmp_path)}
    probe = subprocess.run([sys.executable, "-c", "from segmenter.kernels.build import library_path; "
                            "print(library_path())"], cwd=REPO, env={**os.environ, **env},
                           capture_output=True, text=True, timeout=120)
    library = Path(probe.stdout.strip())
    library.parent.mkdir(parents=True)
    library.write_bytes(b"\x7fELF truncated")
    result = _load_in_subprocess({**env, "HOLOCAM_KERNELS": "auto"})
    assert result.returncode == 0 and "ISA None" in result.stdout
    warnings = [line for line in result.stdout.splitlines() if "fused kernels unavailable" in line]
    assert len(warnings) == 1 and "stock torch ops" in warnings[0] and "kernels --force" in warnings[0]
    assert _load_in_subprocess({**env, "HOLOCAM_KERNELS": "1"}).returncode == 3


def test_the_wheel_ships_the_kernel_sources(tmp_path):
    """An installed holocam (not this checkout) must still be able to build its kernels."""
    import shutil
    import zipfile

    source = tmp_path / "src"   # setuptools writes build/ next to the sources: not into the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for package in ("capture_sink", "segmenter", "shared"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             str(source), "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    names = zipfile.ZipFile(next((tmp_path / "dist").glob("holocam-*.whl"))).namelist()
    for source in ("nhwc_kernels.cpp", "nhwc_kernels.h", "torch_ops.cpp", "build.py"):
        assert f"segmenter/kernels/{source}" in names
    from capture_sink.native import build as native_build   # the sink's passes too
    for path in (*native_build.SOURCES, native_build.HEADER):
        assert f"capture_sink/native/{path.name}" in names
