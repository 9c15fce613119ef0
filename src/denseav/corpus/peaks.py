"""Where a pair's similarity peaks, per head: (x, y) in original-image pixels and t in seconds."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..image import ImageGeometry


@dataclass(frozen=True)
class HeadPeak:
    """The largest similarity of one head over the clip's real audio steps and the image's patches."""

    head: str
    x: float  # original-image pixels, patch centre
    y: float
    t: float  # seconds (in the clip, or in the source for stored sound windows)
    value: float


def grid_to_pixel(geometry: ImageGeometry, gy: int, gx: int) -> tuple[float, float]:
    """(x, y) of patch (gy, gx)'s centre in original-image pixels (the resize and the crop undone)."""
    if hasattr(geometry, "grid_to_pixel"):  # the House API's single definition
        x, y = geometry.grid_to_pixel(gy, gx)
        return float(x), float(y)
    (h0, w0), (rh, rw), p = geometry.original_size, geometry.resized_size, geometry.patch_size
    return (gx + 0.5) * p * w0 / rw, (gy + 0.5) * p * h0 / rh


def head_peaks(
    volume: torch.Tensor,
    mask: torch.Tensor | None,
    times: torch.Tensor,
    geometry: ImageGeometry,
    head_names: tuple[str, ...],
) -> list[HeadPeak]:
    """Per head, the maximum of `volume` [K, T, h, w] over real audio steps (`mask` [T]) and space."""
    k, t, h, w = volume.shape
    flat = volume.float().reshape(k, t, h * w)
    if mask is not None and bool(mask.any()):
        flat = flat.masked_fill(~mask.to(flat.device)[None, :, None], float("-inf"))
    peaks = []
    for i, name in enumerate(head_names):
        best = int(torch.argmax(flat[i]))
        step, cell = divmod(best, h * w)
        gy, gx = divmod(cell, w)
        x, y = grid_to_pixel(geometry, gy, gx)
        peaks.append(HeadPeak(name, round(x, 1), round(y, 1), round(float(times[step]), 4), float(flat[i, step, cell])))
    return peaks
