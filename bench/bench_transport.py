"""Transport benchmark: replica scaling, CPU-bound speed-up, and bytes on the wire.

    python bench/bench_transport.py            # full run (~3 min), writes bench/results/transport.{json,png}
    python bench/bench_transport.py --quick    # shorter measurements (~1.5 min)

Every figure is measured in this run with real processes: `python -m segmenter serve` replicas
running the real selfie model, a real `capture_sink.dispatch.Dispatcher` in this process.

1. Latency-bound scaling. Each replica holds every reply back by a fixed delay (--test-delay-ms,
   like a replica behind a slow link); N = 1, 2, 4, 8 replicas. Mask rate vs N x the single-replica
   rate (efficiency), free-running, and again with frames arriving at a 30 fps camera rate (there the
   ideal is min(N x single, 30)). Target: efficiency >= 0.9 up to the camera rate.
2. CPU-bound: 2 replicas x 1 torch thread vs 1 replica x 1 thread, no added delay, on this machine
   (2 cores). Target: >= 1.7x. Alongside, the bare model looping in 1 and 2 processes (no transport)
   shows what this machine allows at that moment; other work on a shared machine lowers both.
3. Bytes on the wire per frame, counted by a TCP proxy between sink and replica (TCP payload, both
   directions, plain and CurveZMQ, raw and JPEG frames), vs a raw 720p frame (1280x720x3 bytes).
   Target: request bytes <= 1/10 of the raw 720p frame.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import machine, plots, targets  # noqa: E402
from bench.harness import SegmenterLauncher, TcpProxy, free_port, photo, wait_for_replicas, wait_until  # noqa: E402
from capture_sink.dispatch import Dispatcher  # noqa: E402
from shared.keys import make_keys, sink_keys  # noqa: E402
from shared.resize import prepare_input  # noqa: E402

RESULTS = REPO / "bench" / "results"
RAW_720P_BYTES = 1280 * 720 * 3
DELAY_MS = 100.0
REPLICA_COUNTS = (1, 2, 4, 8)
CAMERA_FPS = 30.0
SUBMIT_INTERVAL_S = 0.002          # free-running: 500 frames/s offered, a fresh frame is always waiting
CPU_ROUNDS = 4                     # CPU-bound: paired 1-vs-2 rounds back to back; the median ratio counts

_seqs = itertools.count(1)         # frame numbers must keep increasing for a dispatcher's whole life

_COMPUTE_ONLY = """
import sys, time, numpy as np
from segmenter.model import create_model
model = create_model("selfie", threads=1)
frame = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
for _ in range(20):
    model.segment(frame)
print("ready", flush=True)
for line in sys.stdin:                     # each line: seconds to loop for; answers masks/s
    seconds = float(line)
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        model.segment(frame)
        n += 1
    print(n / seconds, flush=True)
