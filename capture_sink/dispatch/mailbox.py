"""What crosses between the sink's threads and the dispatcher's I/O thread, under one lock.

The capture loop `offer`s the newest prepared frame (a newer one replaces it: counted as
dropped) and waits for masks; the I/O thread `take`s the frame when a replica is free and
`publish`es each mask, dropping one older than the newest applied. Counters live here too so
that both sides count under the same lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

MAX_REPLICA_NAMES = 256       # per-replica counters kept (names come from peers: keep it bounded)
COUNTERS = ("sent", "dropped_busy", "masks_applied", "stale_dropped", "bad_messages", "lost_inflight",
            "timed_out", "unexpected_replies", "refused", "replica_errors", "send_failures", "wrong_size")


@dataclass(frozen=True)
class MaskResult:
    """One applied mask. `mask` is uint8 (h, w) at the size that was sent, and read-only."""
    seq: int
    capture_time: float
    mask: np.ndarray
    replica_id: str
    inference_ms: float
    received_time: float


@dataclass
class Pending:
    """An encoded frame waiting for a free replica."""
    seq: int
    capture_time: float
    width: int
    height: int
    payload: bytes


class Mailbox:
    """The pending frame, the latest mask and the counters, shared by the two sides.

    `lock` also guards the replica pool's structure (see `replicas.ReplicaPool`).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._cond = threading.Condition(self.lock)
        self._pending: Pending | None = None
        self._latest: MaskResult | None = None
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._masks_by_replica: dict[str, int] = {}
        self.closing = False

    # -- counters -----------------------------------------------------------------------------
    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self._counts[name] += n

    def counts(self) -> dict:
        """A copy of the counters plus `masks_by_replica`; call with `lock` held."""
        out = dict(self._counts)
        out["masks_by_replica"] = dict(self._masks_by_replica)
        return out

    # -- the frame, caller -> I/O thread -------------------------------------------------------
    def offer(self, pending: Pending) -> None:
        """Make `pending` the frame to send next, replacing (and counting) one still waiting."""
        with self.lock:
            if self._pending is not None:
                self._counts["dropped_busy"] += 1
            self._pending = pending

    @property
    def has_pending(self) -> bool:
        return self._pending is not None

    def take(self) -> Pending | None:
        with self.lock:
            pending, self._pending = self._pending, None
            return pending

    def put_back(self, pending: Pending) -> None:
        """A send failed: keep the frame for the next replica unless a newer one came meanwhile."""
        with self.lock:
            self._counts["send_failures"] += 1
            if self._pending is None:
                self._pending = pending

    # -- the mask, I/O thread -> caller --------------------------------------------------------
    def publish(self, result: MaskResult) -> bool:
        """Apply `result` unless a mask at least as new is applied (then count it stale); wake waiters."""
        with self._cond:
            names = self._masks_by_replica
            if result.replica_id not in names and len(names) >= MAX_REPLICA_NAMES:
                names.pop(next(iter(names)))
            names[result.replica_id] = names.get(result.replica_id, 0) + 1
            if self._latest is not None and result.seq <= self._latest.seq:
                self._counts["stale_dropped"] += 1
                return False
            self._latest = result
            self._counts["masks_applied"] += 1
            self._cond.notify_all()
            return True

    @property
    def latest(self) -> MaskResult | None:
        return self._latest

    def wait_for(self, seq: int, timeout_s: float) -> MaskResult | None:
        """Block until a mask with seq >= `seq` is applied, `timeout_s` passes or the mailbox closes."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while not self.closing and (self._latest is None or self._latest.seq < seq):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._latest

    def close(self) -> None:
        with self._cond:
            self.closing = True
            self._cond.notify_all()
