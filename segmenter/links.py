"""A replica's links to its sinks: which sinks, how they are secured, and each session's state.

`check_sinks` checks the endpoints and the plain-text rule once, at start-up; the `Sinks` it
returns is what the worker is built from. `Link` is the worker's state for one sink.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from shared import protocol
from shared.errors import TransportError
from shared.heartbeat import HEARTBEAT_INTERVAL_S, HEARTBEAT_LIVENESS, peer_lifetime
from shared.keys import CurveKeys
from shared.security import check_links
from shared.transport import ReplicaSocket

DEFAULT_CAPACITY = 1           # lowest latency; 2 hides transfer time on a slow link
MAX_CAPACITY = protocol.MAX_CAPACITY
DEFAULT_CONNECT = "tcp://127.0.0.1:5555"
RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 2.0


def check_capacity(capacity: int) -> None:
    """Frames in flight per sink must be 1..MAX_CAPACITY; raises TransportError naming the range."""
    if not 1 <= capacity <= MAX_CAPACITY:
        raise TransportError(f"--capacity {capacity} is out of range: use 1..{MAX_CAPACITY} "
                             f"(default {DEFAULT_CAPACITY})")


@dataclass(frozen=True)
class Sinks:
    """The sinks a replica serves and how its links are secured, already held to the plain-text
    rule: only `check_sinks` builds one, so holding one means the check has passed."""
    connect: tuple[str, ...]
    bind: tuple[str, ...]
    curve: CurveKeys | None
    insecure: bool
    compose_network: bool


def check_sinks(connect: Sequence[str] = (), bind: Sequence[str] = (), *, curve: CurveKeys | None = None,
                insecure: bool = False, compose_network: bool = False) -> Sinks:
    """Check the endpoints' syntax and the plain-text rule (shared.security); TransportError if not.

    Args:
        connect: sink endpoints to connect to.
        bind: endpoints to bind, for sinks that connect to us.
        curve: this replica's keys (`shared.keys.replica_keys`) or None for plain text.
        insecure / compose_network: the plain-text rule (see shared.security).
    """
    if not connect and not bind:
        raise TransportError(f"no sink to serve: give --connect {DEFAULT_CONNECT} or --bind tcp://*:5556")
    check_links(connect=connect, bind=bind, curve=curve, insecure=insecure, compose_network=compose_network)
    return Sinks(tuple(connect), tuple(bind), curve, insecure, compose_network)


@dataclass
class Link:
    """This replica's session with one sink over one endpoint."""
    endpoint: str
    mode: str                              # "connect" | "bind"
    sock: ReplicaSocket | None = None
    registered: bool = False               # the sink has answered since our last (re)connect
    generation: int = 0                    # bumps on reconnect: results for an older session are dropped
    last_heard: float = 0.0
    peer_lifetime_s: float = peer_lifetime(HEARTBEAT_INTERVAL_S, HEARTBEAT_LIVENESS)
    next_beat: float = 0.0
    reconnect_at: float | None = None
    backoff_s: float = RECONNECT_MIN_S
    refused_until: float = 0.0
    in_flight: set[int] = field(default_factory=set)