"""


def _frame(spec):
    import cv2
    camera = cv2.resize(photo("astronaut"), (1280, 720), interpolation=cv2.INTER_LINEAR)   # a 720p "camera" frame
    return prepare_input(camera, spec, bgr=False)


def _measure(d: Dispatcher, seconds: float, interval_s: float) -> dict:
    """Submit frames every `interval_s` for `seconds` (after a short warm-up); mask rate and counters."""
    frame = _frame(d.input_spec)

    def stream(duration: float) -> None:
        end = time.monotonic() + duration
        next_at = time.monotonic()
        while time.monotonic() < end:
            d.submit(frame, next(_seqs), time.monotonic())
            next_at += interval_s
            time.sleep(max(0.0, next_at - time.monotonic()))

    stream(min(1.0, seconds / 3))                       # warm-up: replicas busy, averages settled
    before, t0 = d.stats(), time.monotonic()
    stream(seconds)
    after, t1 = d.stats(), time.monotonic()
    elapsed = t1 - t0
    applied = after["masks_applied"] - before["masks_applied"]
    stale = after["stale_dropped"] - before["stale_dropped"]
    return {"seconds": round(elapsed, 3), "masks_per_s": round(applied / elapsed, 2),
            "received_per_s": round((applied + stale) / elapsed, 2),
            "frames_submitted_per_s": round((after["sent"] + after["dropped_busy"] - before["sent"]
                                             - before["dropped_busy"]) / elapsed, 1),
            "stale_dropped": stale}


def latency_bound(seconds: float, log_dir: Path) -> dict:
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    launcher = SegmenterLauncher(log_dir)
    free, camera = [], []
    try:
        with Dispatcher(bind=[endpoint]) as d:
            d.start()
            for n in REPLICA_COUNTS:
                while len(launcher.processes) < n:
                    launcher.start(connect=[endpoint], replica_id=f"slow-{len(launcher.processes)}",
                                   extra=["--test-delay-ms", str(DELAY_MS)])
                wait_for_replicas(d, n, launcher.processes)
                free.append({"replicas": n, **_measure(d, seconds, SUBMIT_INTERVAL_S)})
                camera.append({"replicas": n, **_measure(d, seconds, 1.0 / CAMERA_FPS)})
                print(f"latency-bound N={n}: {free[-1]['masks_per_s']:.1f} masks/s free-running, "
                      f"{camera[-1]['masks_per_s']:.1f} at {CAMERA_FPS:.0f} fps", flush=True)
    finally:
        launcher.stop_all()
    single = free[0]["masks_per_s"]
    for point in free:
        point["ideal"] = round(point["replicas"] * single, 2)
        point["efficiency"] = round(point["masks_per_s"] / point["ideal"], 3)
    for point in camera:
        point["ideal"] = round(min(point["replicas"] * single, CAMERA_FPS), 2)
        point["efficiency"] = round(point["masks_per_s"] / point["ideal"], 3)
    return {"delay_ms": DELAY_MS, "camera_fps": CAMERA_FPS, "single_masks_per_s": single,
            "free_running": free, "camera_rate": camera, "target_efficiency": targets.REPLICA_SCALING_EFFICIENCY,
            "min_efficiency": min(p["efficiency"] for p in free + camera)}


class _ComputeOnly:
    """Two processes looping the bare model (no transport): what the machine allows right now."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        self.procs = [subprocess.Popen([sys.executable, "-c", _COMPUTE_ONLY], cwd=REPO, env=env, text=True,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                      for _ in range(2)]
        for proc in self.procs:
            assert proc.stdout.readline().strip() == "ready"

    def rate(self, n: int, seconds: float) -> float:
        for proc in self.procs[:n]:            # started together
            proc.stdin.write(f"{seconds}\n")
            proc.stdin.flush()
        return sum(float(proc.stdout.readline()) for proc in self.procs[:n])

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
            proc.stdin.close()
            proc.stdout.close()


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def cpu_bound(seconds: float, rounds: int, log_dir: Path) -> dict:
    """2 replicas x 1 thread vs 1, in back-to-back pairs; for '1' the second replica is paused (SIGSTOP).

    Other work on a shared machine comes and goes, so each round compares 1 and 2 measured moments
    apart and the median of the per-round ratios is reported, next to the same ratio for the bare
    model looping in 1 and 2 processes without any transport.
    """
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    launcher = SegmenterLauncher(log_dir)
    pairs: list[dict] = []
    try:
        with Dispatcher(bind=[endpoint]) as d:
            d.start()
            first = launcher.start(connect=[endpoint], replica_id="cpu-0", threads=1)
            second = launcher.start(connect=[endpoint], replica_id="cpu-1", threads=1)
            wait_for_replicas(d, 2, launcher.processes)
            for _ in range(rounds):
                wait_for_replicas(d, 2, [first, second])
                two = _measure(d, seconds, SUBMIT_INTERVAL_S)
                second.signal(signal.SIGSTOP)         # uses no CPU; the sink drops it as silent
                wait_until(lambda: d.stats()["replicas"] == 1, 5.0, "the paused replica to be dropped")
                one = _measure(d, seconds, SUBMIT_INTERVAL_S)
                second.signal(signal.SIGCONT)
                pairs.append({"one": one, "two": two})
                print(f"cpu-bound 1 vs 2 replicas: {one['masks_per_s']:.1f} vs {two['masks_per_s']:.1f} masks/s "
                      f"({two['received_per_s']:.1f} received)", flush=True)
    finally:
        launcher.stop_all()
    compute = _ComputeOnly()
    compute_pairs = []
    try:
        for _ in range(rounds):
            compute_pairs.append({"one": compute.rate(1, seconds), "two": compute.rate(2, seconds)})
            print(f"compute only, 1 vs 2 processes: {compute_pairs[-1]['one']:.1f} vs "
                  f"{compute_pairs[-1]['two']:.1f} masks/s", flush=True)
    finally:
        compute.close()
    speedup = _median([p["two"]["masks_per_s"] / p["one"]["masks_per_s"] for p in pairs])
    received = _median([p["two"]["received_per_s"] / p["one"]["received_per_s"] for p in pairs])
    machine = _median([p["two"] / p["one"] for p in compute_pairs])
    return {"cpus": os.cpu_count(), "rounds": pairs, "compute_only_rounds": compute_pairs,
            "one_replica_masks_per_s": round(_median([p["one"]["masks_per_s"] for p in pairs]), 1),
            "two_replicas_masks_per_s": round(_median([p["two"]["masks_per_s"] for p in pairs]), 1),
            "two_replicas_received_per_s": round(_median([p["two"]["received_per_s"] for p in pairs]), 1),
            "compute_only_masks_per_s": {"1": round(_median([p["one"] for p in compute_pairs]), 1),
                                         "2": round(_median([p["two"] for p in compute_pairs]), 1)},
            "speedup": round(speedup, 3), "received_speedup": round(received, 3),
            "compute_only_speedup": round(machine, 3),
            "received_speedup_vs_model_alone": round(received / machine, 3),
            "load_average": os.getloadavg(), "target_speedup": targets.CPU_BOUND_TWO_REPLICA_SPEEDUP}


