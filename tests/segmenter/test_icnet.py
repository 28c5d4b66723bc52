"""icnet-resnet18: the seed's checkpoint layout loads strictly, bad files fail clearly, and the
padding/cropping recipe of Human-Segmentation-PyTorch is reproduced exactly.

The authors' ICNet_ResNet18.pth cannot ship here, so the tests write checkpoints in that file's
exact layout (trainer dict, pickled logger) with seeded random weights.
"""

from __future__ import annotations

import logging
import os
import sys
import types
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from torch import nn

from segmenter.model import InputSpec, ModelError, create_model
from segmenter.model.checkpoint import save_state_dict
from segmenter.model.icnet import (IMAGENET_MEAN, IMAGENET_STD, INPUT_SIZE, ICNet, ICNetSegmentation,
                                   fast_copy, pad_offsets, random_icnet)
from shared.resize import prepare_input

KEYS_FILE = Path(__file__).resolve().parents[3] / "shared" / "data" / "icnet_resnet18_keys.txt"
MEAN = np.array(IMAGENET_MEAN)
STD = np.array(IMAGENET_STD)


def _grace_hopper() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")),
                        cv2.COLOR_BGR2RGB)


def _fit(rgb: np.ndarray) -> np.ndarray:
    """The sink's preparation for icnet-resnet18: longer side to 320, aspect kept."""
    return prepare_input(rgb, InputSpec(INPUT_SIZE, INPUT_SIZE, "fit"), bgr=False)


def _repo_recipe_mask(network: nn.Module, rgb: np.ndarray) -> np.ndarray:
    """The seed repo's inference, written out independently: pad uint8 with zeros (odd pixel at
    the bottom/right), /255, mean/std in float64, forward, crop the logits, softmax channel 1."""
    h, w = rgb.shape[:2]
    top, left = (INPUT_SIZE - h) // 2, (INPUT_SIZE - w) // 2
    padded = np.pad(rgb, ((top, INPUT_SIZE - h - top), (left, INPUT_SIZE - w - left), (0, 0)))
    x = (padded.astype(np.float32) / 255.0 - MEAN) / STD
    x = torch.tensor(x.transpose(2, 0, 1)[None], dtype=torch.float32)
    with torch.no_grad():
        logits = network.eval()(x)[..., top:top + h, left:left + w]
        person = F.softmax(logits, dim=1)[0, 1].numpy()
    return np.round(person * 255.0).astype(np.uint8)


