"""Helpers for holocam's transport tests and benchmarks: real segmenter processes, a sink process,
a fuzzer, RSS readings. Imported by tests/integration/conftest.py (which puts tests/ on sys.path)
and by bench/bench_transport.py.

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
import signal
import socket
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

JOIN_TIMEOUT_S = 60.0        # a replica's python + torch + model start, on a busy 2-core machine
STOP_TIMEOUT_S = 10.0


# -- small utilities -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_until(condition, timeout_s: float, what: str, poll_s: float = 0.01) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.1f} s waiting for {what}")
        time.sleep(poll_s)


def photo(name: str) -> np.ndarray:
    """An RGB uint8 test photo: astronaut, camera, grace_hopper (people); coffee, chelsea, rocket."""
    import skimage.data
    if name == "grace_hopper":
        import matplotlib.cbook
        import cv2
        path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    image = getattr(skimage.data, name)()
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]


def prepared(name: str, spec) -> np.ndarray:
    """A test photo prepared for a model's InputSpec, as the sink prepares camera frames."""
    from shared.resize import prepare_input
    return prepare_input(photo(name), spec, bgr=False)


# -- segmenter processes ------------------------------------------------------------------------------

class SegmenterProcess:
    """`python -m segmenter serve ...` in its own process group, with its output in a log file."""

    def __init__(self, args: list[str], log_path: Path, env: dict | None = None) -> None:
        self.args = args
        self.log_path = log_path
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **(env or {})}
        full_env.setdefault("OMP_NUM_THREADS", "1")
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen([sys.executable, "-m", "segmenter", "serve", *args], cwd=REPO,
                                      stdout=self._log, stderr=subprocess.STDOUT, env=full_env,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def kill(self) -> None:
        """kill -9: no goodbye, no cleanup."""
        self.signal(signal.SIGKILL)
        self.popen.wait(STOP_TIMEOUT_S)
        self._log.close()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)   # a stopped process cannot handle SIGTERM
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(timeout_s)
        if not self._log.closed:
            self._log.close()
        return self.popen.returncode


class SegmenterLauncher:
    """Starts segmenter processes and guarantees they are all stopped (tests' `segmenter_process`)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[SegmenterProcess] = []

    def start(self, *, connect: list[str] = (), bind: list[str] = (), replica_id: str | None = None,
              extra: list[str] = (), env: dict | None = None, model: str = "selfie",
              threads: int = 1) -> SegmenterProcess:
        args = [f"--connect={e}" for e in connect] + [f"--bind={e}" for e in bind]
        args += ["--model", model, "--threads", str(threads)]
        if replica_id:
            args += ["--replica-id", replica_id]
        args += list(extra)
        name = replica_id or f"segmenter-{len(self.processes)}"
        process = SegmenterProcess(args, self.log_dir / f"{name}-{len(self.processes)}.log", env)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:          # all at once: they drain in parallel
            with contextlib.suppress(ProcessLookupError):
                process.signal(signal.SIGCONT)
                process.signal(signal.SIGTERM)
        for process in self.processes:
            process.stop()
        self.processes.clear()


def wait_for_replicas(dispatcher, n: int, processes: list[SegmenterProcess] = (),
                      timeout_s: float = JOIN_TIMEOUT_S) -> None:
    """Wait until `dispatcher` has n replicas; fail early (with its log) if a process died."""
    deadline = time.monotonic() + timeout_s
    while dispatcher.stats()["replicas"] < n:
        for process in processes:
            if not process.alive():
                raise AssertionError(f"segmenter exited with {process.popen.returncode}:\n{process.log()[-3000:]}")
        if time.monotonic() > deadline:
            logs = "\n".join(p.log()[-1500:] for p in processes)
            raise AssertionError(f"only {dispatcher.stats()['replicas']} of {n} replicas joined:\n{logs}")
        time.sleep(0.02)


# -- a TCP proxy that counts bytes and can delay them ----------------------------------------------------

class TcpProxy:
    """Relays 127.0.0.1:port -> 127.0.0.1:target_port, counting bytes each way, optionally late.

    `delay_s` holds every chunk back that long in both directions (a slow link; chunks keep their
    order). `bytes_to_target` / `bytes_from_target` are TCP payload bytes, what the link carries.
    """

    def __init__(self, target_port: int, delay_s: float = 0.0) -> None:
        import threading
        self.target_port = target_port
        self.delay_s = delay_s
        self.bytes_to_target = 0
        self.bytes_from_target = 0
        self._lock = threading.Lock()
        self._closing = False
        self._sockets: list[socket.socket] = []
        self._threads: list = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept_loop)

    def _spawn(self, target, *args) -> None:
        import threading
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, upstream]
            self._pipe(client, upstream, "bytes_to_target")
            self._pipe(upstream, client, "bytes_from_target")

    def _pipe(self, src: socket.socket, dst: socket.socket, counter: str) -> None:
        import queue as queue_module
        chunks: queue_module.Queue = queue_module.Queue()

        def read() -> None:
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                chunks.put((time.monotonic() + self.delay_s, data))
                if not data:
                    return
                with self._lock:
                    setattr(self, counter, getattr(self, counter) + len(data))

        def write() -> None:
            while True:
                due, data = chunks.get()
                if not data:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    dst.sendall(data)
                except OSError:
                    return

        self._spawn(read)
        self._spawn(write)

    def reset_counts(self) -> None:
        with self._lock:
            self.bytes_to_target = self.bytes_from_target = 0

    def close(self) -> None:
        self._closing = True
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(2.0)


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