def wire_bytes(frames: int, log_dir: Path) -> dict:
    keys = Path(tempfile.mkdtemp(prefix="holocam-bench-keys-"))
    make_keys(keys)
    rows = []
    for security in ("plain", "curve"):
        for encoding in ("raw", "jpeg"):
            sink_port = free_port()
            proxy = TcpProxy(sink_port)
            launcher = SegmenterLauncher(log_dir)
            try:
                extra = ["--curve-dir", str(keys)] if security == "curve" else []
                curve = sink_keys(keys) if security == "curve" else None
                with Dispatcher(bind=[f"tcp://127.0.0.1:{sink_port}"], curve=curve, encoding=encoding) as d:
                    d.start()
                    launcher.start(connect=[f"tcp://127.0.0.1:{proxy.port}"], replica_id="wire", extra=extra)
                    wait_for_replicas(d, 1, launcher.processes)
                    frame = _frame(d.input_spec)
                    d.submit(frame, 1, time.monotonic())
                    d.wait_for(1, 5.0)
                    time.sleep(0.3)
                    proxy.reset_counts()
                    started = time.monotonic()
                    for seq in range(2, frames + 2):
                        d.submit(frame, seq, time.monotonic())
                        assert d.wait_for(seq, 5.0).seq == seq
                    elapsed = time.monotonic() - started
                    wait_until(lambda: proxy.bytes_from_target > 0, 2.0, "bytes to be counted")
                    # the replica connects through the proxy, so the proxy's target is the sink
                    from_sink, to_sink = proxy.bytes_from_target, proxy.bytes_to_target
            finally:
                launcher.stop_all()
                proxy.close()
            # heartbeats ride along (a few dozen bytes, 5 per second each way) and are included
            request, reply = from_sink / frames, to_sink / frames
            rows.append({"security": security, "encoding": encoding, "frames": frames,
                         "request_bytes": round(request), "reply_bytes": round(reply),
                         "request_ratio_vs_raw_720p": round(request / RAW_720P_BYTES, 4),
                         "total_ratio_vs_raw_720p": round((request + reply) / RAW_720P_BYTES, 4),
                         "seconds": round(elapsed, 2)})
            print(f"wire {security}/{encoding}: {request:,.0f} B per request, {reply:,.0f} B per mask "
                  f"({request / RAW_720P_BYTES:.3f} of a raw 720p frame)", flush=True)
    return {"raw_720p_bytes": RAW_720P_BYTES, "rows": rows, "target_ratio": targets.REQUEST_BYTES_VS_RAW_720P}


