"""Still pictures of a grounding: the maps laid over the photo (`overlay`) and a PNG with the time strip.

Big photos are downscaled first, then drawn: the maps are sampled straight onto the display grid and the photo
is reduced plane by plane (Pillow shares the tensor's memory), so drawing costs the size of the picture drawn,
not of the photo. `save_png` draws at most DEFAULT_MAX_SIDE (2048) pixels on the long side.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import InputError, InputTypeError
from ..image import ImageGeometry, ImageInput, maps_to_original, to_rgb_uint8
from ..limits import PICTURE_MAX_SIDE
from ..paths import check_output_path
from ..result import Grounding, HeadSelect, Summary, head_indices
from .colors import DEFAULT_ALPHA, DEFAULT_THRESHOLD, Colour, OverlayStyle, blend, display_range, head_colors
from .legend import draw_legend
from .strip import time_strip

__all__ = [
    "DEFAULT_MAX_SIDE",
    "display_size",
    "draw_maps",
    "grid_maps",
    "overlay",
    "resized_rgb",
    "save_png",
    "source_rgb",
]

# Longest side of a picture save_png draws; bigger photos are downscaled before drawing.
DEFAULT_MAX_SIDE = PICTURE_MAX_SIDE

TimeSelect = float | str


def display_size(
    original: tuple[int, int], *, min_width: int = 1, max_width: int | None = None, max_side: int | None = None
) -> tuple[int, int]:
    """(height, width) to draw an `original` (height, width) picture at, keeping its aspect ratio: the width
    brought into [min_width, max_width], then the whole scaled down so the long side is at most max_side."""
    h0, w0 = original
    width = max(w0, min_width) if max_width is None else min(max(w0, min_width), max_width)
    scale = width / w0
    if max_side is not None:
        scale = min(scale, max_side / max(h0, w0))
    return max(1, round(h0 * scale)), max(1, round(w0 * scale))


def resized_rgb(rgb: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """uint8 [3, H, W] -> uint8 [h, w, 3] (Lanczos), one colour plane at a time: Pillow reads each plane in
    place, so the only large buffer is the picture itself."""
    if tuple(rgb.shape[-2:]) == size:
        return rgb.permute(1, 2, 0).contiguous().numpy()
    h, w = size
    planes = [
        Image.fromarray(rgb[c].contiguous().numpy()).resize((w, h), Image.Resampling.LANCZOS, reducing_gap=2.0)
        for c in range(3)
    ]
    return np.asarray(Image.merge("RGB", planes))


def source_rgb(result: Grounding, image: ImageInput | None) -> torch.Tensor:
    """The picture to draw on: `image` or the one the result carries; the same picture or a reduced copy of it
    (as Pillow's JPEG draft decodes: the same aspect ratio within a pixel)."""
    rgb = to_rgb_uint8(image) if image is not None else result.image
    if rgb is None:
        raise InputError("this Grounding carries no image (it was built without one); pass image=... to draw on")
    h, w = int(rgb.shape[-2]), int(rgb.shape[-1])
    h0, w0 = result.geometry.original_size
    if (h, w) != (h0, w0) and (h > h0 or w > w0 or abs(h / h0 - w / w0) > 1 / min(h, w)):
        raise InputError(
            f"the image is {w}x{h} but the grounding was computed for a {w0}x{h0} image; pass the same image"
        )
    return rgb


def grid_maps(
    result: Grounding, time: TimeSelect | None, step: int | None, smooth: bool, idx: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The maps to show [K', h, w] on the patch grid and their display range [K', 2] (see render.colors)."""
    if step is not None or isinstance(time, (int, float)):
        index = result.step_index(None if isinstance(time, str) else time, step)
        volume = (result.smoothed() if smooth else result.heatmaps)[idx]
        return volume[:, index], display_range(volume)
    if time in ("mean", "max"):
        reduce: Summary = "mean" if time == "mean" else "max"
        maps = result.over_time(reduce, smooth=smooth)[idx]
        return maps, display_range(maps)
    raise InputError(f"time must be 'mean', 'max' or seconds (use step= for an audio step index), got {time!r}")


def draw_maps(
    rgb: np.ndarray,
    grid: torch.Tensor,
    rng: torch.Tensor,
    geometry: ImageGeometry,
    colors: list[Colour],
    style: OverlayStyle,
) -> np.ndarray:
    """Maps on the patch grid [K, h, w] laid over `rgb` [H, W, 3], a picture of the geometry's original image at
    any size: the maps are sampled straight onto its pixels."""
    on_screen = replace(geometry, original_size=(rgb.shape[0], rgb.shape[1]))
    return blend(rgb, style.layer(maps_to_original(grid, on_screen), rng, colors))


def _picture(
    result: Grounding,
    size: tuple[int, int] | None,
    image: ImageInput | None,
    time: TimeSelect,
    step: int | None,
    heads: HeadSelect,
    smooth: bool,
    style: OverlayStyle,
) -> tuple[Image.Image, list[int]]:
    """The overlay at `size` (None: the source picture's size) and the indices of the heads drawn."""
    idx = head_indices(result.head_names, heads)
    grid, rng = grid_maps(result, time, step, smooth, idx)
    source = source_rgb(result, image)
    rgb = resized_rgb(source, size or (int(source.shape[-2]), int(source.shape[-1])))
    colors = [head_colors(result.head_names)[i] for i in idx]
    return Image.fromarray(draw_maps(rgb, grid, rng, result.geometry, colors, style), "RGB"), idx


def _check_side(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputTypeError(f"{name} is a number of pixels (an int), not {value!r}")
    if value < 16:
        raise InputError(f"{name} must be at least 16 pixels, got {value}")


def overlay(
    result: Grounding,
    *,
    time: TimeSelect = "mean",
    step: int | None = None,
    heads: HeadSelect = None,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    smooth: bool = True,
    winner_take_all: bool = True,
    legend: bool = True,
    image: ImageInput | None = None,
    max_side: int | None = None,
) -> Image.Image:
    """Each head's map laid over the image (same size as the picture passed to `ground`).

    time: "mean" (default) or "max" over the clip, or a moment in seconds (the nearest audio step);
        step: an audio step index instead of a time.
    heads: names or indices to show (default all); several heads are shown winner-take-all per pixel.
    alpha: the colour's opacity at a head's maximum; threshold: normalised value below which nothing is drawn.
    smooth: use the demo's 3-tap temporal blur (matters for a single step).
    legend: draw head names in the top-left corner when the image is large enough for it.
    image: draw on this picture instead of `result.image` (the same picture, or a reduced copy of it).
    max_side: draw at most this many pixels on the long side (the photo is downscaled first, so the cost
        follows the drawn size; None: the picture's own size - a 12000 x 12000 photo then costs gigabytes).
    Colours and normalisation: see `denseav.render.colors`.
    """
    size = None
    if max_side is not None:
        _check_side(max_side, "max_side")
        size = display_size(result.geometry.original_size, max_side=max_side)
    style = OverlayStyle(alpha, threshold, winner_take_all)
    picture, idx = _picture(result, size, image, time, step, heads, smooth, style)
    if legend:
        draw_legend(picture, [result.head_names[i] for i in idx], [head_colors(result.head_names)[i] for i in idx])
    return picture


def save_png(
    result: Grounding,
    path: str | os.PathLike[str],
    *,
    time: TimeSelect = "mean",
    step: int | None = None,
    heads: HeadSelect = None,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    smooth: bool = True,
    strip: bool = True,
    min_width: int = 480,
    max_width: int = 1600,
    max_side: int = DEFAULT_MAX_SIDE,
) -> Path:
    """Write the overlay (and, below it, the time strip) as a PNG; returns the path.

    time / step: as in `overlay` (seconds, "mean", "max"; or step= an audio step index).
    Size: the overlay's width is brought into [min_width, max_width] (tiny images stay legible, huge ones
    small), then the whole is scaled down so its long side is at most max_side (default 2048), keeping the
    aspect ratio. The photo is downscaled BEFORE drawing, so a 12000 x 12000 photo costs little more memory
    than its decoded pixels. The head colours are named in the strip's header; without the strip a legend is
    drawn in the picture's top-left corner instead.
    """
    out = check_output_path(path, suffixes=(".png",), what="save_png output")
    for value, name in ((min_width, "min_width"), (max_width, "max_width"), (max_side, "max_side")):
        _check_side(value, name)
    if min_width > max_width:
        raise InputError(f"min_width ({min_width}) is larger than max_width ({max_width})")
    size = display_size(result.geometry.original_size, min_width=min_width, max_width=max_width, max_side=max_side)
    picture, idx = _picture(result, size, None, time, step, heads, smooth, OverlayStyle(alpha, threshold))
    if strip:
        moment = step is not None or not isinstance(time, str)
        marker = (
            float(result.times[result.step_index(None if isinstance(time, str) else time, step)]) if moment else None
        )
        band = time_strip(result, width=max(120, picture.width), heads=heads, marker=marker)
        sheet = Image.new("RGB", (picture.width, picture.height + band.height), (255, 255, 255))
        sheet.paste(picture, (0, 0))
        sheet.paste(band, (0, picture.height))
        picture = sheet
    else:
        # Without the strip, whose header names the colours, a legend in the corner does.
        draw_legend(picture, [result.head_names[i] for i in idx], [head_colors(result.head_names)[i] for i in idx])
    picture.save(out, format="PNG")
    return out
