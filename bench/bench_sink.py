"""Sink image stages, ours against the seed's, at 1280x720 and 1920x1080, in one run.

    python -m bench.bench_sink            # >= 100 runs per stage; writes bench/results/sink.json + sink.png
    python -m bench.bench_sink --quick    # 20 runs, for a smoke check

Stages: mask refinement (model mask -> frame alpha), hologram, compositing, output conversion
(BGR -> YUYV and -> I420). The seed's versions are in bench/seed_reference.py (written from the
formulas of Benjamin Elder's "Open Source Virtual Background"). Our YUYV is `YuyvViaI420` below (cv2's direct
COLOR_BGR2YUV_YUYV is as slow as the seed's and is reported beside it). Ours and the seed's run interleaved in the same loop so
both see the same machine load; figures are medians.

Also `refine_variants`: guided filter vs joint bilateral (and the seed's and plain
upsample+blur), cost and edge error on real photos (astronaut, Grace Hopper) composited over
real backgrounds (coffee, rocket, chelsea) with a known matte, the model mask degraded the way a
model errs (coarse shape, 1-pixel offset at model size). The matte's shape comes from the real
selfie model (LiteRT) when its weights are cached, else from an ellipse.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from bench import machine, plots, targets
from bench.frames import photo
from bench.seed_reference import seed_composite, seed_hologram, seed_output, seed_refine
from capture_sink.capture import scale_to_fill
from capture_sink.composite import Compositor
from capture_sink.effects import create_effect
from capture_sink.refine import PRESETS, MaskRefiner, RefineConfig

logger = logging.getLogger(__name__)

RESULTS = Path(__file__).parent / "results"
SIZES = ((1280, 720), (1920, 1080))
MODEL_SIZE = (256, 256)


class YuyvViaI420:
    """BGR -> YUYV in ~1/3 of cv2's direct COLOR_BGR2YUV_YUYV time: OpenCV's fast I420 conversion,
    then each chroma row (U0 V0 U1 V1 ...) serves the two luma rows it was averaged from.
    Luma within 1 of the direct path; chroma is 4:2:0 averaged (mean difference ~0.25).
    A proposal for the v4l2 writer (capture_sink/outputs), measured here."""

    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.i420 = np.empty((height * 3 // 2, width), np.uint8)
        self.uv = np.empty((height // 2, width // 2, 2), np.uint8)
        self.uv_full = np.empty((height, width), np.uint8)
        self.yuyv = np.empty((height, width, 2), np.uint8)

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        w, h = self.w, self.h
        cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420, dst=self.i420)
        u = self.i420[h:h + h // 4].reshape(h // 2, w // 2)
        v = self.i420[h + h // 4:].reshape(h // 2, w // 2)
        cv2.merge([u, v], dst=self.uv)
        cv2.resize(self.uv.reshape(h // 2, w), (w, h), dst=self.uv_full, interpolation=cv2.INTER_NEAREST)
        return cv2.merge([self.i420[:h], self.uv_full], dst=self.yuyv)


# ---- inputs ---------------------------------------------------------------------------------
def _model_mask_fn() -> Callable[[np.ndarray], np.ndarray] | None:
    """The real selfie model through LiteRT (MediaPipe's resize rule), or None without it."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        from segmenter.weights import weights_path
        interpreter = Interpreter(model_path=str(weights_path("selfie")))
    except Exception as exc:  # the bench still runs, on a synthetic mask
        logger.warning("W: selfie model unavailable (%s): using an ellipse mask", exc)
        return None
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def segment(bgr: np.ndarray) -> np.ndarray:
        rgb = cv2.cvtColor(cv2.resize(bgr, MODEL_SIZE, interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
        interpreter.set_tensor(inp, (rgb.astype(np.float32) / 255.0)[None])
        interpreter.invoke()
        return np.rint(interpreter.get_tensor(out)[0, :, :, 0] * 255.0).astype(np.uint8)
    return segment


def _ellipse_mask() -> np.ndarray:
    mask = np.zeros(MODEL_SIZE[::-1], np.uint8)
    cv2.ellipse(mask, (128, 150), (70, 110), 0, 0, 360, 255, -1)
    return cv2.GaussianBlur(mask, (9, 9), 0)


# ---- timing ---------------------------------------------------------------------------------
def _interleaved(ours: Callable[[], object], seed: Callable[[], object], runs: int) -> tuple[float, float]:
    ours(), seed()  # warm-up: allocations, OpenCV dispatch
    t_ours, t_seed = [], []
    for _ in range(runs):
        start = time.perf_counter()
        ours()
        t_ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        seed()
        t_seed.append(time.perf_counter() - start)
    return float(np.median(t_ours) * 1e3), float(np.median(t_seed) * 1e3)


def _timed(fn: Callable[[], object], runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def bench_size(width: int, height: int, mask_small: np.ndarray, runs: int) -> dict:
    frame = scale_to_fill(photo("demo"), width, height)
    background = scale_to_fill(photo("coffee"), width, height)
    refiner = MaskRefiner(PRESETS["default"])
    hologram = create_effect("hologram", seed=0)
    compositor = Compositor()
    alpha = refiner.refine(mask_small, frame).copy()
    fg = hologram.apply(frame).copy()
    out = compositor.composite(fg, background, alpha).copy()
    seed_mask = seed_refine(mask_small, width, height)
    seed_fg = seed_hologram(frame.copy())
    seed_scratch = seed_fg.copy()
    rgb_out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)

    stages: dict[str, dict[str, float]] = {}

    def record(name: str, ours_ms: float, seed_ms: float) -> None:
        stages[name] = {"ours_ms": round(ours_ms, 3), "seed_ms": round(seed_ms, 3),
                        "speedup": round(seed_ms / ours_ms, 2)}

    record("refine", *_interleaved(lambda: refiner.refine(mask_small, frame),
                                   lambda: seed_refine(mask_small, width, height), runs))
    record("hologram", *_interleaved(lambda: hologram.apply(frame),
                                     lambda: seed_hologram(frame.copy()), runs))
    record("composite", *_interleaved(lambda: compositor.composite(fg, background, alpha),
                                      lambda: seed_composite(seed_scratch, background, seed_mask), runs))
    yuyv = np.empty((height, width, 2), np.uint8)
    i420 = np.empty((height * 3 // 2, width), np.uint8)
    to_yuyv = YuyvViaI420(width, height)
    record("output_yuyv", *_interleaved(lambda: to_yuyv(out), lambda: seed_output(out), runs))
    yuyv_direct_ms = _timed(lambda: cv2.cvtColor(out, cv2.COLOR_BGR2YUV_YUYV, dst=yuyv), runs)
    i420_ms = _timed(lambda: cv2.cvtColor(out, cv2.COLOR_BGR2YUV_I420, dst=i420), runs)
    rgb_i420_ms = _timed(lambda: cv2.cvtColor(rgb_out, cv2.COLOR_RGB2YUV_I420, dst=i420), runs)

    # the whole chain, end to end, as the sink runs it
    def ours_chain() -> None:
        a = refiner.refine(mask_small, frame)
        f = hologram.apply(frame)
        o = compositor.composite(f, background, a)
        to_yuyv(o)

    def seed_chain() -> None:
        m = seed_refine(mask_small, width, height)
        f = seed_hologram(frame.copy())
        o = seed_composite(f, background, m)
        seed_output(o)

    chain_ours, chain_seed = _interleaved(ours_chain, seed_chain, runs)
    stage_names = ("refine", "hologram", "composite", "output_yuyv")
    sum_ours = sum(stages[s]["ours_ms"] for s in stage_names)
    sum_seed = sum(stages[s]["seed_ms"] for s in stage_names)
    sum_ours_i420 = sum_ours - stages["output_yuyv"]["ours_ms"] + i420_ms
    return {
        "size": f"{width}x{height}",
        "stages": stages,
        "output_i420_ms": {"bgr": round(i420_ms, 3), "rgb": round(rgb_i420_ms, 3)},
        "output_yuyv_cv2_direct_ms": round(yuyv_direct_ms, 3),
        "sum_ours_ms": round(sum_ours, 3), "sum_seed_ms": round(sum_seed, 3),
        "sum_speedup": round(sum_seed / sum_ours, 2),
        "sum_ours_i420_ms": round(sum_ours_i420, 3),
        "sum_speedup_i420": round(sum_seed / sum_ours_i420, 2),
        "chain_ours_ms": round(chain_ours, 3), "chain_seed_ms": round(chain_seed, 3),
        "chain_speedup": round(chain_seed / chain_ours, 2),
    }


# ---- refinement quality ---------------------------------------------------------------------
def _edge_band(gt: np.ndarray, radius: int) -> np.ndarray:
    edge = cv2.morphologyEx((gt > 127).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    return cv2.distanceTransform(1 - edge, cv2.DIST_L2, 3) <= radius


def _scenes(segment: Callable[[np.ndarray], np.ndarray] | None, width: int, height: int) -> list[dict]:
    """Real person photos over real backgrounds with a known matte; the model mask degraded."""
    scenes = []
    for person in ("astronaut", "hopper"):
        fg = scale_to_fill(photo(person), width, height)
        small = segment(fg) if segment else _ellipse_mask()
        shape = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        gt = cv2.GaussianBlur(np.where(shape >= 128, 255, 0).astype(np.uint8), (3, 3), 0)
        a = gt.astype(np.float32)[..., None] / 255.0
        for bg_name in ("coffee", "rocket", "chelsea"):
            bg = scale_to_fill(photo(bg_name), width, height)
            frame = np.rint(fg * a + bg * (1 - a)).astype(np.uint8)
            at_model = cv2.GaussianBlur(cv2.resize(gt, MODEL_SIZE, interpolation=cv2.INTER_AREA), (5, 5), 1.2)
            coarse = cv2.resize(cv2.resize(gt, (40, 40), interpolation=cv2.INTER_AREA), MODEL_SIZE,
                                interpolation=cv2.INTER_CUBIC)
            for degradation, mask in (("accurate", at_model), ("coarse", coarse),
                                      ("offset", np.roll(at_model, 1, axis=1))):
                scenes.append({"name": f"{person}/{bg_name}/{degradation}", "degradation": degradation,
                               "frame": frame, "gt": gt, "mask": mask})
    return scenes


def refine_variants(runs: int) -> dict:
    width, height = SIZES[0]
    segment = _model_mask_fn()
    scenes = _scenes(segment, width, height)
    band = {id(s["gt"]): _edge_band(s["gt"], 12) for s in scenes}

    def plain(k: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        def run(mask: np.ndarray, frame: np.ndarray) -> np.ndarray:
            return cv2.blur(cv2.resize(mask, (frame.shape[1], frame.shape[0])), (k, k))
        return run

    def seed(mask: np.ndarray, frame: np.ndarray) -> np.ndarray:
        return np.rint(seed_refine(mask, frame.shape[1], frame.shape[0]) * 255).astype(np.uint8)

    no_ema = {"ema_alpha": 1.0}
    variants: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "seed (dilate 10 + blur 30)": seed,
        "upsample + blur 9": plain(9),
        "threshold only": MaskRefiner(PRESETS["default"].replace(edge="off", **no_ema)).refine,
        "guided (default)": MaskRefiner(PRESETS["default"].replace(**no_ema)).refine,
        "guided, full-res coefficients": MaskRefiner(PRESETS["default"].replace(edge_subsample=1, **no_ema)).refine,
        "bilateral r12": MaskRefiner(RefineConfig(edge="bilateral", **no_ema)).refine,
        "bilateral r6, full-res": MaskRefiner(RefineConfig(edge="bilateral", edge_radius=6, edge_subsample=1,
                                                           **no_ema)).refine,
    }
    results: dict[str, dict] = {}
    outputs: dict[str, np.ndarray] = {}
    for name, refine in variants.items():
        errors: dict[str, list[float]] = {"accurate": [], "coarse": [], "offset": []}
        halos: list[float] = []
        for scene in scenes:
            alpha = refine(scene["mask"], scene["frame"])
            b, gt = band[id(scene["gt"])], scene["gt"]
            err = np.abs(alpha.astype(np.int16) - gt.astype(np.int16))[b]
            errors[scene["degradation"]].append(float(err.mean()))
            halos.append(float(alpha[b & (gt < 128)].mean()))
            if scene["name"] == "astronaut/coffee/coarse":
                outputs[name] = alpha.copy()
        first = scenes[0]
        cost = _timed(lambda: refine(first["mask"], first["frame"]), max(10, runs // 4))
        results[name] = {"ms_720p": round(cost, 3),
                         **{f"edge_mae_{k}": round(float(np.mean(v)), 2) for k, v in errors.items()},
                         "halo_mean_alpha_outside": round(float(np.mean(halos)), 2)}
    results["_note"] = ("edge_mae: mean |alpha - true matte| (0..255) within 12 px of the true edge; "
                        "halo: mean alpha on background pixels within 12 px (lower is better); "
                        f"matte shape from {'the selfie model' if segment else 'an ellipse'}")
    _save_refine_picture(scenes, outputs)
    return results


def _save_refine_picture(scenes: list[dict], outputs: dict[str, np.ndarray]) -> None:
    """Crops of the astronaut's head over coffee, composited on green, one per variant."""
    scene = next(s for s in scenes if s["name"] == "astronaut/coffee/coarse")
    frame = scene["frame"]
    y0, y1, x0, x1 = 0, 360, 380, 900
    tiles = []
    green = np.zeros_like(frame)
    green[:] = (0, 255, 0)
    for name, alpha in [("true matte", scene["gt"])] + list(outputs.items()):
        a = alpha.astype(np.float32)[..., None] / 255.0
        comp = np.rint(frame * a + green * (1 - a)).astype(np.uint8)[y0:y1, x0:x1].copy()
        cv2.putText(comp, name, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(comp, name, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(comp)
    while len(tiles) % 2:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.vstack([np.hstack(tiles[i:i + 2]) for i in range(0, len(tiles), 2)])
    cv2.imwrite(str(RESULTS / "refine_compare.png"), grid)


# ---- report ---------------------------------------------------------------------------------
def _plot(result: dict, path: Path) -> None:
    plt = plots.pyplot()

    sizes = result["sizes"]
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4.2))
    for ax, entry in zip(np.atleast_1d(axes), sizes):
        names = list(entry["stages"])
        x = np.arange(len(names))
        ax.bar(x - 0.2, [entry["stages"][n]["seed_ms"] for n in names], 0.4, label="seed", color="#b0b0b0")
        ax.bar(x + 0.2, [entry["stages"][n]["ours_ms"] for n in names], 0.4, label="holocam", color="#1f77b4")
        ax.set_xticks(x, names)
        ax.set_ylabel("median ms per frame")
        ax.set_title(f"{entry['size']}: sink stages {entry['sum_speedup']}x faster "
                     f"(chain {entry['chain_speedup']}x)")
        ax.legend()
    plots.save(fig, path, dpi=110)


def run(quick: bool = False) -> dict:
    """Run the benchmark, write bench/results/sink.json + sink.png, return the results."""
    runs = 20 if quick else 100
    RESULTS.mkdir(parents=True, exist_ok=True)
    segment = _model_mask_fn()
    mask_small = segment(scale_to_fill(photo("demo"), *SIZES[0])) if segment else _ellipse_mask()
    np.random.seed(0)  # the seed's hologram draws from NumPy's global generator
    result = {
        "machine": machine.describe(),
        "runs_per_stage": runs,
        "opencv_threads": cv2.getNumThreads(),
        "sizes": [bench_size(w, h, mask_small, runs) for w, h in SIZES],
        "refine_variants": refine_variants(runs),
        "target_speedup": targets.SINK_SPEEDUP_VS_SEED,
    }
    (RESULTS / "sink.json").write_text(json.dumps(result, indent=2))
    _plot(result, RESULTS / "sink.png")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 runs per stage instead of 100")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = run(quick=args.quick)
    for entry in result["sizes"]:
        print(f"{entry['size']}:")
        for name, stage in entry["stages"].items():
            print(f"  {name:12s} ours {stage['ours_ms']:7.3f} ms   seed {stage['seed_ms']:7.3f} ms   "
                  f"x{stage['speedup']}")
        print(f"  output_i420  ours {entry['output_i420_ms']['bgr']:7.3f} ms (from BGR); "
              f"YUYV by cv2 directly {entry['output_yuyv_cv2_direct_ms']:.3f} ms")
        print(f"  sink stages  ours {entry['sum_ours_ms']:.2f} ms   seed {entry['sum_seed_ms']:.2f} ms   "
              f"speedup x{entry['sum_speedup']} (x{entry['sum_speedup_i420']} writing I420)   "
              f"chain x{entry['chain_speedup']}   target x{result['target_speedup']}")
    print("refinement variants (720p):")
    for name, row in result["refine_variants"].items():
        if not name.startswith("_"):
            print(f"  {name:32s} {row}")
    print(f"wrote {RESULTS / 'sink.json'}, {RESULTS / 'sink.png'}, {RESULTS / 'refine_compare.png'}")


if __name__ == "__main__":
    main()