def plot(results: dict, path: Path) -> None:
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    lat = results["latency_bound"]
    ns = [p["replicas"] for p in lat["free_running"]]
    ax = axes[0]
    ax.plot(ns, [p["ideal"] for p in lat["free_running"]], "k--", label="N x single (ideal)")
    ax.plot(ns, [p["masks_per_s"] for p in lat["free_running"]], "o-", label="free-running")
    ax.plot(ns, [p["ideal"] for p in lat["camera_rate"]], ":", color="grey",
            label=f"ideal at {lat['camera_fps']:.0f} fps")
    ax.plot(ns, [p["masks_per_s"] for p in lat["camera_rate"]], "s-", label=f"camera {lat['camera_fps']:.0f} fps")
    for p in lat["free_running"]:
        ax.annotate(f"{p['efficiency']:.2f}", (p["replicas"], p["masks_per_s"]), textcoords="offset points",
                    xytext=(4, -12), fontsize=8)
    ax.set(xlabel="replicas", ylabel="masks / s", xticks=ns,
           title=f"latency-bound replicas (+{lat['delay_ms']:.0f} ms each)")
    ax.legend(fontsize=8)
    cpu = results["cpu_bound"]
    ax = axes[1]
    values = [cpu["one_replica_masks_per_s"], cpu["two_replicas_masks_per_s"], cpu["two_replicas_received_per_s"]]
    ax.bar(["1 replica", "2 replicas\n(applied)", "2 replicas\n(received)"], values,
           color=["tab:grey", "tab:blue", "tab:cyan"])
    ax.axhline(values[0] * cpu["target_speedup"], color="k", ls="--", label=f"target {cpu['target_speedup']}x")
    compute = cpu["compute_only_masks_per_s"]
    ax.plot([0, 1], [compute["1"], compute["2"]], "kx", ms=10, label="model alone, no transport (median)")
    ax.set(ylabel="masks / s", title=f"CPU-bound, {cpu['cpus']} cores: {cpu['speedup']:.2f}x "
                                     f"(model alone {cpu['compute_only_speedup']:.2f}x)")
    ax.legend(fontsize=8)
    wire = results["wire"]
    ax = axes[2]
    labels = ["raw 720p frame"] + [f"{r['security']}/{r['encoding']}" for r in wire["rows"]]
    requests = [wire["raw_720p_bytes"]] + [r["request_bytes"] for r in wire["rows"]]
    replies = [0] + [r["reply_bytes"] for r in wire["rows"]]
    xs = range(len(labels))
    ax.bar(xs, requests, label="frame (sink -> replica)")
    ax.bar(xs, replies, bottom=requests, label="mask (replica -> sink)")
    ax.axhline(wire["raw_720p_bytes"] * wire["target_ratio"], color="k", ls="--", label="1/10 of raw 720p")
    ax.set_yscale("log")
    ax.set_ylim(bottom=1e3)
    ax.set_xticks(list(xs), labels, rotation=20, fontsize=8)
    ax.set(ylabel="bytes per frame (TCP payload)", title="bytes on the wire per frame")
    ax.legend(fontsize=8)
    plots.save(fig, path, dpi=110)


def run(quick: bool = False) -> dict:
    """Run every measurement; write bench/results/transport.json and .png; return the results."""
    seconds = 2.0 if quick else 5.0
    with tempfile.TemporaryDirectory(prefix="holocam-bench-logs-") as logs:
        log_dir = Path(logs)
        results = {
            "benchmark": "transport",
            "quick": quick,
            "machine": machine.describe(kernel_build=machine.loaded_kernel_build()),
            "latency_bound": latency_bound(seconds, log_dir),
            "cpu_bound": cpu_bound(seconds * 0.6, 2 if quick else CPU_ROUNDS, log_dir),
            "wire": wire_bytes(30 if quick else 100, log_dir),
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "transport.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, RESULTS / "transport.png")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter measurements")
    args = parser.parse_args(argv)
    results = run(quick=args.quick)
    lat, cpu, wire = results["latency_bound"], results["cpu_bound"], results["wire"]
    print(f"latency-bound efficiency (min over N and both rates): {lat['min_efficiency']:.2f} "
          f"(target {lat['target_efficiency']})")
    print(f"CPU-bound speed-up, 2 vs 1 replica: {cpu['speedup']:.2f}x applied, {cpu['received_speedup']:.2f}x "
          f"received (target {cpu['target_speedup']}x); the bare model in 2 processes: "
          f"{cpu['compute_only_speedup']:.2f}x at the same time (median of paired rounds)")
    worst = max(r["request_ratio_vs_raw_720p"] for r in wire["rows"])
    print(f"bytes per request vs raw 720p: at most {worst:.3f} (target <= {wire['target_ratio']})")
    print(f"wrote {RESULTS / 'transport.json'} and {RESULTS / 'transport.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
