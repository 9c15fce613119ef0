"""The counts of a corpus run (sources, items, skipped, errors), shown through denseav.progress."""

from __future__ import annotations

import time
from typing import TextIO

from ..progress import progress


class Progress:
    """Counts sources done (the bar's total, hence the ETA), items encoded, items skipped and errors."""

    def __init__(
        self, total_sources: int, *, enabled: bool = True, stream: TextIO | None = None, desc: str = "denseav index"
    ) -> None:
        self.total = total_sources
        self.sources = self.items = self.skipped = self.errors = 0
        self.started = time.perf_counter()
        self._bar = progress(total_sources, desc, unit="src", enabled=enabled, stream=stream)

    def update(self, *, sources: int = 0, items: int = 0, skipped: int = 0, errors: int = 0) -> None:
        self.sources += sources
        self.items += items
        self.skipped += skipped
        self.errors += errors
        self._bar.set_postfix_str(self.counts(), refresh=False)
        self._bar.update(sources)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        return self.items / max(self.elapsed, 1e-9)

    def counts(self) -> str:
        return f"{self.items} items ({self.rate:.2f} items/s), {self.skipped} skipped, {self.errors} errors"

    def close(self) -> None:
        self._bar.close()
