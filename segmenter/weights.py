"""The weights step: MediaPipe's selfie-segmentation models, fetched once, verified, cached.

The two `.tflite` files (Apache-2.0) ship inside the `mediapipe==0.10.14` wheel on the package
index. `fetch_weights` downloads that wheel with pip (pip shows its progress bar), extracts the
two files, checks their sha256 and moves them into the cache atomically, so an interrupted or
failed run never leaves a half-written file behind. Inference only ever calls `weights_path`,
which reads the cache and never downloads anything.

    python -m segmenter weights                 # fetch into the cache (also: make weights)
    python -m segmenter weights --wheel FILE    # offline: extract from a wheel you copied here
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from shared.cache import CACHE_ENV, cache_dir

logger = logging.getLogger(__name__)

MEDIAPIPE_REQUIREMENT = "mediapipe==0.10.14"
# The same wheel whatever the local Python: the .tflite files inside are platform independent.
PIP_DOWNLOAD_ARGS = ["--no-deps", "--only-binary=:all:", "--python-version", "3.11",
                     "--platform", "manylinux2014_x86_64"]


class WeightsError(RuntimeError):
    """A weights problem the user can fix; the message is one line that says how."""


@dataclass(frozen=True)
class WeightsFile:
    model: str
    member: str   # path inside the mediapipe wheel
    sha256: str

    @property
    def filename(self) -> str:
        return Path(self.member).name


WEIGHTS: dict[str, WeightsFile] = {
    "selfie": WeightsFile(
        "selfie",
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"),
    "selfie-landscape": WeightsFile(
        "selfie-landscape",
        "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
        "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd"),
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_path(model: str, cache: str | os.PathLike | None = None) -> Path:
    """The verified weights file of `model`; raises WeightsError naming the fix if absent or bad."""
    if model not in WEIGHTS:
        raise WeightsError(f"unknown model {model!r}: choose one of {', '.join(WEIGHTS)}")
    spec = WEIGHTS[model]
    path = cache_dir(cache) / spec.filename
    if not path.is_file():
        raise WeightsError(f"weights for {model!r} are not in {path.parent}: run `make weights` "
                           f"(or `python -m segmenter weights`) first")
    if _sha256(path) != spec.sha256:
        raise WeightsError(f"{path} is corrupt (sha256 mismatch): delete it and run `make weights` again")
    return path


# Models built from several weights files (segmenter/model/by_aspect.py); the others use their own.
MODEL_FILES: dict[str, tuple[str, ...]] = {"selfie-auto": ("selfie", "selfie-landscape")}


def model_weights(model: str, cache: str | os.PathLike | None = None) -> list[Path]:
    """The verified weights files `model` loads; raises WeightsError naming the fix like `weights_path`."""
    return [weights_path(name, cache) for name in MODEL_FILES.get(model, (model,))]


def _download_wheel(dest: Path, progress: bool) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", *PIP_DOWNLOAD_ARGS,
           "--dest", str(dest), MEDIAPIPE_REQUIREMENT]
    if not progress:
        cmd.insert(4, "--quiet")
    logger.info("downloading %s from the package index (for its selfie-segmentation weights)",
                MEDIAPIPE_REQUIREMENT)
    result = subprocess.run(cmd, stdout=None if progress else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise WeightsError(f"could not download {MEDIAPIPE_REQUIREMENT} ({last.strip()}): check the "
                           f"network or pip's index settings, or pass --wheel FILE with a copy of the wheel")
    wheels = sorted(dest.glob("mediapipe-*.whl"))
    if not wheels:
        raise WeightsError(f"pip reported success but left no mediapipe wheel in {dest}: "
                           f"pass --wheel FILE with a copy of the wheel")
    return wheels[0]


def _extract(wheel: Path, target_dir: Path) -> list[Path]:
    """Extract and verify every weights file; nothing lands in target_dir unless all are good."""
    staged: list[tuple[Path, Path]] = []
    try:
        try:
            archive = zipfile.ZipFile(wheel)
        except (zipfile.BadZipFile, OSError) as exc:
            raise WeightsError(f"{wheel} is not a readable wheel ({exc}): download it again") from exc
        with archive:
            for spec in WEIGHTS.values():
                fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", dir=target_dir)
                tmp = Path(tmp_name)
                staged.append((tmp, target_dir / spec.filename))
                try:
                    with archive.open(spec.member) as src, os.fdopen(fd, "wb") as dst:
                        for block in iter(lambda: src.read(1 << 20), b""):
                            dst.write(block)
                except KeyError as exc:
                    raise WeightsError(f"{wheel} has no {spec.member}: use the {MEDIAPIPE_REQUIREMENT} wheel") from exc
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise WeightsError(f"{wheel} is corrupt ({exc}): download it again") from exc
                got = _sha256(tmp)
                if got != spec.sha256:
                    raise WeightsError(f"{spec.filename} from {wheel.name} has sha256 {got[:12]}…, expected "
                                       f"{spec.sha256[:12]}…: the wheel is not the genuine {MEDIAPIPE_REQUIREMENT}")
        for tmp, final in staged:
            os.replace(tmp, final)
        return [final for _, final in staged]
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def fetch_weights(cache: str | os.PathLike | None = None, wheel: str | os.PathLike | None = None,
                  progress: bool = True) -> list[Path]:
    """Make sure every weights file is in the cache; download the wheel only if one is missing."""
    target = cache_dir(cache)
    try:
        have = [weights_path(name, target) for name in WEIGHTS]
        logger.info("weights already cached in %s", target)
        return have
    except WeightsError:
        pass
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"cannot create the cache folder {target} ({exc.strerror}): "
                           f"pass --cache-dir or set {CACHE_ENV} to a writable folder") from exc
    if wheel is not None:
        wheel = Path(wheel)
        if not wheel.is_file():
            raise WeightsError(f"--wheel {wheel} does not exist: give the path of a downloaded "
                               f"{MEDIAPIPE_REQUIREMENT} wheel")
        paths = _extract(wheel, target)
    else:
        with tempfile.TemporaryDirectory(prefix="holocam-wheel-") as tmp:
            paths = _extract(_download_wheel(Path(tmp), progress), target)
    for path in paths:
        logger.info("verified %s", path)
    return paths
