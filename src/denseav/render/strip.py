"""The time strip: the clip's waveform above each head's peak similarity over time, on a seconds axis."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..audio import SAMPLE_RATE
from ..errors import InputError
from ..result import Grounding, HeadSelect, head_indices
from .colors import Colour, head_colors
from .legend import Font, font, text_size

__all__ = ["curve_title", "peak_curves", "time_strip"]

_INK, _GREY, _LIGHT = (40, 40, 40), (150, 150, 150), (225, 225, 225)
_TICK_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)


def peak_curves(result: Grounding, heads: HeadSelect = None, *, smooth: bool = False) -> torch.Tensor:
    """[K', T]: per selected head, the largest similarity anywhere in the image at each audio step. Raw by
    default - the numbers `Grounding.to_dict()["max_per_step"]` (and the CLI's --json) give."""
    idx = head_indices(result.head_names, heads)
    maps = (result.smoothed() if smooth else result.heatmaps)[idx]
    return maps.flatten(2).amax(dim=2)


def curve_title(smooth: bool) -> str:
    """What the curve panel plots, in words."""
    return f"peak similarity (max over the image, {'3-step smoothed' if smooth else 'raw'})"


@dataclass(frozen=True)
class _Layout:
    """Pixel positions of the strip's two panels; x grows with seconds, y with the value."""

    width: int
    height: int
    fs: int  # base font size
    left: int
    top: int
    pw: int  # plot width
    wave_h: int
    curve_top: int
    curve_h: int
    duration: float
    lo: float
    hi: float

    @classmethod
    def of(cls, width: int, height: int, duration: float, lo: float, hi: float, label_width: int) -> _Layout:
        fs = _font_size(width)
        left, top, bottom = label_width + fs, fs // 2, fs * 2 + fs // 2
        pw, ph = width - left - fs, height - top - bottom
        wave_h = max(20, int(ph * 0.32))
        gap = max(4, fs // 2)
        header = fs + fs // 2  # a row for the panel title and the head names, so they never cover a curve
        curve_top = top + wave_h + gap + header
        return cls(width, height, fs, left, top, pw, wave_h, curve_top, ph - wave_h - gap - header, duration, lo, hi)

    def x(self, seconds: float) -> float:
        return self.left + self.pw * seconds / self.duration

    def y(self, value: float) -> float:
        return self.curve_top + (self.curve_h - 1) * (1 - (value - self.lo) / (self.hi - self.lo))


def _font_size(width: int) -> int:
    return int(min(22, max(10, round(width / 55))))


def _nice_step(span: float, max_ticks: int) -> float:
    for step in _TICK_STEPS:
        if span / step <= max_ticks:
            return float(step)
    return 3600.0 * math.ceil(span / 3600 / max_ticks)


def _draw_waveform(draw: ImageDraw.ImageDraw, at: _Layout, wave: torch.Tensor | None, small: Font) -> None:
    """The waveform's min/max envelope per pixel column (the model's 16 kHz input)."""
    draw.rectangle([at.left, at.top, at.left + at.pw - 1, at.top + at.wave_h - 1], outline=_LIGHT)
    draw.text((at.left - at.fs // 2, at.top + at.wave_h / 2), "audio", fill=_INK, font=small, anchor="rm")
    if wave is None or not wave.numel():
        return
    w = wave.float().numpy()
    n = len(w)
    cols = max(1, min(at.pw, round(at.pw * (n / SAMPLE_RATE) / at.duration)))
    starts = np.minimum(np.linspace(0, n, cols + 1).astype(np.int64)[:-1], n - 1)
    mins, maxs = np.minimum.reduceat(w, starts), np.maximum.reduceat(w, starts)
    scale = max(float(np.abs(w).max()), 1e-9)
    mid, half = at.top + at.wave_h / 2, at.wave_h / 2 - 1
    for c in range(cols):
        y0, y1 = mid - maxs[c] / scale * half, mid - mins[c] / scale * half
        draw.line([(at.left + c, y0), (at.left + c, max(y1, y0 + 1))], fill=_GREY)


def _draw_curves(
    draw: ImageDraw.ImageDraw, at: _Layout, times: np.ndarray, values: np.ndarray, colors: list[Colour], small: Font
) -> None:
    """One line per head (dots while they stay apart), a dashed zero line, and the value labels."""
    draw.rectangle([at.left, at.curve_top, at.left + at.pw - 1, at.curve_top + at.curve_h - 1], outline=_LIGHT)
    if at.lo < 0 < at.hi:
        y0 = at.y(0.0)
        for dash in range(at.left, at.left + at.pw, 6):
            draw.line([(dash, y0), (min(dash + 2, at.left + at.pw - 1), y0)], fill=_GREY)
    r = max(1, at.fs // 7)
    for k, colour in enumerate(colors):
        pts = [(at.x(float(t)), at.y(float(v))) for t, v in zip(times, values[k])]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=max(1, at.fs // 6), joint="curve")
        if len(pts) <= at.pw / 4:  # dots only while they do not smear into a band
            for x, y in pts:
                draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    label_x = at.left - at.fs // 2
    draw.text((label_x, at.curve_top), f"{at.hi:.3g}", fill=_INK, font=small, anchor="ra")
    draw.text((label_x, at.curve_top + at.curve_h - 1), f"{at.lo:.3g}", fill=_INK, font=small, anchor="rd")


def _draw_header(
    draw: ImageDraw.ImageDraw, at: _Layout, names: list[str], colors: list[Colour], title: str, small: Font
) -> None:
    """The row above the curves: what they are (left), which line is which head (right)."""
    y = at.curve_top - at.fs // 4
    x: float = at.left + at.pw
    for name, colour in reversed(list(zip(names, colors))):
        tw = text_size(small, name)[0]
        draw.rectangle([x - tw - at.fs * 0.9, y - at.fs * 0.75, x - tw - at.fs * 0.3, y - at.fs * 0.15], fill=colour)
        draw.text((x, y), name, fill=_INK, font=small, anchor="rd")
        x -= tw + at.fs * 1.6
    draw.text((at.left, y), title, fill=_GREY, font=small, anchor="ld")


def _draw_axis(draw: ImageDraw.ImageDraw, at: _Layout, small: Font) -> None:
    axis_y = at.curve_top + at.curve_h
    step = _nice_step(at.duration, max(1, at.pw // max(60, at.fs * 5)))
    t = 0.0
    while t <= at.duration + 1e-9:
        x = at.x(t)
        draw.line([(x, axis_y), (x, axis_y + at.fs // 3)], fill=_INK)
        draw.text((x, axis_y + at.fs // 3 + 1), f"{t:g}", fill=_INK, font=small, anchor="ma")
        t = round(t + step, 6)
    draw.text((at.left + at.pw, at.height - 2), "seconds", fill=_GREY, font=small, anchor="rd")


def time_strip(
    result: Grounding,
    *,
    width: int = 640,
    height: int | None = None,
    heads: HeadSelect = None,
    smooth: bool = False,
    marker: float | None = None,
) -> Image.Image:
    """Each head's activation over time under the clip's waveform, time axis in seconds.

    Top: the waveform (the model's 16 kHz input; min/max envelope per pixel column). Bottom: per head, the
    largest similarity anywhere in the image at each audio step (`peak_curves`: raw values by default, the
    numbers --json gives; smooth=True plots the demo's 3-step blur instead, and the title says which), on one
    shared axis, so the heads compare as the winner-take-all colouring compares them.
    marker: a moment in seconds to mark with a vertical line (at its audio step's centre).
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 120:
        raise InputError(f"width must be an integer of at least 120 pixels, got {width!r}")
    height = int(height or max(140, round(width * 0.3)))
    idx = head_indices(result.head_names, heads)
    values = peak_curves(result, idx, smooth=smooth).numpy()  # [K', T]
    times = result.times.double().numpy()
    duration = max(float(result.audio_duration), float(times[-1]) if len(times) else 0.0, 1e-3)
    lo = min(0.0, float(values.min())) if values.size else 0.0
    hi = max(float(values.max()) if values.size else 1.0, lo + 1e-6)
    small = font(max(9, _font_size(width) - 2))
    label_width = max(text_size(small, s)[0] for s in (f"{hi:.3g}", f"{lo:.3g}", "audio"))
    at = _Layout.of(width, height, duration, lo, hi, label_width)

    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    names = [result.head_names[i] for i in idx]
    colors = [head_colors(result.head_names)[i] for i in idx]
    _draw_waveform(draw, at, result.waveform, small)
    _draw_curves(draw, at, times, values, colors, small)
    _draw_header(draw, at, names, colors, curve_title(smooth), small)
    _draw_axis(draw, at, small)
    if marker is not None:
        x = at.x(float(times[result.step_at(marker)]))
        draw.line([(x, at.top), (x, at.curve_top + at.curve_h)], fill=_INK, width=max(1, at.fs // 8))
    return img
