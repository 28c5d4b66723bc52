"""Helpers for holocam's transport tests: a sink process, a fuzzer, RSS readings, test frames.

Imported by tests/integration/conftest.py (which puts tests/ on sys.path). Real segmenter
processes, the byte-counting proxy and the small tools (free_port, wait_until, photo) live in
bench/harness.py, which the benchmarks use too; they are imported here for the tests.

Run as a script it is a sink process driven by JSON lines on stdin (see `sink_main`):

    python tests/helpers_transport.py sink --bind tcp://127.0.0.1:5555
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import msgpack
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:      # run as a script: the repo's packages must be importable
    sys.path.insert(0, str(REPO))

from bench.harness import (JOIN_TIMEOUT_S, STOP_TIMEOUT_S, SegmenterLauncher, SegmenterProcess,  # noqa: E402,F401
                           TcpProxy, free_port, photo, wait_for_replicas, wait_until)


# -- small utilities -------------------------------------------------------------------------------

def rss_kb(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def prepared(name: str, spec) -> np.ndarray:
    """A test photo prepared for a model's InputSpec, as the sink prepares camera frames."""
    from shared.resize import prepare_input
    return prepare_input(photo(name), spec, bgr=False)


# -- a sink in its own process ------------------------------------------------------------------------

class SinkProcess:
    """A Dispatcher in a subprocess, driven by JSON lines (for RSS readings and kill -9)."""

    def __init__(self, bind: list[str], log_path: Path, extra: list[str] = ()) -> None:
        args = [a for e in bind for a in ("--bind", e)] + list(extra)
        self._log = open(log_path, "ab")
        self.log_path = log_path
        self.popen = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "sink", *args],
                                      cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._log, env={**os.environ, "PYTHONPATH": str(REPO)},
                                      start_new_session=True, text=True, bufsize=1)
        self.ready = self._read()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self) -> dict:
        line = self.popen.stdout.readline()
        if not line:
            raise AssertionError(f"sink process died:\n{self.log_path.read_text()[-3000:]}")
        return json.loads(line)

    def call(self, op: str, **kwargs) -> dict:
        self.popen.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.popen.stdin.flush()
        return self._read()

    def kill(self) -> None:
        """kill -9 the sink."""
        self.popen.kill()
        self.popen.wait(STOP_TIMEOUT_S)
        self._close_files()

    def _close_files(self) -> None:
        for stream in (self.popen.stdin, self.popen.stdout, self._log):
            with contextlib.suppress(OSError):
                stream.close()

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.popen.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.popen.stdin.flush()
            try:
                self.popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(STOP_TIMEOUT_S)
        self._close_files()