def _trainer_checkpoint(state_dict: dict, logger_object: object) -> dict:
    """The dict Human-Segmentation-PyTorch's BaseTrainer._save_checkpoint writes."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01, momentum=0.9)
    return {"arch": "ICNet", "epoch": 150, "logger": logger_object, "state_dict": state_dict,
            "optimizer": optimizer.state_dict(), "monitor_best": 0.8627,
            "config": {"name": "ICNet", "arch": {"type": "ICNet", "args": {"backbone": "resnet18", "num_classes": 2}}}}


def _repo_logger_init(self) -> None:
    self.entries = {1: {"loss": 0.21, "valid_miou": 0.86}}


@pytest.fixture
def unimportable_logger(monkeypatch) -> object:
    """Stands for the repo's utils.logger.Logger: importable while saving, gone while loading
    (holocam never has the repo's `utils` package)."""
    module = types.ModuleType("hsp_utils_logger_for_test")
    module.Logger = type("Logger", (), {"__init__": _repo_logger_init, "__module__": module.__name__})
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module.Logger()


def _forget(module_name: str) -> None:
    del sys.modules[module_name]


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    return random_icnet(seed=3).state_dict()


def _message(exc_info: pytest.ExceptionInfo) -> str:
    message = str(exc_info.value)
    assert "\n" not in message, "errors are one line"
    return message


# --- state_dict names ------------------------------------------------------------------------

def test_state_dict_names_and_shapes_are_exactly_the_seed_checkpoints():
    expected = KEYS_FILE.read_text().splitlines()
    ours = [f"{name} {list(tensor.shape)}" for name, tensor in ICNet().state_dict().items()]
    assert ours == expected


# --- loading ---------------------------------------------------------------------------------

@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy-format"])
def test_repo_checkpoint_with_unimportable_logger_loads_strictly(tmp_path, weights, unimportable_logger,
                                                                 zip_format, caplog):
    path = tmp_path / "ICNet_ResNet18.pth"
    torch.save(_trainer_checkpoint(weights, unimportable_logger), path,
               _use_new_zipfile_serialization=zip_format)
    _forget(type(unimportable_logger).__module__)

    with caplog.at_level(logging.WARNING, logger="segmenter.model.icnet"):
        model = create_model("icnet-resnet18", weights=path)

    loaded = model.network.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "weights_only=False" in warnings[0] and str(path) in warnings[0]
    assert "hsp_utils_logger_for_test.Logger" in warnings[0] and "plain state_dict" in warnings[0]

    frame = _fit(_grace_hopper())
    assert frame.shape == (320, 273, 3)
    mask = model.segment(frame)
    assert mask.shape == (320, 273) and mask.dtype == np.uint8
    assert mask.min() < mask.max(), "a real image gives a varying mask even with random weights"


def test_repo_checkpoint_with_logging_logger_loads(tmp_path, weights):
    path = tmp_path / "model_best.pth"
    torch.save(_trainer_checkpoint(weights, logging.getLogger("Trainer")), path)
    model = create_model("icnet-resnet18", weights=path, fast=False)
    assert all(torch.equal(model.network.state_dict()[k], v) for k, v in weights.items())
    mask = model.segment(_fit(skimage.data.astronaut()))
    assert mask.shape == (320, 320) and mask.dtype == np.uint8


def test_plain_state_dict_loads_without_unsafe_unpickling(tmp_path, weights, caplog):
    path = tmp_path / "plain.pth"
    torch.save(weights, path)
    with caplog.at_level(logging.WARNING):
        model = create_model("icnet-resnet18", weights=path)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert all(torch.equal(model.network.state_dict()[k], v) for k, v in weights.items())


def test_dataparallel_prefix_is_stripped(tmp_path, weights):
    path = tmp_path / "dp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in weights.items()}}, path)
    model = create_model("icnet-resnet18", weights=path, fast=False)
    assert torch.equal(model.network.state_dict()["conv_cls.weight"], weights["conv_cls.weight"])


def test_resaved_checkpoint_is_a_plain_state_dict(tmp_path, weights, unimportable_logger, caplog):
    src, dst = tmp_path / "ICNet_ResNet18.pth", tmp_path / "ICNet_ResNet18.sd.pth"
    torch.save(_trainer_checkpoint(weights, unimportable_logger), src)
    _forget(type(unimportable_logger).__module__)
    save_state_dict(src, dst)
    plain = torch.load(dst, map_location="cpu", weights_only=True)
    assert plain.keys() == weights.keys()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        create_model("icnet-resnet18", weights=dst, fast=False)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_missing_weights_argument_names_the_flag():
    with pytest.raises(ModelError) as exc_info:
        create_model("icnet-resnet18")
    assert _message(exc_info) == "icnet-resnet18 needs --weights PATH to your ICNet_ResNet18.pth"


def test_nonexistent_weights_file_is_named(tmp_path):
    with pytest.raises(ModelError, match="does not exist") as exc_info:
        create_model("icnet-resnet18", weights=tmp_path / "nope.pth")
    assert str(tmp_path / "nope.pth") in _message(exc_info)


def _edited(weights: dict, edit: str) -> dict:
    state = dict(weights)
    if edit in ("missing", "all three"):
        del state["cff_12.conv_low_cls.weight"]
    if edit in ("unexpected", "all three"):
        state["backbone.fc.weight"] = torch.zeros(1000, 512)
    if edit in ("wrong shape", "all three"):
        state["conv_cls.weight"] = torch.zeros(3, 128, 1, 1)
    return state


@pytest.mark.parametrize("edit, expected", [
    ("missing", ["missing 1 key(s): cff_12.conv_low_cls.weight"]),
    ("unexpected", ["unexpected 1 key(s): backbone.fc.weight"]),
    ("wrong shape", ["wrong shape in 1 key(s): conv_cls.weight [3, 128, 1, 1] != [2, 128, 1, 1]"]),
    ("all three", ["missing 1", "unexpected 1", "wrong shape in 1"]),
])
def test_mismatched_checkpoint_names_the_keys(tmp_path, weights, edit, expected):
    path = tmp_path / "wrong.pth"
    torch.save({"epoch": 1, "state_dict": _edited(weights, edit)}, path)
    with pytest.raises(ModelError) as exc_info:
        create_model("icnet-resnet18", weights=path)
    message = _message(exc_info)
    assert "does not match icnet-resnet18" in message and str(path) in message
    for part in expected:
        assert part in message


def test_checkpoint_of_another_network_lists_a_few_keys_and_a_count(tmp_path):
    path = tmp_path / "UNet_ResNet18.pth"
    torch.save({"state_dict": {f"decoder.block{i}.weight": torch.zeros(4) for i in range(20)}}, path)
    with pytest.raises(ModelError) as exc_info:
        create_model("icnet-resnet18", weights=path)
    message = _message(exc_info)
    assert "missing 171 key(s)" in message and "(+165 more)" in message
    assert "unexpected 20 key(s): decoder.block0.weight" in message and "(+14 more)" in message


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy-format"])
@pytest.mark.parametrize("keep", [0.5, 0.98, 0.0], ids=["half", "nearly-all", "empty"])
def test_truncated_checkpoint_gives_one_clear_error(tmp_path, weights, unimportable_logger, zip_format, keep):
    full = tmp_path / "full.pth"
    torch.save(_trainer_checkpoint(weights, unimportable_logger), full, _use_new_zipfile_serialization=zip_format)
    _forget(type(unimportable_logger).__module__)
    data = full.read_bytes()
    cut = tmp_path / "ICNet_ResNet18.pth"
    cut.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ModelError) as exc_info:
        create_model("icnet-resnet18", weights=cut)
    message = _message(exc_info)
    assert str(cut) in message and "truncated or corrupt" in message


