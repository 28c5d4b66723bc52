"""The replicas the sink knows: each one's credit and expiry, and which one gets the next frame.

ZeroMQ guide names (ppqueue): `ready` adds or refreshes a replica, `expired` lists the silent ones,
`next` picks a free one. The pool is only changed on the dispatcher's I/O thread, under the
mailbox lock so that `Dispatcher.stats` can read it from another thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from shared.geometry import InputSpec

ROUND_TRIP_TOLERANCE = 2.0    # replicas within 2x (+ slack) of the quickest round trip take turns
ROUND_TRIP_SLACK_S = 0.005
ROUND_TRIP_SMOOTHING = 0.2
ROUND_TRIP_HALF_LIFE_S = 1.0  # an idle replica's slow estimate halves its excess every second


@dataclass
class InFlight:
    """A frame sent to a replica and not answered yet."""
    seq: int
    capture_time: float
    width: int
    height: int
    sent_time: float


@dataclass
class Replica:
    """A segmenter replica as the sink sees it: identity, credit and expiry."""
    identity: bytes
    replica_id: str
    model: str
    spec: InputSpec
    capacity: int
    expiry: float
    lifetime_s: float                # silence allowed before the replica counts as dead
    in_flight: dict[int, InFlight] = field(default_factory=dict)
    masks: int = 0
    last_sent: float = 0.0
    round_trip_s: float = 0.0        # running average, frame sent -> mask back (0: untried, try it)
    leaving: bool = False            # said goodbye or draining: finish its work, send no more
    device: str = "cpu"              # where it computes, from its hello ("cuda:0 fp16", ...)

    @property
    def credit(self) -> int:
        return 0 if self.leaving else self.capacity - len(self.in_flight)

    @property
    def name(self) -> str:
        return f"{self.replica_id}[{self.identity.hex()[-6:]}]"

    def heard(self, now: float) -> None:
        """Any message from the replica proves it alive for another `lifetime_s`."""
        self.expiry = now + self.lifetime_s

    def record_round_trip(self, rtt_s: float) -> None:
        """Fold one round trip into the running average (the first one is taken as it is)."""
        weight = 1.0 if self.masks == 0 else ROUND_TRIP_SMOOTHING
        self.round_trip_s += (rtt_s - self.round_trip_s) * weight


class ReplicaPool:
    """Live replicas: `ready` adds or refreshes one, `expired` lists the silent, `next` picks a free one."""

    def __init__(self) -> None:
        self._replicas: dict[bytes, Replica] = {}

    def __len__(self) -> int:
        return len(self._replicas)

    def __iter__(self) -> Iterator[Replica]:
        return iter(list(self._replicas.values()))

    def get(self, identity: bytes) -> Replica | None:
        return self._replicas.get(identity)

    def ready(self, replica: Replica) -> None:
        self._replicas[replica.identity] = replica

    def remove(self, identity: bytes) -> Replica | None:
        return self._replicas.pop(identity, None)

    def expired(self, now: float) -> list[Replica]:
        """The replicas silent past their expiry (the caller drops them, counting what they held)."""
        if self.next_expiry() > now:
            return []
        return [r for r in self._replicas.values() if r.expiry <= now]

    def next(self, now: float) -> Replica | None:
        """A replica with free credit: among those about as quick as the quickest, the one idle longest.

        Equal replicas take turns (round robin); one that answers much slower than the others
        (a slow link, an overloaded box) only gets frames while the quick ones are all busy,
        because its masks would arrive late and older than theirs. A slow estimate fades while
        the replica sits idle, so a replica that had one hiccup is tried again soon.
        """
        free = [r for r in self._replicas.values() if r.credit > 0]
        if not free:
            return None
        quickest = min(r.round_trip_s for r in free)
        limit = quickest * ROUND_TRIP_TOLERANCE + ROUND_TRIP_SLACK_S

        def estimate(r: Replica) -> float:
            fade = 0.5 ** ((now - r.last_sent) / ROUND_TRIP_HALF_LIFE_S)
            return quickest + (r.round_trip_s - quickest) * fade

        return min((r for r in free if estimate(r) <= limit), key=lambda r: r.last_sent)

    def next_expiry(self) -> float:
        return min((r.expiry for r in self._replicas.values()), default=float("inf"))
