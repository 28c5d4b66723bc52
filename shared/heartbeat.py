"""Application heartbeats between a sink and its segmenters (ZeroMQ guide: Paranoid Pirate).

Both sides send a holocam heartbeat every HEARTBEAT_INTERVAL_S and count a peer as gone after
HEARTBEAT_LIVENESS missed beats: 0.2 s x 4 = 0.8 s, so a dead replica is dropped within a second.
`peer_lifetime` is the one expiry rule both the sink (capture_sink.dispatch) and a segmenter
(segmenter.worker) apply.
"""

from __future__ import annotations

HEARTBEAT_INTERVAL_S = 0.2
HEARTBEAT_LIVENESS = 4            # missed intervals before a peer counts as dead


def peer_lifetime(interval_s: float, liveness: int, peer_interval_ms: float = 0.0) -> float:
    """Seconds of silence allowed before a peer counts as gone.

    Args:
        interval_s: our own heartbeat period.
        liveness: missed beats allowed.
        peer_interval_ms: the period the peer announced (hello or heartbeat); 0 when not known yet.
    A peer that heartbeats slower than we do gets the same number of missed beats of its own period,
    so a slow but healthy peer is never dropped between two of its beats.
    """
    return liveness * max(interval_s, peer_interval_ms / 1000.0)
