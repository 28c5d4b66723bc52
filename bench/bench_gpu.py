"""GPU segmenter speed: ms per mask and masks/s of one replica at batch 1 and 4, fp32 and fp16.

    python bench/bench_gpu.py                 # CUDA; writes bench/results/gpu.json + gpu.png
    python bench/bench_gpu.py --quick         # fewer passes (a smoke run)
    python bench/bench_gpu.py --device cpu    # the same device path on the CPU (checks the script)

Each case is what a replica does per pass (`segmenter.device.DeviceSelfie.segment_batch`): uint8
RGB frames at model size to the device, the model, uint8 masks back to the host; the copy back
makes every pass finish on the GPU before the clock stops. Without a GPU the run writes
{"skipped": reason} and exits 0, so `python -m bench` records the reason and goes on.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench" / "results"
BATCHES = (1, 4)
MODELS = ("selfie", "selfie-landscape")

logger = logging.getLogger(__name__)


def skip_reason(device_text: str) -> str | None:
    """Why this machine cannot run the GPU benchmark on `device_text`, or None."""
    from segmenter.device import DeviceError, resolve_device

    try:
        device = resolve_device(device_text)
    except DeviceError as exc:
        return str(exc)
    if device_text == "cuda" and device.type != "cuda":
        return "no CUDA device"
    return None


def measure(model, batch: int, passes: int) -> dict:
    from segmenter.device import check_images

    frames = (check_images(model.input_spec) * batch)[:batch]
    for _ in range(5):
        model.segment_batch(frames)   # warm-up: allocator, cuDNN algorithm choice
    times = []
    for _ in range(passes):
        started = time.perf_counter()
        model.segment_batch(frames)
        times.append((time.perf_counter() - started) * 1000.0)
    pass_ms = statistics.median(times)
    return {"batch": batch, "pass_ms": round(pass_ms, 3), "ms_per_mask": round(pass_ms / batch, 3),
            "masks_per_s": round(1000.0 * batch / pass_ms, 1),
            "pass_ms_p95": round(sorted(times)[int(0.95 * (len(times) - 1))], 3)}


def run(quick: bool = False, device_text: str = "cuda") -> dict:
    import torch

    from segmenter.device import load_device_model, resolve_device

    RESULTS.mkdir(parents=True, exist_ok=True)
    reason = skip_reason(device_text)
    if reason is not None:
        result = {"skipped": reason, "device": device_text}
        print(f"gpu: skipped: {reason}")
        (RESULTS / "gpu.json").write_text(json.dumps(result, indent=2) + "\n")
        return result
    device = resolve_device(device_text)
    passes = 20 if quick else 200
    cases = []
    for name in MODELS:
        for precision in ("fp32", "fp16"):
            model = load_device_model(name, device, precision=precision)
            for batch in BATCHES:
                case = {"model": name, "precision": precision, "device": model.device_name,
                        **measure(model, batch, passes)}
                print(f"gpu: {name} {precision} batch {batch}: {case['ms_per_mask']} ms/mask, "
                      f"{case['masks_per_s']} masks/s")
                cases.append(case)
    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {"device": str(device), "gpu": gpu_name, "torch": torch.__version__, "quick": quick,
              "passes": passes, "cases": cases}
    (RESULTS / "gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, RESULTS / "gpu.png")
    return result


def plot(result: dict, path: Path) -> None:
    from bench import plots
    plt = plots.pyplot()

    cases = result["cases"]
    labels = [f"{c['model']}\n{c['precision']} b{c['batch']}" for c in cases]
    fig, ax = plt.subplots(figsize=(max(6, len(cases) * 0.9), 4))
    ax.bar(range(len(cases)), [c["masks_per_s"] for c in cases], color="#3b7dd8")
    ax.set_xticks(range(len(cases)), labels, fontsize=7)
    ax.set_ylabel("masks/s per replica")
    ax.set_title(f"segmenter on {result['gpu']} (torch {result['torch']})")
    plots.save(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (checks the script here)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    run(quick=args.quick, device_text=args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
