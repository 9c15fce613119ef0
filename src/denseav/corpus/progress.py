"""Progress of a long run: a tqdm bar on a terminal, a status line every few seconds otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm.auto import tqdm

LOG_INTERVAL_SECONDS = 10.0


class Progress:
    """Counts sources done (the bar's total, hence the ETA), items encoded, items skipped and errors."""

    def __init__(self, total_sources: int, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total = total_sources
        self.stream = stream or sys.stderr
        self.sources = self.items = self.skipped = self.errors = 0
        self.started = time.perf_counter()
        self._last_log = self.started
        self.enabled = enabled
        interactive = enabled and self.stream.isatty()
        self._bar = tqdm(total=total_sources, unit="src", file=self.stream, dynamic_ncols=True) if interactive else None

    def update(self, *, sources: int = 0, items: int = 0, skipped: int = 0, errors: int = 0) -> None:
        self.sources += sources
        self.items += items
        self.skipped += skipped
        self.errors += errors
        if self._bar is not None:
            self._bar.set_postfix_str(
                f"{self.items} items, {self.rate:.2f} items/s, {self.errors} errors", refresh=False
            )
            self._bar.update(sources)
        elif self.enabled and time.perf_counter() - self._last_log >= LOG_INTERVAL_SECONDS:
            self._last_log = time.perf_counter()
            print(f"denseav index: {self.status()}", file=self.stream, flush=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        return self.items / max(self.elapsed, 1e-9)

    def status(self) -> str:
        eta = ""
        if 0 < self.sources < self.total:
            eta = f", ETA {_duration(self.elapsed / self.sources * (self.total - self.sources))}"
        return (
            f"{self.sources}/{self.total} sources, {self.items} items ({self.rate:.2f} items/s), "
            f"{self.skipped} skipped, {self.errors} errors{eta}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
