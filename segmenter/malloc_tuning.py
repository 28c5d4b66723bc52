"""glibc malloc tuning for inference: keep each frame's activation buffers in the heap.

Process-wide, so it lives beside the models rather than in one of them; `load_selfie` calls it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

logger = logging.getLogger(__name__)

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_malloc_tuned = False


def keep_frame_buffers_in_heap() -> bool:
    """Stop glibc from handing each frame's activation buffers back to the OS.

    By default glibc serves blocks over 128 KB with mmap and unmaps them on free, so every frame
    page-faults megabytes of activations in again, a large share of a frame's time (figures:
    docs/model-performance.md). This is MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ done in
    process, so it also works when the service is started without them. Process-wide and
    idempotent; returns False (and does nothing) on a non-glibc libc or when the user set those
    variables.
    """
    global _malloc_tuned
    if _malloc_tuned:
        return True
    if platform.libc_ver()[0] != "glibc" or "MALLOC_MMAP_THRESHOLD_" in os.environ \
            or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # 64 MB: above any activation of these models; the heap keeps up to 256 MB of freed memory.
    _malloc_tuned = (bool(libc.mallopt(_M_MMAP_THRESHOLD, 64 << 20))
                     and bool(libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)))
    logger.debug("glibc malloc keeps freed frame buffers: %s", _malloc_tuned)
    return _malloc_tuned
