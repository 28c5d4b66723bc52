"""Mask quality against a known matte: which selfie model to run on 16:9 and 4:3 frames.

    python bench/bench_matte.py            # bench/results/matte.{json,md,png}

There is no hand-made matte of our test photos, so each scene has one by construction: a person
(astronaut, Grace Hopper) cut out of their own portrait and pasted onto another photo (coffee,
rocket, chelsea) at the left, centre and right, at 1280x720 (16:9) and 960x720 (4:3). The scene's
matte is the pasted cut-out, exact for that image. The cut-out is the general model's own mask of
the portrait (thresholded), so the comparison leans towards the general model, if anywhere.

Each model's mask goes through the sink's default refiner (capture_sink/refine.py), as in the
pipeline; the score is the IoU of alpha >= 128 against the matte and the mean |alpha - matte|.
Models: selfie (general, 256x256), selfie-landscape (256x144) and selfie-auto (the default: the
landscape model for frames of 3:2 or wider, the general one otherwise; segmenter/model/by_aspect.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402
from bench.frames import photo, scale_to_fill  # noqa: E402
from bench.machine import describe  # noqa: E402

MODELS = ("selfie", "selfie-landscape", "selfie-auto")
SIZES = {"16:9": (1280, 720), "4:3": (960, 720)}
PEOPLE = ("astronaut", "hopper")
BACKGROUNDS = ("coffee", "rocket", "chelsea")
PLACES = (0.0, 0.5, 1.0)          # left edge, centre, right edge (fraction of the free width)
PERSON_HEIGHT = 0.9               # the person's picture fills this much of the frame height


def cut_out(model, person: str) -> tuple[np.ndarray, np.ndarray]:
    """(BGR portrait, its matte 0/255) from `model`'s mask of the person's own picture."""
    from shared.resize import mask_to_frame, prepare_input

    picture = photo(person)
    mask = model.segment(prepare_input(picture, model.input_spec, bgr=True))
    h, w = picture.shape[:2]
    return picture, np.where(mask_to_frame(mask, w, h) >= 128, 255, 0).astype(np.uint8)


def pasted_scene(picture: np.ndarray, matte: np.ndarray, background: np.ndarray, width: int, height: int,
                 place: float) -> tuple[np.ndarray, np.ndarray]:
    """(BGR frame, its exact matte): the cut-out person standing on `background` at `place`."""
    scale = PERSON_HEIGHT * height / picture.shape[0]
    pw, ph = max(1, int(picture.shape[1] * scale)), max(1, int(picture.shape[0] * scale))
    pw = min(pw, width)
    person = cv2.resize(picture, (pw, ph), interpolation=cv2.INTER_AREA)
    cut = cv2.resize(matte, (pw, ph), interpolation=cv2.INTER_NEAREST) >= 128
    frame = scale_to_fill(background, width, height).copy()
    truth = np.zeros((height, width), np.uint8)
    x0, y0 = int(round(place * (width - pw))), height - ph
    frame[y0:, x0:x0 + pw][cut] = person[cut]
    truth[y0:, x0:x0 + pw][cut] = 255
    return frame, truth


def scenes(cutter, width: int, height: int):
    """Every (name, frame, matte) of one frame size."""
    backgrounds = {name: photo(name) for name in BACKGROUNDS}
    for person in PEOPLE:
        picture, matte = cut_out(cutter, person)
        for bg_name, bg in backgrounds.items():
            for place in PLACES:
                frame, truth = pasted_scene(picture, matte, bg, width, height, place)
                yield f"{person} on {bg_name} at {place:.1f}", frame, truth


def score(model, frame: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(IoU of alpha >= 128 vs the matte, mean |alpha - matte| in 0..1) through the default refiner."""
    from capture_sink.refine import MaskRefiner
    from shared.resize import prepare_input

    mask = model.segment(prepare_input(frame, model.input_spec, bgr=True))
    alpha = MaskRefiner().refine(mask, frame)
    person, want = alpha >= 128, truth >= 128
    union = np.logical_or(person, want).sum()
    iou = 1.0 if union == 0 else float(np.logical_and(person, want).sum() / union)
    return iou, float(np.abs(alpha.astype(np.int16) - truth).mean() / 255.0)


def run(quick: bool = False) -> dict:
    from segmenter.model import DEFAULT_MODEL, create_model

    cv2.setNumThreads(1)
    models = {name: create_model(name, threads=1) for name in MODELS}
    rows = []
    for aspect, (width, height) in SIZES.items():
        cases = list(scenes(models["selfie"], width, height))
        if quick:
            cases = cases[::3]
        for name, model in models.items():
            scores = [score(model, frame, truth) for _, frame, truth in cases]
            ious = [s[0] for s in scores]
            rows.append({"aspect": aspect, "size": f"{width}x{height}", "model": name,
                         "grid": "x".join(map(str, model.input_spec.input_size(width, height))),
                         "scenes": len(cases), "iou_mean": round(float(np.mean(ious)), 4),
                         "iou_min": round(float(np.min(ious)), 4),
                         "alpha_error_mean": round(float(np.mean([s[1] for s in scores])), 4),
                         "per_scene": {case[0]: round(s[0], 4) for case, s in zip(cases, scores)}})
    results = {"command": "python bench/bench_matte.py" + (" --quick" if quick else ""),
               "what": "IoU of the refined alpha (>= 128) against an exact matte, person pasted on other photos",
               "default_model": DEFAULT_MODEL, "machine": describe(), "rows": rows}
    report.write("matte", results, markdown, _plot)
    return results


def markdown(results: dict) -> str:
    lines = [f"# Mask quality against a known matte (default model: {results['default_model']})", "",
             f"`{results['command']}`; {results['what']} (bench/bench_matte.py says how the scenes are made).", "",
             "| frames | model | model grid | scenes | IoU mean | IoU min | mean abs alpha error |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in results["rows"]:
        lines.append(f"| {r['aspect']} {r['size']} | {r['model']} | {r['grid']} | {r['scenes']} | "
                     f"{r['iou_mean']:.4f} | {r['iou_min']:.4f} | {r['alpha_error_mean']:.4f} |")
    return "\n".join(lines) + "\n"


def _plot(results: dict, path: Path) -> None:
    from bench import plots

    plt = plots.pyplot()
    aspects = list(dict.fromkeys(r["aspect"] for r in results["rows"]))
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(MODELS)
    for i, model in enumerate(MODELS):
        values = [next(r["iou_mean"] for r in results["rows"] if r["aspect"] == a and r["model"] == model)
                  for a in aspects]
        ax.bar([j + (i - (len(MODELS) - 1) / 2) * width for j in range(len(aspects))], values, width, label=model)
    ax.set_xticks(list(range(len(aspects))), [f"{a} frames" for a in aspects])
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("IoU with the known matte (mean)")
    ax.set_title("Selfie models on pasted-person scenes")
    ax.legend(fontsize=8)
    plots.save(fig, path, dpi=110)


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a third of the scenes (a smoke check)")
    args = parser.parse_args()
    results = run(quick=args.quick)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
