"""The one step of an evaluation that runs the encoders, behind a small interface.

An evaluation needs each distinct image and each distinct clip encoded once, with the original's evaluation
preprocessing (:mod:`.preprocess`). :class:`FeatureEncoder` is that step as two functions from a list of files to
their features, in order; :class:`LocalEncoder` implements it in this process. A feature store or a
distributed engine (the corpus work) can be plugged in by implementing the same two methods; the evaluation
itself never looks at how features were made.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from ..modeling import AudioFeatures, DenseAV, ImageFeatures
from ..progress import Progress, progress
from .preprocess import load_audio, load_image

__all__ = ["ClipFeatures", "FeatureEncoder", "LocalEncoder"]


@dataclass(frozen=True)
class ClipFeatures:
    """A clip's aligned features (a batch of one, with its step mask) and its real 16 kHz samples in the window."""

    features: AudioFeatures
    samples: int


class FeatureEncoder(Protocol):
    """Features of files, one per file and in the files' order (each a batch of one)."""

    def encode_images(self, paths: Sequence[Path]) -> Iterator[ImageFeatures]: ...

    def encode_clips(self, paths: Sequence[Path]) -> Iterator[ClipFeatures]: ...


class LocalEncoder:
    """Encode in this process, ``batch_size`` files per model call, with an optional progress bar."""

    def __init__(self, model: DenseAV, *, batch_size: int = 8, progress: bool = True) -> None:
        self.model = model
        self.batch_size = batch_size
        self.progress = progress

    def _batches(self, paths: Sequence[Path], what: str) -> Iterator[tuple[Sequence[Path], Progress]]:
        bar = progress(len(paths), f"encoding {what}", what, enabled=self.progress)
        try:
            for start in range(0, len(paths), self.batch_size):
                yield paths[start : start + self.batch_size], bar
        finally:
            bar.close()

    def encode_images(self, paths: Sequence[Path]) -> Iterator[ImageFeatures]:
        for batch, bar in self._batches(paths, "images"):
            pixels = torch.stack([load_image(p).pixels for p in batch])
            with torch.inference_mode():
                feats = self.model.encode_image(pixels)
            bar.update(len(batch))  # before handing items out: a consumer may stop after the last one
            yield from feats.unbind()

    def encode_clips(self, paths: Sequence[Path]) -> Iterator[ClipFeatures]:
        for batch, bar in self._batches(paths, "clips"):
            clips = [load_audio(p) for p in batch]
            waveforms = torch.stack([c.waveform for c in clips])
            masks = torch.stack([c.sample_mask for c in clips])
            with torch.inference_mode():
                feats = self.model.encode_audio(waveforms, sample_mask=masks)
            bar.update(len(batch))
            yield from (ClipFeatures(f, c.length) for f, c in zip(feats.unbind(), clips))
