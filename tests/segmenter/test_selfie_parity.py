"""The PyTorch port of MediaPipe's selfie segmentation against the real TFLite runtime (LiteRT).

Both runtimes get the same input: the photo resized by `prepare_input`, as float32 rgb/255
(LiteRT) or as the uint8 frame the torch model divides by 255 itself (bit-identical floats).
Many wrong ports (symmetric padding, a second sigmoid, a half-pixel resize) still give
plausible masks; only these figures against LiteRT prove the port.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import skimage.data

from segmenter.kernels import load as load_kernels
from segmenter.model import ModelError, create_model
from segmenter.model.selfie import SELFIE_SPECS, SelfieSegmentation, load_selfie
from segmenter.model.selfie_net import SelfieNet
from segmenter.model.selfie_steps import (DepthwiseKernel, FrameConvKernel, GatedAdd, GatedPointwise, Resize,
                                          SqueezeExciteKernel)
from segmenter.model.tflite_graph import TRANSPOSE_CONV_BIAS, read_tflite
from segmenter.weights import weights_path
from shared.resize import prepare_input

MODELS = ("selfie", "selfie-landscape")
# fast: fused + traced with the fused NHWC kernels (what load_selfie serves where they build);
# fast_stock: the same on stock torch ops (where they do not); eager: the plain op-by-op reference
# (fast=False); fused_eager / kernels_eager: the fused graphs run untraced, so a fusion bug cannot
# hide behind the tracer.
PATHS = ("fast", "fast_stock", "eager", "fused_eager", "kernels_eager")
MAX_PROB_DIFF = 1e-3
MIN_IOU = 0.999
# Scenes without a subject: measured 0.000 person fraction for both models (people photos: 31-58%).
MAX_EMPTY_SCENE_FRACTION = 0.01


def _grace_hopper_rgb() -> np.ndarray:
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


PEOPLE = {
    "astronaut": skimage.data.astronaut,
    "camera": lambda: np.repeat(skimage.data.camera()[:, :, None], 3, axis=2),  # grey -> 3 channels
    "grace_hopper": _grace_hopper_rgb,
}
EMPTY_SCENES = {"rocket": skimage.data.rocket, "brick": skimage.data.brick, "page": skimage.data.page}
# The selfie models segment whatever salient subject fills the frame, person or not: LiteRT itself
# gives coffee 23% (general) / 51% (landscape) and chelsea 91% / 65%. For these the port must
# agree with LiteRT; "no person" cannot be asserted of MediaPipe's own model.
SUBJECTS_NOT_PEOPLE = {"coffee": skimage.data.coffee, "chelsea": skimage.data.chelsea}


def _three_channels(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)


@pytest.fixture(scope="module")
def models() -> dict[tuple[str, str], SelfieSegmentation]:
    built = {}
    for name in MODELS:
        kernels = load_kernels() is not None   # HOLOCAM_KERNELS=1 (CI) makes a failed build an error
        built[name, "fast"] = load_selfie(name, kernels=kernels)
        built[name, "fast_stock"] = load_selfie(name, kernels=False)
        built[name, "eager"] = load_selfie(name, fast=False)
        for path, kernels in (("fused_eager", False), ("kernels_eager", kernels)):
            net = SelfieNet(read_tflite(weights_path(name)), fuse=True, kernels=kernels)
            built[name, path] = SelfieSegmentation(net, name, fast=False)
    return built


@pytest.fixture(scope="module")
def litert() -> dict:
    from ai_edge_litert.interpreter import Interpreter

    interpreters = {}
    for name in MODELS:
        interpreter = Interpreter(model_path=str(weights_path(name)), num_threads=1)
        interpreter.allocate_tensors()
        interpreters[name] = interpreter
    return interpreters


def _litert_probability(interpreter, rgb: np.ndarray) -> np.ndarray:
    tensor = (rgb.astype(np.float32) / np.float32(255.0))[None]
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0, :, :, 0].copy()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("image", PEOPLE)
@pytest.mark.parametrize("name", MODELS)
def test_probabilities_match_litert_on_people(models, litert, name, image, path):
    rgb = prepare_input(PEOPLE[image](), SELFIE_SPECS[name], bgr=False)
    reference = _litert_probability(litert[name], rgb)
    ours = models[name, path].probabilities(rgb)
    assert ours.shape == reference.shape and ours.dtype == np.float32
    person = reference >= 0.5
    assert person.mean() > 0.1, "the photo should show a person to LiteRT"
    assert np.abs(ours - reference).max() <= MAX_PROB_DIFF
    assert _iou(ours >= 0.5, person) >= MIN_IOU


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", MODELS)
def test_mask_is_litert_probability_times_255_rounded(models, litert, name, path):
    rgb = prepare_input(PEOPLE["astronaut"](), SELFIE_SPECS[name], bgr=False)
    expected = np.rint(_litert_probability(litert[name], rgb) * 255.0)
    mask = models[name, path].segment(rgb)
    assert mask.shape == rgb.shape[:2] and mask.dtype == np.uint8
    assert np.abs(mask.astype(np.int16) - expected).max() <= 1
    assert mask.min() < 10 and mask.max() > 245  # a real mask spans the whole range


@pytest.mark.parametrize("image", EMPTY_SCENES)
@pytest.mark.parametrize("name", MODELS)
def test_scenes_without_people_give_no_person(models, litert, name, image):
    rgb = prepare_input(_three_channels(EMPTY_SCENES[image]()), SELFIE_SPECS[name], bgr=False)
    mask = models[name, "fast"].segment(rgb)
    assert float(np.mean(mask >= 128)) <= MAX_EMPTY_SCENE_FRACTION
    assert float(np.mean(_litert_probability(litert[name], rgb) >= 0.5)) <= MAX_EMPTY_SCENE_FRACTION


@pytest.mark.parametrize("image", SUBJECTS_NOT_PEOPLE)
@pytest.mark.parametrize("name", MODELS)
def test_non_person_subjects_are_segmented_like_litert(models, litert, name, image):
    rgb = prepare_input(SUBJECTS_NOT_PEOPLE[image](), SELFIE_SPECS[name], bgr=False)
    reference = _litert_probability(litert[name], rgb)
    ours = models[name, "fast"].probabilities(rgb)
    assert np.abs(ours - reference).max() <= MAX_PROB_DIFF
    assert _iou(ours >= 0.5, reference >= 0.5) >= MIN_IOU


@pytest.mark.parametrize("name", MODELS)
def test_segment_is_repeatable_and_leaves_input_alone(models, name):
    rgb = prepare_input(PEOPLE["grace_hopper"](), SELFIE_SPECS[name], bgr=False)
    before = rgb.copy()
    first = models[name, "fast"].segment(rgb)
    second = models[name, "fast"].segment(rgb)
    assert np.array_equal(first, second)
    assert np.array_equal(rgb, before)
    assert first is not second  # callers may keep masks: each call returns its own array


@pytest.mark.parametrize("name", MODELS)
def test_fast_and_eager_paths_agree(models, name):
    rgb = prepare_input(PEOPLE["camera"](), SELFIE_SPECS[name], bgr=False)
    diff = np.abs(models[name, "fast"].probabilities(rgb) - models[name, "eager"].probabilities(rgb))
    assert diff.max() <= 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_fusion_merges_ops_into_fewer_steps(name):
    graph = read_tflite(weights_path(name))
    plain, fused = SelfieNet(graph, fuse=False), SelfieNet(graph, fuse=True)
    assert len(plain.steps) == len(graph.ops)
    assert len(fused.steps) < 0.8 * len(graph.ops)
    # The first conv absorbed rgb/255 and takes TF's trailing SAME padding from `prepare`.
    assert plain.input_divisor == 255.0 and fused.input_divisor is None and fused.input_pad == (1, 1)
    assert fused.step_outputs[-1] == plain.step_outputs[-1] == graph.outputs[0]


@pytest.mark.parametrize("name", MODELS)
def test_kernels_take_every_depthwise_conv_and_the_residual_adds(name):
    if load_kernels() is None:
        pytest.skip("the fused kernels do not build here (no g++?); CI sets HOLOCAM_KERNELS=1")
    graph = read_tflite(weights_path(name))
    stock, kernels = SelfieNet(graph, fuse=True), SelfieNet(graph, fuse=True, kernels=True)
    depthwise_ops = sum(op.kind == "DEPTHWISE_CONV_2D" for op in graph.ops)
    assert sum(isinstance(step, DepthwiseKernel) for step in kernels.steps) == depthwise_ops > 0
    assert not any(isinstance(step, DepthwiseKernel) for step in stock.steps)
    residual = [i for i, step in enumerate(kernels.steps) if getattr(step, "residual", False)]
    assert residual and all(len(kernels.step_inputs[i]) == 2 for i in residual)
    # conv(x * gate) + other: the squeeze-excite blocks' residual ADDs (4 in each model)
    gated_residual = [i for i, step in enumerate(kernels.steps)
                      if isinstance(step, GatedPointwise) and step.pointwise.residual]
    assert len(gated_residual) == 4 and all(len(kernels.step_inputs[i]) == 3 for i in gated_residual)
    depthwise_add = [step for step in kernels.steps if getattr(step, "add_input", False)]
    assert len(depthwise_add) == 3    # the decoder's x + relu(depthwise(x)) at three scales
    # pool -> conv -> relu -> conv -> sigmoid (4 stock steps) as one squeeze_excite call; the 10th
    # block's convs interleave with another branch and stay apart
    squeeze = [step for step in kernels.steps if isinstance(step, SqueezeExciteKernel)]
    assert len(squeeze) == 9 and not any(isinstance(step, SqueezeExciteKernel) for step in stock.steps)
    # the decoder's skip ADD (read only by its squeeze-excite pool) summed inside the gate kernel,
    # at three scales; its gated sum y + x * gate runs as holocam.gated_add
    summed = [i for i, step in enumerate(kernels.steps) if isinstance(step, SqueezeExciteKernel)
              and len(kernels.step_inputs[i]) == 2]
    assert len(summed) == 3
    gated_adds = [step for step in kernels.steps if isinstance(step, GatedAdd)]
    assert len(gated_adds) == 3 and all(step.kernel for step in gated_adds)
    assert not any(step.kernel for step in stock.steps if isinstance(step, GatedAdd))
    # Each residual ADD joined its conv or depthwise.
    assert len(kernels.steps) == (len(stock.steps) - len(residual) - len(gated_residual) - len(depthwise_add)
                                  - 3 * len(squeeze) - len(summed))
    # The first conv reads the uint8 frame; the decoder's 2x upsamplings run as holocam.upsample2x.
    assert isinstance(kernels.steps[0], FrameConvKernel) and kernels.input_raw and not stock.input_raw
    upsamplings = [m for m in kernels.modules() if isinstance(m, Resize)]
    assert len(upsamplings) == 3 and all(m.kernel for m in upsamplings)


@pytest.mark.parametrize("name", MODELS)
def test_input_spec_is_mediapipe_geometry(models, name):
    spec = models[name, "fast"].input_spec
    expected = (256, 256) if name == "selfie" else (256, 144)
    assert (spec.width, spec.height, spec.resize) == (*expected, "stretch")
    assert models[name, "fast"].KEY == name


def test_wrong_input_shape_is_a_clear_error(models):
    with pytest.raises(ModelError, match="prepare_input"):
        models["selfie", "fast"].segment(np.zeros((144, 256, 3), np.uint8))
    with pytest.raises(ModelError, match="uint8"):
        models["selfie", "fast"].segment(np.zeros((256, 256, 3), np.float32))


def test_graph_reader_folds_fp16_weights_and_decodes_the_custom_op():
    graph = read_tflite(weights_path("selfie"))
    kinds = {op.kind for op in graph.ops}
    assert "DEQUANTIZE" not in kinds  # folded into fp32 constants
    assert kinds == {"CONV_2D", "DEPTHWISE_CONV_2D", "RELU", "HARD_SWISH", "ADD", "MUL", "LOGISTIC",
                     "AVERAGE_POOL_2D", "RESIZE_BILINEAR", TRANSPOSE_CONV_BIAS}
    custom = [op for op in graph.ops if op.custom]
    assert len(custom) == 1 and custom[0].options == {"padding": "SAME", "stride": (2, 2)}
    weights = [t for t in graph.tensors if t.is_constant and t.dtype == np.float32]
    assert len(weights) >= 100
    for tensor in weights:  # fp16 -> fp32 is exact: every weight survives the round trip
        assert np.array_equal(tensor.data.astype(np.float16).astype(np.float32), tensor.data)
    resize = [op for op in graph.ops if op.kind == "RESIZE_BILINEAR"]
    assert all(op.options == {"align_corners": False, "half_pixel_centers": True} for op in resize)
    assert graph.ops[-1].kind == "LOGISTIC"  # the output is a probability already


def test_landscape_graph_uses_mean_for_global_pooling():
    kinds = [op.kind for op in read_tflite(weights_path("selfie-landscape")).ops]
    assert kinds.count("MEAN") == 10 and "AVERAGE_POOL_2D" not in kinds


def test_not_a_tflite_file_is_a_clear_error(tmp_path):
    bogus = tmp_path / "weights.tflite"
    cv2.imwrite(str(bogus.with_suffix(".png")), np.zeros((8, 8), np.uint8))
    bogus.write_bytes(bogus.with_suffix(".png").read_bytes())
    with pytest.raises(ModelError, match="not a TFLite model.*make weights"):
        load_selfie("selfie", weights=bogus)


def test_truncated_tflite_file_is_a_clear_error(tmp_path):
    truncated = tmp_path / "selfie_segmentation.tflite"
    truncated.write_bytes(weights_path("selfie").read_bytes()[:60_000])
    with pytest.raises(ModelError, match="corrupt") as info:
        load_selfie("selfie", weights=truncated)
    assert "\n" not in str(info.value)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="cannot read the model file"):
        load_selfie("selfie", weights=tmp_path / "nope.tflite")


def test_weights_of_the_other_model_are_refused():
    with pytest.raises(ModelError, match="256x144 input but selfie is 256x256"):
        load_selfie("selfie", weights=weights_path("selfie-landscape"), fast=False)


def test_create_model_builds_both_selfie_models():
    for name in MODELS:
        model = create_model(name, fast=False)
        assert isinstance(model, SelfieSegmentation) and model.input_spec == SELFIE_SPECS[name]


def test_weights_other_than_mediapipes_load_with_a_warning(tmp_path, caplog):
    # Trailing bytes leave the flatbuffer intact but change the file's sha256.
    copy = tmp_path / "selfie_copy.tflite"
    copy.write_bytes(weights_path("selfie-landscape").read_bytes() + b"\0")
    with caplog.at_level("WARNING", logger="segmenter.model.selfie"):
        model = load_selfie("selfie-landscape", weights=copy, fast=False)
    assert model.input_spec == SELFIE_SPECS["selfie-landscape"]
    assert "sha256 differs" in caplog.text