def test_file_that_is_not_a_checkpoint_gives_the_clear_error(tmp_path):
    path = tmp_path / "photo.pth"
    cv2.imwrite(str(path.with_suffix(".png")), skimage.data.camera())
    path.write_bytes(path.with_suffix(".png").read_bytes())
    with pytest.raises(ModelError, match="truncated or corrupt"):
        create_model("icnet-resnet18", weights=path)


def test_checkpoint_without_weights_says_what_it_holds(tmp_path):
    path = tmp_path / "config_only.pth"
    torch.save({"epoch": 3, "config": {"name": "ICNet"}}, path)
    with pytest.raises(ModelError, match="holds a dict with keys epoch, config, not a state_dict"):
        create_model("icnet-resnet18", weights=path)


# --- preprocessing geometry ------------------------------------------------------------------

@pytest.mark.parametrize("height, width, top, left", [
    (180, 320, 70, 0),     # landscape: even split
    (320, 200, 0, 60),     # portrait
    (181, 320, 69, 0),     # odd padding: the extra row goes to the bottom
    (320, 273, 0, 23),     # Grace Hopper fitted: 47 columns, 23 left, 24 right
    (320, 320, 0, 0),
    (1, 320, 159, 0),
])
def test_padding_is_split_evenly(height, width, top, left):
    assert pad_offsets(height, width) == (top, left)


