"""Where a pair's similarity peaks, per head: (x, y) in original-image pixels and t in seconds."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..image import ImageGeometry
from ..result import peak_locations


@dataclass(frozen=True)
class HeadPeak:
    """The largest similarity of one head over the clip's real audio steps and the image's patches."""

    head: str
    x: float  # original-image pixels, patch centre
    y: float
    t: float  # seconds (in the clip, or in the source for stored sound windows)
    value: float


def head_peaks(
    volume: torch.Tensor,
    mask: torch.Tensor | None,
    times: torch.Tensor,
    geometry: ImageGeometry,
    head_names: tuple[str, ...],
) -> list[HeadPeak]:
    """Per head, the maximum of `volume` [K, T, h, w] over real audio steps (`mask` [T]) and space: the step
    where it happens, then that step's map located by `result.peak_locations` (the package's one pixel mapping)."""
    per_step = volume.float().flatten(2).amax(dim=2)  # [K, T]
    if mask is not None and bool(mask.any()):
        per_step = per_step.masked_fill(~mask.to(per_step.device)[None], float("-inf"))
    steps = per_step.argmax(dim=1)  # [K]
    maps = volume[torch.arange(len(head_names)), steps]  # [K, h, w]: each head's map at its own best step
    where = peak_locations(maps, head_names, geometry)
    return [
        HeadPeak(name, where[name]["x"], where[name]["y"], round(float(times[step]), 4), where[name]["value"])
        for name, step in zip(head_names, steps.tolist())
    ]
