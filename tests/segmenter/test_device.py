"""`--device`: the GPU path's model code runs here on the CPU, against the CPU model; CUDA fails in one line.

There is no GPU on the test machine: CUDA itself is exercised only where one exists (bench/bench_gpu.py).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from segmenter.device import (DeviceError, check_images, half_keeps_parity, load_device_model,
                              mask_iou, parse_device, resolve_device)
from segmenter.model import ModelError, create_model

ROOT = Path(__file__).resolve().parents[2]
NO_CUDA = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def cpu_model():
    return create_model("selfie", threads=1)


@pytest.fixture(scope="module")
def device_model():
    return load_device_model("selfie", torch.device("cpu"))


@pytest.fixture(scope="module")
def photos(device_model):
    images = check_images(device_model.input_spec)
    assert len(images) >= 3
    return images


@pytest.mark.parametrize("text", ["gpu", "cpu:1", "cuda:x", "cuda:-1", ""])
def test_bad_device_names_are_one_line_naming_the_choices(text):
    with pytest.raises(DeviceError) as raised:
        parse_device(text)
    assert "use auto, cpu, cuda or cuda:N" in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a GPU")
def test_auto_picks_the_cpu_without_a_gpu():
    assert resolve_device("auto").type == "cpu"


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a GPU")
def test_serve_on_cuda_without_one_fails_in_one_line_naming_the_fix():
    done = subprocess.run([sys.executable, "-m", "segmenter", "serve", "--device", "cuda", "--connect",
                           "tcp://127.0.0.1:1"], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: --device cuda: ")
    if torch.version.cuda is None:
        assert "CPU-only build" in line and "download.pytorch.org/whl/cu" in line
    else:
        assert "install the NVIDIA driver" in line


def test_device_path_matches_the_cpu_model(cpu_model, device_model, photos):
    assert device_model.device_name == "cpu"
    for photo in photos:
        ours, reference = device_model.segment(photo), cpu_model.segment(photo)
        assert mask_iou(ours, reference) >= 0.999
        assert np.abs(ours.astype(int) - reference).max() <= 1
    assert cpu_model.segment(photos[0]).mean() > 40   # the astronaut is really found


def test_a_batch_gives_the_masks_of_single_passes(device_model, photos):
    batch = device_model.segment_batch(photos)
    assert len(batch) == len(photos)
    for mask, photo in zip(batch, photos):
        single = device_model.segment(photo)
        # oneDNN picks other convolution kernels for a batch on some CPUs (AVX-512 here): the
        # float sums round differently, so a few pixels may move by one level, never more.
        assert np.abs(mask.astype(int) - single).max() <= 1
        assert np.count_nonzero(mask != single) <= mask.size // 1000


def test_every_tensor_of_the_net_follows_the_device():
    # The meta device holds no data: any weight left behind on the CPU would make the forward fail.
    from segmenter.model.selfie_net import SelfieNet
    from segmenter.model.tflite_graph import read_tflite
    from segmenter.weights import weights_path

    net = SelfieNet(read_tflite(weights_path("selfie")), fuse=False, kernels=False).to("meta")
    out = net(net.prepare(torch.zeros((2, 256, 256, 3), dtype=torch.uint8, device="meta")))
    assert out.device.type == "meta" and tuple(out.shape) == (2, 1, 256, 256)


def test_fp16_is_chosen_only_with_parity_and_never_by_default_on_the_cpu(device_model, photos):
    assert load_device_model("selfie", torch.device("cpu"), precision="auto").half is False
    half = load_device_model("selfie", torch.device("cpu"), precision="fp16")
    assert half.device_name == "cpu fp16"
    ok, worst = half_keeps_parity(device_model, half, photos)
    assert ok == (worst >= 0.999) and worst > 0.99   # fp16 arithmetic really ran, close to fp32
    assert half_keeps_parity(device_model, half, []) == (False, 0.0)


def test_models_without_a_device_path_name_the_fix():
    with pytest.raises(DeviceError, match="runs on the CPU only here: use --model selfie"):
        load_device_model("icnet-resnet18", torch.device("cpu"))


def test_worker_batches_waiting_frames_and_says_its_device(device_model, photos):
    from bench.harness import free_port, wait_until
    from capture_sink.dispatch import Dispatcher
    from segmenter.worker import Worker

    port = free_port()
    worker = Worker(device_model, connect=[f"tcp://127.0.0.1:{port}"], capacity=4, batch=True,
                    device=device_model.device_name, replica_id="batcher")
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(stop,), daemon=True)
    thread.start()
    masks = []
    try:
        with Dispatcher(bind=[f"tcp://127.0.0.1:{port}"], on_mask=masks.append) as sink:
            sink.start()
            wait_until(lambda: sink.stats()["replicas"] == 1, 30, "the replica's hello")
            assert sink.stats()["per_replica"][0]["device"] == "cpu"
            seq, deadline = 0, time.monotonic() + 30
            while (worker.counts["batched_frames"] < 2 or len(masks) < 10) and time.monotonic() < deadline:
                seq += 1   # faster than one pass: frames wait, and the waiting ones share a pass
                sink.submit(photos[seq % len(photos)], seq, time.monotonic())
                time.sleep(0.002)
    finally:
        stop.set()
        thread.join(10)
    assert worker.counts["batched_frames"] >= 2 and len(masks) >= 10, (worker.counts, len(masks))
    assert worker.counts["failed"] == 0


def test_selfie_auto_on_a_device_batches_each_grid_in_its_own_pass():
    auto = load_device_model("selfie-auto", torch.device("cpu"), precision="fp32")
    square = load_device_model("selfie", torch.device("cpu"), precision="fp32")
    wide = load_device_model("selfie-landscape", torch.device("cpu"), precision="fp32")
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((144, 256, 3), (256, 256, 3), (144, 256, 3))]
    masks = auto.segment_batch(frames)
    assert [m.shape for m in masks] == [f.shape[:2] for f in frames]
    np.testing.assert_array_equal(np.stack([masks[0], masks[2]]), np.stack(wide.segment_batch([frames[0], frames[2]])))
    np.testing.assert_array_equal(masks[1], square.segment(frames[1]))
    assert auto.device_name == square.device_name
    with pytest.raises(ModelError, match="with --weights"):
        load_device_model("selfie-auto", torch.device("cpu"), weights="x.tflite")
