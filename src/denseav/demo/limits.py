"""The demo server's limits, in one torch-free module (so `denseav --help` shows them without importing torch).

A public demo must not let one upload tie up the model for an hour or fill the memory: files over a size, sounds
over a duration and videos over a duration are refused (`denseav.demo.checks`, from the file headers).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """The demo's limits (command-line flags change them)."""

    max_audio_seconds: float = 60.0
    max_video_seconds: float = 120.0
    max_file_mb: float = 200.0  # per uploaded file; also handed to Gradio, which refuses larger uploads itself
    max_image_megapixels: float = 40.0

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1_000_000)