class _ProbeNet(nn.Module):
    """Logits whose person-minus-background difference is the input's normalised red channel, so
    the mask at each pixel reveals which input pixel the crop took; also records its input."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, :1]], dim=1)


def _position_coded_image(height: int, width: int) -> np.ndarray:
    """Red differs between any pixel and its neighbours in both directions; G and B are noise."""
    rows, cols = np.mgrid[0:height, 0:width]
    rgb = np.random.default_rng(height * 1000 + width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    rgb[..., 0] = (37 * rows + 11 * cols) % 256
    return rgb


@pytest.mark.parametrize("height, width", [(180, 320), (320, 200), (181, 320), (320, 273), (320, 320)])
@pytest.mark.parametrize("fast", [False, True], ids=["eager", "fast"])
def test_crop_returns_exactly_the_unpadded_pixels(height, width, fast):
    rgb = _position_coded_image(height, width)
    model = ICNetSegmentation(_ProbeNet(), fast=fast)
    mask = model.segment(rgb)
    red = (rgb[..., 0] / 255.0 - MEAN[0]) / STD[0]
    expected = np.round(255.0 / (1.0 + np.exp(-red))).astype(np.uint8)
    assert mask.shape == (height, width) and mask.dtype == np.uint8
    assert np.abs(mask.astype(int) - expected).max() <= 1
    shifted = np.abs(mask[1:, 1:].astype(int) - expected[:-1, :-1])
    assert shifted.max() > 10, "the pattern must expose a crop that is off by one pixel"


@pytest.mark.parametrize("height, width", [(181, 320), (320, 273)])
def test_network_input_is_zero_padded_then_normalised(height, width):
    rgb = _position_coded_image(height, width)
    probe = _ProbeNet()
    ICNetSegmentation(probe, fast=False).segment(rgb)
    seen = probe.inputs[-1][0].numpy()
    assert seen.shape == (3, INPUT_SIZE, INPUT_SIZE)
    top, left = pad_offsets(height, width)
    expected = np.broadcast_to(((0.0 - MEAN) / STD)[:, None, None], seen.shape).copy()
    expected[:, top:top + height, left:left + width] = ((rgb / 255.0 - MEAN) / STD).transpose(2, 0, 1)
    np.testing.assert_allclose(seen, expected, atol=1e-5)


def test_padding_follows_geometry_changes():
    """A portrait frame after a landscape one: no stale pixels of the first in the padding."""
    probe = _ProbeNet()
    model = ICNetSegmentation(probe, fast=False)
    model.segment(np.full((180, 320, 3), 255, np.uint8))
    model.segment(np.full((320, 200, 3), 255, np.uint8))
    seen = probe.inputs[-1][0].numpy()
    zero = (0.0 - MEAN[0]) / STD[0]
    np.testing.assert_allclose(seen[0, :, :60], zero, atol=1e-6)
    np.testing.assert_allclose(seen[0, :, 260:], zero, atol=1e-6)
    np.testing.assert_allclose(seen[0, :, 60:260], (1.0 - MEAN[0]) / STD[0], atol=1e-5)


# --- the real network against the repo's recipe ----------------------------------------------

@pytest.fixture(scope="module")
def eager_and_fast() -> tuple[ICNetSegmentation, ICNetSegmentation]:
    network = random_icnet(seed=7)
    return ICNetSegmentation(network, fast=False), ICNetSegmentation(network, fast=True)


@pytest.mark.parametrize("image", ["grace_hopper", "chelsea", "coffee"])
def test_masks_equal_the_repo_recipe(eager_and_fast, image):
    rgb = _fit(_grace_hopper() if image == "grace_hopper" else getattr(skimage.data, image)())
    eager, fast = eager_and_fast
    reference = _repo_recipe_mask(eager.network, rgb).astype(int)
    for model in (eager, fast):
        mask = model.segment(rgb)
        assert mask.shape == rgb.shape[:2]
        assert np.abs(mask.astype(int) - reference).max() <= 1
    assert reference.min() < reference.max()


def test_fast_copy_folds_every_batch_norm_and_keeps_the_original(eager_and_fast):
    eager, _ = eager_and_fast
    folded = fast_copy(eager.network)
    assert not [m for m in folded.modules() if isinstance(m, (nn.BatchNorm2d, nn.MaxPool2d))]
    norms_in_checkpoint = sum(".running_mean " in line for line in KEYS_FILE.read_text().splitlines())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in eager.network.modules()) == norms_in_checkpoint
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 320, 320), dtype=np.float32))
    with torch.no_grad():
        torch.testing.assert_close(folded(x), eager.network(x), atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize("frame", [
    np.zeros((256, 256, 3), np.uint8),          # the selfie model's size, not 320
    np.zeros((320, 180, 3), np.float32),        # not uint8
    np.zeros((320, 180), np.uint8),             # grey
    np.zeros((321, 180, 3), np.uint8),          # longer side too long
], ids=["256x256", "float32", "grey", "321"])
def test_unprepared_frame_is_rejected_with_the_fix(eager_and_fast, frame):
    eager, _ = eager_and_fast
    with pytest.raises(ModelError, match="prepare_input") as exc_info:
        eager.segment(frame)
    assert str(frame.shape) in _message(exc_info)


def test_input_spec_asks_the_sink_for_a_fit_resize_to_320(eager_and_fast):
    eager, _ = eager_and_fast
    spec = eager.input_spec
    assert (spec.width, spec.height, spec.resize) == (320, 320, "fit")
    assert ICNetSegmentation.KEY == "icnet-resnet18"


def test_random_model_is_seeded():
    a, b, c = (ICNetSegmentation.random(seed=s, fast=False) for s in (1, 1, 2))
    assert torch.equal(a.network.conv_cls.weight, b.network.conv_cls.weight)
    assert not torch.equal(a.network.conv_cls.weight, c.network.conv_cls.weight)
