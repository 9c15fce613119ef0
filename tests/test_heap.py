"""denseav.heap: freed heap memory handed back to the OS between the windows of a long clip."""

from __future__ import annotations

import platform
import sys

from denseav.heap import release_free_memory


def test_release_free_memory_where_glibc_has_it() -> None:
    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert release_free_memory() is on_glibc
    assert release_free_memory() is on_glibc  # and again: the lookup is cached, the call repeatable