def sink_main(argv: list[str]) -> int:
    """The sink process: prints {"ready", "endpoint"}, then answers one JSON line per command.

    Commands: {"op": "wait_replicas", "n"}, {"op": "segment", "image", "seq"} -> the mask (base64),
    {"op": "stats"}, {"op": "rss"}, {"op": "quit"}.
    """
    import logging
    from capture_sink.dispatch import Dispatcher
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", action="append", default=[])
    parser.add_argument("--connect", action="append", default=[])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    frames: dict[str, np.ndarray] = {}
    with Dispatcher(bind=args.bind, connect=args.connect) as dispatcher:
        dispatcher.start()
        print(json.dumps({"ready": True, "endpoint": dispatcher.bound_endpoint}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            op = command["op"]
            if op == "quit":
                break
            if op == "wait_replicas":
                try:
                    wait_until(lambda: dispatcher.stats()["replicas"] >= command["n"], JOIN_TIMEOUT_S, "replicas")
                    reply = {"ok": True}
                except AssertionError as exc:
                    reply = {"ok": False, "error": str(exc)}
            elif op == "segment":
                spec = dispatcher.input_spec
                name = command["image"]
                if name not in frames:
                    frames[name] = prepared(name, spec)
                seq = command["seq"]
                sent = dispatcher.submit(frames[name], seq, time.monotonic())
                result = dispatcher.wait_for(seq, command.get("timeout_s", 5.0))
                if not sent or result is None or result.seq != seq:
                    reply = {"ok": False, "sent": sent, "got": None if result is None else result.seq}
                else:
                    reply = {"ok": True, "replica_id": result.replica_id, "shape": list(result.mask.shape),
                             "mask": base64.b64encode(result.mask.tobytes()).decode()}
            elif op == "stats":
                stats = dispatcher.stats()
                stats["input_spec"] = None if stats["input_spec"] is None else list(
                    (stats["input_spec"].width, stats["input_spec"].height, stats["input_spec"].resize))
                reply = stats
            elif op == "rss":
                reply = {"rss_kb": rss_kb(os.getpid())}
            else:
                reply = {"ok": False, "error": f"unknown op {op}"}
            print(json.dumps(reply), flush=True)
    return 0


def decode_mask(reply: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(reply["mask"]), np.uint8).reshape(reply["shape"])


# -- fuzzing -----------------------------------------------------------------------------------------

_ODD_VALUES = [None, True, -1, 0, 2**31, 2**63 - 1, -2**63, 1.5, float("nan"), float("inf"), "", "x" * 300,
               "selfie", b"", b"\x00" * 64, {"a": 1}, 10**6, "fit", "stretch", "raw", "jpeg", "png", 256, 3]


def _mutate_fields(body: dict, rng: random.Random) -> dict:
    body = dict(body)
    choice = rng.random()
    keys = list(body)
    if choice < 0.5:
        body[rng.choice(keys)] = rng.choice(_ODD_VALUES)
    elif choice < 0.65:
        del body[rng.choice(keys)]
    elif choice < 0.8:
        body[rng.choice(["extra", "v2", "kind_", "data"])] = rng.choice(_ODD_VALUES)
    elif choice < 0.9:
        body["v"] = rng.choice([0, 2, 255, "1", 1.0])
    else:   # dimensions that contradict the data
        for key in ("width", "height"):
            if key in body:
                body[key] = rng.choice([1, 2, 255, 257, 1024, 1025, 65535])
    return body


def fuzz_messages(templates: list[bytes], count: int, seed: int = 1) -> Iterator[list[bytes]]:
    """`count` hostile messages (each a list of frames): random bytes, byte flips, truncations,
    extensions, field mutations of the valid `templates`, and multi-frame messages.
    Every message is small enough for the socket's MAXMSGSIZE (oversize is tested separately).
    """
    rng = random.Random(seed)
    bodies = [msgpack.unpackb(t, raw=False) for t in templates]
    for _ in range(count):
        kind = rng.random()
        if kind < 0.15:
            parts = [rng.randbytes(rng.choice([0, 1, 2, 8, 64, 512, 4096]))]
        elif kind < 0.35:
            data = bytearray(rng.choice(templates))
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            parts = [bytes(data)]
        elif kind < 0.5:
            data = rng.choice(templates)
            parts = [data[:rng.randrange(len(data))]]
        elif kind < 0.55:
            parts = [rng.choice(templates) + rng.randbytes(rng.randint(1, 64))]
        elif kind < 0.9:
            body = _mutate_fields(rng.choice(bodies), rng)
            parts = [msgpack.packb(body, use_bin_type=True)]
        else:
            parts = [rng.choice(templates) for _ in range(rng.randint(2, 4))]
        yield parts


def send_all(sock, parts: list[bytes], identity: bytes | None = None, timeout_s: float = 5.0) -> None:
    """Send one multi-part message, waiting out a full queue (the fuzzer must not lose messages)."""
    import zmq
    frames = ([identity] if identity is not None else []) + parts
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
            return
        except zmq.Again:
            if time.monotonic() > deadline:
                raise AssertionError("the peer stopped reading: its queue stayed full")
            time.sleep(0.001)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "sink":
        sys.exit(sink_main(sys.argv[2:]))
    print(__doc__)
    sys.exit(2)
