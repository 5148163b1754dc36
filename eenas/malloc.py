"""glibc's allocator set to keep freed memory for reuse, because training on a CPU otherwise lives in the kernel.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps it on
free, so each training step faults its large activations in again page by page.  A conv head at mount 1
(activations of 128 x 128 x 32 x 32 floats, 64 MiB) spent 70% of its time in minor page faults: 40 steps took
19.9 s (13.6 s of it system time) against 6.1 s with mmap off and freed memory kept (docs/training.md, "Training
speed").  Trained weights do not change: where a tensor lives does not change what is computed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

# mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# Free memory at the top of the heap beyond this is returned to the OS: enough to keep a training step's
# activations (hundreds of MiB at most), small enough that a finished stage's memory is handed back.
KEEP_BYTES = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and keep up to KEEP_BYTES freed; False where there is no mallopt."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows): their allocators differ, left alone
        return False
    applied = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    log.debug("glibc malloc keeps freed memory: %s", applied)
    return applied
