"""When the sink runs the effect: after the mask (least contention) or while the segmenter infers.

On a 2-core machine the effect running beside the inference makes three busy threads (frame loop,
capture decode, inference) share two cores, and the inference waits for one (measured in
docs/sink-performance.md). So the effect runs after the mask, unless the frame's work done one
step after the other would no longer fit the frame period (1080p hologram on a slow CPU): then
overlapping keeps the output rate, which matters more than the inference's wall time.
"""

from __future__ import annotations

SERIAL_SHARE_OF_PERIOD = 0.8     # overlap once the serial frame would take over 80% of a period
FRAME_STAGES = ("prepare", "refine", "effect", "background", "composite")


def overlap_effect(stage_ms: dict[str, float], inference_ms: float | None, fps: float) -> bool:
    """True when the effect should run while the segmenter works on the frame.

    Args:
        stage_ms: the sink's running stage averages (SinkStats.stage_ms), in ms.
        inference_ms: the newest mask's inference time, or None before the first.
        fps: the source's frame rate.
    """
    if inference_ms is None or fps <= 0:
        return False
    serial_ms = inference_ms + sum(stage_ms.get(name, 0.0) for name in FRAME_STAGES)
    return serial_ms > SERIAL_SHARE_OF_PERIOD * 1000.0 / fps
