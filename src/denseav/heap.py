"""Handing freed heap memory back to the operating system (glibc's `malloc_trim`) while a long clip is encoded.

glibc serves allocations below its mmap threshold from a heap, and the threshold rises (up to 32 MB) each time a
larger block is freed, so after the first window of a long clip nearly every activation comes from the heap. Freed
heap blocks stay resident: glibc keeps them for reuse and returns only what lies at the top of the heap. Window
after window and block after block, differently sized temporaries land in each other's holes, the heap fragments,
and the resident size ends up well above what is live, by more the more windows a clip has (measured with
benchmarks/memory_trace.py: tens of MB between a 1-minute and a 10-minute clip, besides the waveform copies).
`malloc_trim(0)` also returns the whole free pages inside the heap (glibc >= 2.8 madvises them away), so the
streaming encoder calls it before each transformer block and after each window: the peak stays close to what is live.
A call is a walk over the free lists (well under a millisecond) plus the page faults of re-touching released
pages, small against the ~0.5 s of a full-size block on a 30 s window.

The alternative, a fixed `M_MMAP_THRESHOLD` (mallopt, or MALLOC_MMAP_THRESHOLD_=1048576 in the environment),
flattens the peak as well (measured with the same script) but changes the allocator of the whole host process
for good; a library should not. Users who want it for everything can set the environment variable themselves.

On other C libraries (musl, macOS, Windows) this is a no-op: they lack this behaviour, or this function.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)  # glibc only
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the heap's free pages to the operating system; True if the C library could do so (glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
