"""Progress reporting that suits where stderr goes: a live bar on a terminal, a few plain lines in a log.

A tqdm bar redraws itself with carriage returns; written to a file or a CI log that becomes thousands of
fragments on one line. When stderr is not a terminal, `progress()` prints a complete line at most every
`LOG_INTERVAL` seconds (and at the end) instead.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol

from tqdm import tqdm

LOG_INTERVAL = 30.0  # seconds between lines when stderr is not a terminal


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...
    def close(self) -> None: ...


class LineProgress:
    """Plain-line progress: `desc: 120/500 frame (24%), 3.1 frame/s, ETA 2 min`."""

    def __init__(self, total: int | None, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.count = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self.last >= LOG_INTERVAL:
            self.last = now
            self._print(now)

    def close(self) -> None:
        if self.count:
            self._print(time.monotonic(), done=True)

    def _print(self, now: float, done: bool = False) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.count / elapsed
        parts = [f"{self.desc}: {self.count}" + (f"/{self.total}" if self.total else "") + f" {self.unit}"]
        if self.total and not done:
            parts.append(f"{100 * self.count / self.total:.0f}%")
        parts.append(f"{rate:.3g} {self.unit}/s")
        if done:
            parts.append(f"done in {elapsed:.1f} s")
        elif self.total and rate > 0:
            parts.append(f"ETA {(self.total - self.count) / rate:.0f} s")
        print(", ".join(parts), file=sys.stderr, flush=True)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int | None, desc: str, unit: str = "it", *, enabled: bool = True) -> Progress:
    """A progress reporter with `update(n)` and `close()`."""
    if not enabled:
        return _Silent()
    if sys.stderr.isatty():
        bar: Progress = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
        return bar
    return LineProgress(total, desc, unit)
