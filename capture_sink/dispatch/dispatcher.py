"""`Dispatcher`: the face of the sink's broker, used by the capture loop from its own thread.

It checks its settings in the caller's thread, starts the I/O thread (`broker.Broker`) and
offers frames and reads masks through the `mailbox.Mailbox`; it never blocks on the network.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable

import numpy as np

from shared import protocol
from shared.errors import TransportError
from shared.geometry import InputSpec
from shared.heartbeat import HEARTBEAT_INTERVAL_S, HEARTBEAT_LIVENESS
from shared.keys import CurveKeys
from shared.protocol import FRAME_ENCODINGS
from shared.ratelog import RateLimitedLog
from shared.security import check_links

from .broker import Broker
from .mailbox import Mailbox, MaskResult, Pending

logger = logging.getLogger("capture_sink.dispatch")

REQUEST_TIMEOUT_S = 5.0       # an answer this late will not come: give the frame up, return the credit
ENCODINGS = FRAME_ENCODINGS   # the names the sink's --encoding takes (shared.protocol's list)


class Dispatcher:
    """Sends prepared frames to segmenter replicas and keeps the newest mask.

    Args:
        bind: endpoints where replicas connect (`python -m segmenter serve --connect ...`).
        connect: replicas that bind (`--bind tcp://*:5556` on gpu-box -> tcp://gpu-box:5556).
        curve: the sink's keys (`shared.transport.sink_keys(DIR)`) or None for plain text.
        insecure: allow plain text beyond loopback / the compose network (logs a warning).
        compose_network: the sink runs on the compose network (HOLOCAM_COMPOSE_NETWORK=1).
        heartbeat_interval_s: heartbeat period, both ways.
        heartbeat_liveness: intervals of silence before a replica is dropped (default 0.2 s x 4).
        request_timeout_s: an in-flight frame older than this is given up.
        encoding: "raw" (exact pixels) or "jpeg" (~10x fewer bytes, for slow links).
        jpeg_quality: 1..100 for "jpeg".
        on_mask: called with each applied MaskResult, on the dispatcher's thread; keep it short.
    """

    def __init__(self, *, bind: list[str] | tuple[str, ...] = ("tcp://127.0.0.1:5555",),
                 connect: list[str] | tuple[str, ...] = (), curve: CurveKeys | None = None,
                 insecure: bool = False, compose_network: bool = False,
                 heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S, heartbeat_liveness: int = HEARTBEAT_LIVENESS,
                 request_timeout_s: float = REQUEST_TIMEOUT_S, encoding: str = "raw",
                 jpeg_quality: int = protocol.JPEG_QUALITY,
                 on_mask: Callable[[MaskResult], None] | None = None) -> None:
        if encoding not in ENCODINGS:
            raise TransportError(f"frame encoding {encoding!r}: choose one of {', '.join(ENCODINGS)}")
        if not 1 <= int(jpeg_quality) <= 100:
            raise TransportError(f"JPEG quality {jpeg_quality} is out of range: use 1..100 "
                                 f"(default {protocol.JPEG_QUALITY})")
        if not 0.01 <= heartbeat_interval_s <= 60.0:
            raise TransportError(f"heartbeat interval {heartbeat_interval_s} s is out of range: use 0.01..60")
        if not 1 <= heartbeat_liveness <= 100:
            raise TransportError(f"heartbeat liveness {heartbeat_liveness} is out of range: use 1..100")
        bind, connect = list(bind), list(connect)
        # Endpoint syntax and the plain-text rule fail here, in the caller's thread, not later.
        if not bind and not connect:
            raise TransportError("the sink has no endpoint: give --bind or --segmenter tcp://HOST:PORT")
        check_links(bind=bind, connect=connect, curve=curve, insecure=insecure, compose_network=compose_network)
        self.heartbeat_interval_s = float(heartbeat_interval_s)
        self.heartbeat_liveness = int(heartbeat_liveness)
        self.request_timeout_s = float(request_timeout_s)
        self.encoding = encoding
        self.jpeg_quality = int(jpeg_quality)
        self._mailbox = Mailbox()
        self._warn = RateLimitedLog(logger)
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._broker = Broker(bind=bind, connect=connect, curve=curve, insecure=insecure,
                              compose_network=compose_network, heartbeat_interval_s=self.heartbeat_interval_s,
                              heartbeat_liveness=self.heartbeat_liveness, request_timeout_s=self.request_timeout_s,
                              mailbox=self._mailbox, wake=self._wake_r, on_mask=on_mask)

    def start(self) -> None:
        """Open the socket on the dispatcher's own thread; raises TransportError if that fails."""
        if self._thread is not None:
            raise RuntimeError("Dispatcher.start() called twice")
        self._thread = threading.Thread(target=self._broker.run, name="holocam-dispatch", daemon=True)
        self._thread.start()
        self._broker.ready.wait()
        if self._broker.start_error is not None:
            self._thread.join()
            raise self._broker.start_error

    @property
    def input_spec(self) -> InputSpec | None:
        """The input geometry replicas expect (from the first replica's hello), or None before one."""
        return self._broker.spec

    @property
    def bound_endpoint(self) -> str | None:
        """The last bind endpoint as resolved once started (tcp://127.0.0.1:* shows its real port)."""
        return self._broker.bound

    def submit(self, rgb: np.ndarray, seq: int, capture_time: float) -> bool:
        """Offer a prepared RGB frame; never blocks on the network.

        Args:
            rgb: uint8 (h, w, 3) RGB, prepared for `input_spec` (copied; the caller may reuse it).
            seq: increasing frame number.
            capture_time: time.monotonic() at capture.
        Returns:
            False if no replica is connected or the frame does not fit `input_spec`; True otherwise.
            The frame waits for a free replica; a newer submit replaces it (counted as dropped).
        """
        spec = self._broker.spec
        if self._broker.replica_count == 0 or spec is None:
            return False
        if not _fits(rgb, spec):
            self._mailbox.count("wrong_size")
            self._warn.warning("size", "W: frame %s does not fit the replicas' input %dx%d (%s): prepare it "
                               "with shared.resize.prepare_input(frame, dispatcher.input_spec)",
                               getattr(rgb, "shape", None), spec.width, spec.height, spec.resize)
            return False
        payload = protocol.encode_request(rgb, seq, capture_time, encoding=self.encoding,
                                          jpeg_quality=self.jpeg_quality)
        self._mailbox.offer(Pending(seq, float(capture_time), rgb.shape[1], rgb.shape[0], payload))
        self._wake()
        return True

    def latest(self) -> MaskResult | None:
        """The newest applied mask, or None before the first."""
        return self._mailbox.latest

    def wait_for(self, seq: int, timeout_s: float) -> MaskResult | None:
        """Block until a mask with seq >= `seq` is applied, or `timeout_s` passes; returns latest()."""
        return self._mailbox.wait_for(seq, timeout_s)

    def stats(self) -> dict:
        """Counters and the live replicas.

        `replicas` is their count and `per_replica` their details; `masks_by_replica` counts masks
        received per replica name (applied or stale); `sent`, `dropped_busy` (replaced before a
        replica was free), `masks_applied`, `stale_dropped`, `bad_messages`, `lost_inflight`
        (given up with a dropped replica), `timed_out`, `unexpected_replies`, `refused`, ...
        """
        now = time.monotonic()
        with self._mailbox.lock:
            per_replica = [{"replica_id": r.replica_id, "model": r.model, "device": r.device,
                            "capacity": r.capacity,
                            "in_flight": len(r.in_flight), "credit": r.credit, "masks": r.masks,
                            "leaving": r.leaving, "round_trip_ms": round(r.round_trip_s * 1000, 2),
                            "expires_in_s": round(r.expiry - now, 3)}
                           for r in self._broker.pool]
            out = self._mailbox.counts()
        out["replicas"] = len(per_replica)
        out["per_replica"] = per_replica
        out["input_spec"] = self._broker.spec
        return out

    def close(self) -> None:
        """Stop the I/O thread and close the socket (no goodbye: replicas notice by heartbeat)."""
        self._mailbox.close()
        self._wake()
        if self._thread is not None:
            self._thread.join()
        for sock in (self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> "Dispatcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass   # already awake (buffer full) or closing


def _fits(rgb: np.ndarray, spec: InputSpec) -> bool:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        return False
    return spec.accepts(rgb.shape[1], rgb.shape[0])
