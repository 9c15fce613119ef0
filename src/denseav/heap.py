"""Handing freed heap memory back to the operating system (glibc's `malloc_trim`), between the windows of a long clip.

glibc serves allocations below its mmap threshold from a heap, and the threshold rises (up to 32 MB) each time a
larger block is freed, so after the first window of a long clip nearly every activation comes from the heap. Its
freed blocks stay resident: the process keeps them for reuse and only returns what lies at the top of the heap.
Window after window, the blocks that outlive a window (the reduced features, the cross-fade overlap) land between
the next window's temporaries, the heap fragments, and the resident size crept up by ~10 MB per 30 s window
(measured by benchmarks/memory_trace.py), so that a 10-minute clip peaked well above a 1-minute one. `malloc_trim(0)`
returns every whole free page inside the heap too (glibc >= 2.8 madvises them away), which keeps the resident size
flat. It costs a walk over the free lists (well under a millisecond here) plus re-faulting the pages the next
window touches, against seconds of work per window.

On other C libraries (musl, macOS, Windows) this is a no-op: they do not have this behaviour, or not this function.
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
