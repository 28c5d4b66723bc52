"""`python -m segmenter mask`: the full-resolution mask of one real image, and its errors."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "segmenter", "mask", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    # A non-square crop, so a mask at model size or a transposed one would be caught.
    cv2.imwrite(str(path), cv2.cvtColor(skimage.data.astronaut()[:, 40:440], cv2.COLOR_RGB2BGR))
    return path


@pytest.mark.parametrize("model", ["selfie", "selfie-landscape"])
def test_mask_has_image_size_and_finds_the_person(tmp_path, astronaut_png, model):
    out = tmp_path / "mask.png"
    result = _run(str(astronaut_png), "-o", str(out), "--model", model)
    assert result.returncode == 0, result.stderr
    mask = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint8 and mask.shape == (512, 400)
    assert mask[150:250, 150:250].mean() > 200     # the face
    assert mask[20:60, 0:30].mean() < 40            # the gantry at the top left is background
    assert 0.3 < (mask >= 128).mean() < 0.8


def test_composite_takes_person_from_image_and_rest_from_background(tmp_path, astronaut_png):
    background = tmp_path / "bg.png"
    cv2.imwrite(str(background), np.full((100, 100, 3), (255, 0, 255), np.uint8))
    mask_path, comp_path = tmp_path / "m.png", tmp_path / "c.png"
    result = _run(str(astronaut_png), "-o", str(mask_path), "--composite", str(comp_path),
                  "--background", str(background))
    assert result.returncode == 0, result.stderr
    image = cv2.imread(str(astronaut_png))
    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    comp = cv2.imread(str(comp_path))
    person, outside = mask == 255, mask == 0
    assert person.sum() > 1000 and outside.sum() > 1000
    assert np.abs(comp[person].astype(int) - image[person]).max() <= 1
    assert np.abs(comp[outside].astype(int) - (255, 0, 255)).max() <= 1


@pytest.mark.parametrize("args, expected", [
    (["missing.png", "-o", "m.png"], "does not exist"),
    (["{bad}", "-o", "m.png"], "not an image"),
    (["{img}", "-o", "m.jpg"], "lossless"),
    (["{img}", "-o", "m.png", "--model", "icnet-resnet18"], "--weights"),
])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, astronaut_png, args, expected):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    args = [a.format(bad=bad, img=astronaut_png) for a in args]
    args = [str(tmp_path / a) if a.endswith((".png", ".jpg")) and "/" not in a else a for a in args]
    result = _run(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
