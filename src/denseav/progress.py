"""Progress reporting that suits where stderr goes: a live bar on a terminal, a few plain lines in a log.

A tqdm bar redraws itself with carriage returns; written to a file or a CI log that becomes thousands of
fragments on one line. When the stream is not a terminal, `progress()` prints a complete line at most every
`LOG_INTERVAL` seconds (and one at the end) instead.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

from tqdm import tqdm

LOG_INTERVAL = 10.0  # seconds between lines when the stream is not a terminal


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...
    def set_postfix_str(self, s: str = "", refresh: bool = True) -> object: ...
    def close(self) -> None: ...


class LineProgress:
    """Plain-line progress: `desc: 120/500 frame (24%), 3.1 frame/s, <postfix>, ETA 2m05s`."""

    def __init__(self, total: int | None, desc: str, unit: str, stream: TextIO) -> None:
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.count = 0
        self.postfix = ""
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self.last >= LOG_INTERVAL:
            self.last = now
            self._print(now)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def close(self) -> None:
        if self.count:
            self._print(time.monotonic(), done=True)

    def _print(self, now: float, done: bool = False) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.count / elapsed
        parts = [f"{self.desc}: {self.count}" + (f"/{self.total}" if self.total else "") + f" {self.unit}"]
        if self.total and not done:
            parts[0] += f" ({100 * self.count / self.total:.0f}%)"
        parts.append(f"{rate:.3g} {self.unit}/s")
        if self.postfix:
            parts.append(self.postfix)
        if done:
            parts.append(f"done in {duration(elapsed)}")
        elif self.total and rate > 0:
            parts.append(f"ETA {duration((self.total - self.count) / rate)}")
        print(", ".join(parts), file=self.stream, flush=True)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def progress(
    total: int | None, desc: str, unit: str = "it", *, enabled: bool = True, stream: TextIO | None = None
) -> Progress:
    """A progress reporter with `update(n)`, `set_postfix_str(text)` and `close()`, on `stream` (stderr)."""
    out = stream or sys.stderr
    if not enabled:
        return _Silent()
    if out.isatty():
        bar: Progress = tqdm(total=total, desc=desc, unit=unit, file=out, dynamic_ncols=True)
        return bar
    return LineProgress(total, desc, unit, out)


def duration(seconds: float) -> str:
    """12s, 3m05s, 2h07m."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s // 60 % 60:02d}m"
