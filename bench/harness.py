"""Real holocam pieces in their own processes, for the benchmarks and the tests that measure them.

`SegmenterLauncher` starts `python -m segmenter serve` replicas (the real model) and stops them
all; `TcpProxy` sits on a link to count its bytes or delay them; `wait_for_replicas` waits for a
dispatcher to see its replicas; `free_port`, `wait_until` and `photo` are the small tools around
them. The tests import these from here too (tests/helpers_transport.py), so bench/ needs nothing
from tests/.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

JOIN_TIMEOUT_S = 60.0        # a replica's python + torch + model start, on a busy 2-core machine
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(popen: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM a child, then SIGKILL it if it has not exited within `timeout_s`."""
    popen.terminate()
    try:
        popen.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


def wait_until(condition, timeout_s: float, what: str, poll_s: float = 0.01):
    """Poll `condition` until it returns something true, and return that; AssertionError on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.1f} s waiting for {what}")
        time.sleep(poll_s)


def photo(name: str) -> np.ndarray:
    """An RGB uint8 test photo (`bench.frames.photo`, in the order the models take)."""
    import cv2

    from bench.frames import photo as bgr_photo
    return cv2.cvtColor(bgr_photo(name), cv2.COLOR_BGR2RGB)


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
