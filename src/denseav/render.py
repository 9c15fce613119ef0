"""Pictures and videos of groundings, drawn with PIL and numpy and encoded with PyAV.

Colours: each head has its own colour - "language" red, "sound" blue (as the original demo), other head names
green, orange, purple, cyan in turn. Where several heads are shown together every pixel takes the colour of the
head with the larger raw similarity there (winner-take-all, as the demo), so the two heads stay distinguishable.

Opacity: a pixel's colour is laid over the photo with opacity alpha * ramp(v), where v in [0, 1] is the
display-normalised map value and ramp rises linearly from 0 at `threshold` (default 0.1) to 1 at v = 1; below
the threshold the photo shows untouched, and even at the peak `alpha` (default 0.6) of the photo remains, so
the picture stays readable.

Display normalisation (documented choice): per head, over the whole clip. Values are clamped at 0 (negative
similarity means "unrelated", as in the original), then mapped linearly from that head's minimum to its
maximum over every audio step and every pixel (for a video: every sampled frame). One moment is therefore
shown relative to the whole clip, so a quiet moment looks quiet instead of being stretched to full colour.
A summary map (time="mean" or "max") is one picture, so it is normalised over itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

from .errors import InputError
from .image import ImageGeometry, maps_to_original
from .result import Grounding
from .video import VideoGrounding, iter_display_frames

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_THRESHOLD",
    "HEAD_COLORS",
    "MAX_VIDEO_WIDTH",
    "blend",
    "colour_layer",
    "display_range",
    "draw_legend",
    "frame_overlay",
    "head_colors",
    "legend_patch",
    "overlay",
    "render_video",
    "save_png",
    "time_strip",
    "video_encoder",
]

Colour = tuple[int, int, int]
HeadSelect = Sequence[int | str] | None

HEAD_COLORS: dict[str, Colour] = {"language": (255, 40, 40), "sound": (40, 140, 255)}
_PALETTE: tuple[Colour, ...] = (
    (40, 200, 70),
    (255, 160, 0),
    (190, 60, 230),
    (0, 200, 210),
    (255, 40, 40),
    (40, 140, 255),
)
DEFAULT_ALPHA = 0.6
DEFAULT_THRESHOLD = 0.1
# Wider videos are scaled down: H.264 players commonly stop at 4K.
MAX_VIDEO_WIDTH = 3840


# ------------------------------------------------------------------------------------------ colour maths


def head_colors(head_names: Sequence[str]) -> list[Colour]:
    """One RGB colour per head: the fixed colour of a known head name, else the next unused palette colour."""
    used = {HEAD_COLORS[n] for n in head_names if n in HEAD_COLORS}
    spare = iter([c for c in _PALETTE if c not in used] + list(_PALETTE))
    return [HEAD_COLORS[n] if n in HEAD_COLORS else next(spare) for n in head_names]


def display_range(maps: torch.Tensor) -> torch.Tensor:
    """[K, ...] raw maps -> [K, 2] (low, high) per head after clamping at 0 (see the module docstring)."""
    flat = maps.detach().float().clamp_min(0).flatten(1)
    return torch.stack([flat.amin(dim=1), flat.amax(dim=1)], dim=1)


def _normalized(maps: torch.Tensor, rng: torch.Tensor) -> torch.Tensor:
    """[K, H, W] raw -> [0, 1] with per-head (low, high); a flat head (high == low) shows nothing."""
    lo = rng[:, 0].view(-1, 1, 1)
    span = (rng[:, 1] - rng[:, 0]).view(-1, 1, 1)
    v = (maps.float().clamp_min(0) - lo) / span.clamp_min(1e-12)
    return torch.where(span > 1e-12, v, torch.zeros_like(v)).clamp_(0, 1)


def colour_layer(
    maps: torch.Tensor,
    rng: torch.Tensor,
    colors: Sequence[Colour],
    *,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    winner_take_all: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The coloured layer for raw maps [K, H, W] on the pixel grid, ready for `blend`: (colour x opacity [H, W, 3],
    256 - opacity [H, W, 1]), both uint16 in 1/256 units. Cache it when many frames share one map (the video
    renderer does): blending is then a few integer operations per pixel."""
    if not 0 <= alpha <= 1:
        raise InputError(f"alpha must be in [0, 1] (the largest opacity of the colour), got {alpha!r}")
    if not 0 <= threshold < 1:
        raise InputError(f"threshold must be in [0, 1) (the normalised value where colour starts), got {threshold!r}")
    if maps.shape[0] != len(colors):
        raise InputError(f"{maps.shape[0]} map(s) but {len(colors)} colour(s); pass one colour per head")
    maps = maps.float()
    v = _normalized(maps, rng)
    if winner_take_all and maps.shape[0] > 1:
        # amax + compare, not argmax: torch's argmax over the leading dim is ~10x slower on large frames.
        v = v * (maps >= maps.amax(dim=0, keepdim=True))
    a = alpha * ((v - threshold) / (1 - threshold)).clamp_(0, 1)  # [K, H, W]
    h, w = maps.shape[-2:]
    premult = torch.zeros(3, h, w)
    opacity = torch.zeros(1, h, w)
    # Heads composited one over the other ("over" operator); with winner-take-all only one is non-zero.
    for k, colour in enumerate(colors):
        ak = a[k : k + 1]
        premult = premult * (1 - ak) + torch.tensor(colour, dtype=torch.float32).view(3, 1, 1) * ak
        opacity = opacity * (1 - ak) + ak
    a256 = (opacity * 256).round_()
    # Capped at 255 * a256 so rgb * (256 - a256) + premult never exceeds 16 bits.
    pm = torch.minimum((premult * 256).round_(), 255 * a256)
    to16 = lambda t: t.permute(1, 2, 0).to(torch.int32).numpy().astype(np.uint16)  # noqa: E731
    return to16(pm), to16(256 - a256)


def blend(rgb: np.ndarray, layer: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """uint8 RGB [H, W, 3] with a `colour_layer` laid over it -> uint8 [H, W, 3] (exact integer arithmetic)."""
    premult, keep = layer
    out = rgb.astype(np.uint16) * keep
    out += premult
    out += 128
    out >>= 8
    return out.astype(np.uint8)


# ------------------------------------------------------------------------------------------------- text


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # a scalable font (Pillow >= 10.1 with FreeType)
    except (TypeError, AttributeError, ImportError, OSError):
        return ImageFont.load_default()  # older Pillow / no FreeType: the small bitmap font


def _text_size(font: ImageFont.ImageFont, text: str) -> tuple[int, int]:
    left, _top, right, bottom = font.getbbox(text)
    return int(right - left), int(bottom)


def legend_patch(names: Sequence[str], colors: Sequence[Colour], font_size: int) -> Image.Image:
    """An RGBA legend box: a colour swatch and the name of each head on a translucent dark background."""
    font = _font(font_size)
    pad = max(2, font_size // 3)
    sw = max(6, int(font_size * 0.8))  # swatch side
    sizes = [_text_size(font, n) for n in names]
    line = max([font_size] + [h for _, h in sizes]) + pad
    width = pad * 3 + sw + max(w for w, _ in sizes)
    height = pad + line * len(names)
    box = Image.new("RGBA", (width, height), (0, 0, 0, 150))
    draw = ImageDraw.Draw(box)
    for i, (name, colour) in enumerate(zip(names, colors)):
        y = pad + i * line
        top = y + (line - pad - sw) // 2
        draw.rectangle([pad, top, pad + sw - 1, top + sw - 1], fill=(*tuple(colour), 255), outline=(255, 255, 255, 255))
        draw.text((pad * 2 + sw, y), name, fill=(255, 255, 255, 255), font=font)
    return box


def _legend_font_size(width: int, height: int) -> int:
    return int(min(32, max(10, round(min(width, height) / 24))))


def draw_legend(image: Image.Image, names: Sequence[str], colors: Sequence[Colour], *, force: bool = False) -> bool:
    """Draw the legend in the top-left corner of `image` (in place). Skipped (returns False) when it would cover
    more than half the width or a third of the height, unless `force`."""
    w, h = image.size
    patch = legend_patch(names, colors, _legend_font_size(w, h))
    if not force and (patch.width > w / 2 or patch.height > h / 3):
        return False
    margin = max(2, patch.height // 10)
    base = image.convert("RGBA")
    base.alpha_composite(patch, (margin, margin))
    image.paste(base.convert(image.mode))
    return True


def _paste_patch(rgb: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Alpha-composite an RGBA uint8 patch onto an RGB uint8 array in place (clipped to the array)."""
    h = min(patch.shape[0], rgb.shape[0] - y)
    w = min(patch.shape[1], rgb.shape[1] - x)
    if h <= 0 or w <= 0:
        return
    p = patch[:h, :w].astype(np.float32)
    a = p[..., 3:4] / 255
    region = rgb[y : y + h, x : x + w].astype(np.float32)
    rgb[y : y + h, x : x + w] = np.clip(region * (1 - a) + p[..., :3] * a + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- pictures


def _head_indices(names: Sequence[str], heads: HeadSelect) -> list[int]:
    if heads is None:
        return list(range(len(names)))
    if isinstance(heads, (str, int)):
        heads = [heads]
    out = []
    for h in heads:
        if isinstance(h, str):
            if h not in names:
                raise InputError(f"no head {h!r}; this model's heads are {tuple(names)}")
            out.append(list(names).index(h))
        else:
            if not -len(names) <= int(h) < len(names):
                raise InputError(f"head {h} out of range for {len(names)} head(s) {tuple(names)}")
            out.append(int(h) % len(names))
    if not out:
        raise InputError("heads is empty; pass None for all heads or at least one head name")
    return out


def _step_of(result: Grounding, time: int | float) -> int:
    steps = result.heatmaps.shape[1]
    if isinstance(time, bool):
        raise InputError(f"time must be 'mean', 'max', an audio step index or seconds, got {time!r}")
    if isinstance(time, (int, np.integer)):
        if not -steps <= int(time) < steps:
            raise InputError(f"time step {time} out of range: this clip has {steps} audio steps (0..{steps - 1})")
        return int(time) % steps
    if isinstance(time, float):
        if not math.isfinite(time):
            raise InputError(f"time must be finite seconds, got {time!r}")
        return result.step_at(time)
    raise InputError(f"time must be 'mean', 'max', an int audio step index or float seconds, got {time!r}")


def _grid_maps(
    result: Grounding, time: str | int | float, smooth: bool, idx: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The maps to show [K', h, w] and their display range [K', 2]."""
    if isinstance(time, str):
        if time not in ("mean", "max"):
            raise InputError(f"time must be 'mean', 'max', an audio step index or seconds, got {time!r}")
        maps = result.over_time(time, smooth=smooth)[idx]
        return maps, display_range(maps)
    step = _step_of(result, time)
    volume = (result.smoothed() if smooth else result.heatmaps)[idx]
    return volume[:, step], display_range(volume)


def _rgb_of(result: Grounding, image: Any) -> np.ndarray:
    if image is not None:
        from .image import to_rgb_uint8

        rgb = to_rgb_uint8(image)
    elif result.image is not None:
        rgb = result.image
    else:
        raise InputError("this Grounding carries no image (it was built without one); pass image=... to draw on")
    h0, w0 = result.geometry.original_size
    if tuple(rgb.shape[-2:]) != (h0, w0):
        raise InputError(
            f"the image is {rgb.shape[-1]}x{rgb.shape[-2]} but the grounding was computed for a {w0}x{h0} image; "
            "pass the same image"
        )
    return rgb.permute(1, 2, 0).contiguous().numpy()


def overlay(
    result: Grounding,
    *,
    time: str | int | float = "mean",
    heads: HeadSelect = None,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    smooth: bool = True,
    winner_take_all: bool = True,
    legend: bool = True,
    image: Any = None,
) -> Image.Image:
    """Each head's map laid over the ORIGINAL image (same size as the picture passed to `ground`).

    time: "mean" (default) or "max" over the clip, an audio step index (int), or seconds (float, nearest step).
    heads: names or indices to show (default all); several heads are shown winner-take-all per pixel.
    alpha: the colour's opacity at a head's maximum; threshold: normalised value below which nothing is drawn.
    smooth: use the demo's 3-tap temporal blur (matters for a single step).
    legend: draw head names in the top-left corner when the image is large enough for it.
    image: draw on this picture instead of `result.image` (it must have the same size).
    Colours and normalisation: see the module docstring.
    """
    idx = _head_indices(result.head_names, heads)
    grid, rng = _grid_maps(result, time, smooth, idx)
    maps = maps_to_original(grid, result.geometry)
    colors = [head_colors(result.head_names)[i] for i in idx]
    out = blend(
        _rgb_of(result, image),
        colour_layer(maps, rng, colors, alpha=alpha, threshold=threshold, winner_take_all=winner_take_all),
    )
    picture = Image.fromarray(out, "RGB")
    if legend:
        draw_legend(picture, [result.head_names[i] for i in idx], colors)
    return picture


def _nice_step(span: float, max_ticks: int) -> float:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600):
        if span / step <= max_ticks:
            return float(step)
    return 3600.0 * math.ceil(span / 3600 / max_ticks)


def time_strip(
    result: Grounding,
    *,
    width: int = 640,
    height: int | None = None,
    heads: HeadSelect = None,
    smooth: bool = True,
    marker: int | float | None = None,
) -> Image.Image:
    """Each head's activation over time under the clip's waveform, time axis in seconds.

    Top: the waveform (the model's 16 kHz input; min/max envelope per pixel column). Bottom: per head, the
    largest similarity anywhere in the image at each audio step (raw values, one shared axis, so the heads
    compare as the winner-take-all colouring compares them). marker: an audio step (int) or seconds (float)
    to mark with a vertical line.
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 120:
        raise InputError(f"width must be an integer of at least 120 pixels, got {width!r}")
    height = int(height or max(140, round(width * 0.3)))
    idx = _head_indices(result.head_names, heads)
    names = [result.head_names[i] for i in idx]
    colors = [head_colors(result.head_names)[i] for i in idx]
    maps = (result.smoothed() if smooth else result.heatmaps)[idx]
    values = maps.flatten(2).amax(dim=2).numpy()  # [K', T]
    times = result.times.double().numpy()
    duration = max(float(result.audio_duration), float(times[-1]) if len(times) else 0.0, 1e-3)

    fs = int(min(22, max(10, round(width / 55))))
    small = _font(max(9, fs - 2))
    lo = min(0.0, float(values.min())) if values.size else 0.0
    hi = max(float(values.max()) if values.size else 1.0, lo + 1e-6)
    labels = [f"{hi:.3g}", f"{lo:.3g}"]
    left = max(_text_size(small, s)[0] for s in [*labels, "audio"]) + fs
    right, top = fs, fs // 2
    bottom = fs * 2 + fs // 2
    pw, ph = width - left - right, height - top - bottom
    wave_h = max(20, int(ph * 0.32))
    gap = max(4, fs // 2)
    header = fs + fs // 2  # a row for the panel title and the head names, so they never cover a curve
    curve_top, curve_h = top + wave_h + gap + header, ph - wave_h - gap - header

    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    ink, grey, light = (40, 40, 40), (150, 150, 150), (225, 225, 225)

    def x_of(t: float) -> float:
        return left + pw * t / duration

    # Waveform envelope.
    draw.rectangle([left, top, left + pw - 1, top + wave_h - 1], outline=light)
    wave = result.waveform
    if wave is not None and wave.numel():
        w = wave.float().numpy()
        n = len(w)
        cols = max(1, min(pw, round(pw * (n / 16_000) / duration)))
        edges = np.linspace(0, n, cols + 1).astype(np.int64)
        starts = np.minimum(edges[:-1], n - 1)
        mins, maxs = np.minimum.reduceat(w, starts), np.maximum.reduceat(w, starts)
        scale = max(float(np.abs(w).max()), 1e-9)
        mid = top + wave_h / 2
        for c in range(cols):
            x = left + c
            y0, y1 = mid - maxs[c] / scale * (wave_h / 2 - 1), mid - mins[c] / scale * (wave_h / 2 - 1)
            draw.line([(x, y0), (x, max(y1, y0 + 1))], fill=grey)
    draw.text((left - fs // 2, top + wave_h / 2), "audio", fill=ink, font=small, anchor="rm")

    # Activation curves.
    draw.rectangle([left, curve_top, left + pw - 1, curve_top + curve_h - 1], outline=light)

    def y_of(v: float) -> float:
        return curve_top + (curve_h - 1) * (1 - (v - lo) / (hi - lo))

    if lo < 0 < hi:
        y0 = y_of(0.0)
        for x in range(left, left + pw, 6):
            draw.line([(x, y0), (min(x + 2, left + pw - 1), y0)], fill=grey)
    for k in range(len(idx)):
        pts = [(x_of(float(t)), y_of(float(v))) for t, v in zip(times, values[k])]
        if len(pts) > 1:
            draw.line(pts, fill=colors[k], width=max(1, fs // 6), joint="curve")
        r = max(1, fs // 7)
        if len(pts) <= pw / 4:  # dots only while they do not smear into a band
            for x, y in pts:
                draw.ellipse([x - r, y - r, x + r, y + r], fill=colors[k])
    draw.text((left - fs // 2, curve_top), labels[0], fill=ink, font=small, anchor="ra")
    draw.text((left - fs // 2, curve_top + curve_h - 1), labels[1], fill=ink, font=small, anchor="rd")
    # Which line is which: the header row above the curve panel.
    label_y = curve_top - fs // 4
    x = left + pw
    for name, colour in reversed(list(zip(names, colors))):
        tw = _text_size(small, name)[0]
        draw.rectangle([x - tw - fs * 0.9, label_y - fs * 0.75, x - tw - fs * 0.3, label_y - fs * 0.15], fill=colour)
        draw.text((x, label_y), name, fill=ink, font=small, anchor="rd")
        x -= tw + fs * 1.6
    draw.text((left, label_y), "peak similarity (max over the image)", fill=grey, font=small, anchor="ld")

    # Time axis.
    axis_y = curve_top + curve_h
    step = _nice_step(duration, max(1, pw // max(60, fs * 5)))
    t = 0.0
    while t <= duration + 1e-9:
        x = x_of(t)
        draw.line([(x, axis_y), (x, axis_y + fs // 3)], fill=ink)
        draw.text((x, axis_y + fs // 3 + 1), f"{t:g}", fill=ink, font=small, anchor="ma")
        t = round(t + step, 6)
    draw.text((left + pw, height - 2), "seconds", fill=grey, font=small, anchor="rd")

    if marker is not None:
        step_index = _step_of(result, marker)
        x = x_of(float(times[step_index]))
        draw.line([(x, top), (x, axis_y)], fill=ink, width=max(1, fs // 8))
    return img


def save_png(
    result: Grounding,
    path: str | os.PathLike,
    *,
    time: str | int | float = "mean",
    heads: HeadSelect = None,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    smooth: bool = True,
    strip: bool = True,
    min_width: int = 480,
    max_width: int = 1600,
) -> Path:
    """Write the overlay (and, below it, the time strip) as a PNG; returns the path.

    The overlay is scaled to a width in [min_width, max_width] (so tiny images stay legible and huge ones
    stay small), keeping its aspect ratio. The head colours are named in the strip's header; without the strip
    a legend is drawn in the picture's top-left corner instead (after scaling, so the text stays sharp).
    """
    out = Path(os.fspath(path))
    if out.suffix.lower() != ".png":
        raise InputError(f"save_png writes PNG files; give the output a .png name, not {out.name!r}")
    if out.parent and not out.parent.exists():
        raise InputError(f"the folder {str(out.parent)!r} does not exist; create it first or choose another path")
    if isinstance(time, str) and time not in ("mean", "max"):
        raise InputError(f"time must be 'mean', 'max', an audio step index or seconds, got {time!r}")
    picture = overlay(result, time=time, heads=heads, alpha=alpha, threshold=threshold, smooth=smooth, legend=False)
    w0, h0 = picture.size
    width = min(max(w0, min_width), max_width)
    if width != w0:
        height = max(1, round(h0 * width / w0))
        picture = picture.resize((width, height), Image.Resampling.LANCZOS)
    idx = _head_indices(result.head_names, heads)
    if not strip:
        # With the strip below, its header names the colours, and nothing has to cover the picture.
        draw_legend(picture, [result.head_names[i] for i in idx], [head_colors(result.head_names)[i] for i in idx])
    if strip:
        marker = None if isinstance(time, str) else time
        band = time_strip(result, width=max(120, picture.width), heads=heads, smooth=smooth, marker=marker)
        sheet = Image.new("RGB", (picture.width, picture.height + band.height), (255, 255, 255))
        sheet.paste(picture, (0, 0))
        sheet.paste(band, (0, picture.height))
        picture = sheet
    picture.save(out, format="PNG")
    return out


# ------------------------------------------------------------------------------------------------- videos


def video_encoder() -> str:
    """The H.264 encoder this PyAV build has (libx264, else libopenh264), else MPEG-4 part 2 as a fallback."""
    for name in ("libx264", "libopenh264", "mpeg4"):
        if name in av.codecs_available:
            try:
                av.codec.Codec(name, "w")
            except Exception:
                continue
            return name
    raise InputError("this PyAV/FFmpeg build has no H.264 or MPEG-4 encoder; install the PyPI `av` wheel")


def _even(n: int) -> int:
    return max(2, n - n % 2)


def _panel_size(width: int, height: int, panels: int, max_width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(scaled (H, W), output (H, W)) of one panel: scaled so all panels fit max_width, then cropped to even."""
    scale = min(1.0, max_width / (panels * width))
    hs, ws = (height, width) if scale == 1.0 else (max(2, round(height * scale)), max(2, round(width * scale)))
    return (hs, ws), (_even(hs), _even(ws))


def _source_rate(path: Path, fallback: float) -> Fraction:
    with av.open(str(path)) as c:
        rate = c.streams.video[0].average_rate or c.streams.video[0].guessed_rate
    if rate:
        return Fraction(rate)
    return Fraction(fallback or 25).limit_denominator(1001)


def _audio_frames(path: Path) -> Iterator[av.AudioFrame]:
    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                return
            yield from c.decode(c.streams.audio[0])
    except av.error.FFmpegError as e:
        raise InputError(
            f"could not decode the audio of {str(path)!r} again: {getattr(e, 'strerror', None) or e}; the file may "
            "be truncated or corrupt"
        ) from e


def frame_overlay(
    vg: VideoGrounding,
    index: int,
    *,
    smooth: bool = True,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    legend: bool = True,
) -> Image.Image:
    """One sampled frame of a video with its maps laid over it (normalised over the whole video)."""
    if not -vg.num_frames <= index < vg.num_frames:
        raise InputError(f"frame {index} out of range for {vg.num_frames} sampled frame(s)")
    target = int(vg.frame_indices[index])
    rng = display_range(vg.maps(smooth).transpose(0, 1))
    colors = head_colors(vg.head_names)
    for _i, _, rgb in iter_display_frames(vg.source.path, want=lambda i, t: i == target):
        if rgb is None:
            continue
        layer = colour_layer(vg.upsampled(index, smooth=smooth), rng, colors, alpha=alpha, threshold=threshold)
        picture = Image.fromarray(blend(rgb.permute(1, 2, 0).numpy(), layer), "RGB")
        if legend:
            draw_legend(picture, vg.head_names, colors)
        return picture
    raise InputError(f"frame {target} could not be decoded again from {vg.source.path!r}; has the file changed?")


def render_video(
    vg: VideoGrounding,
    source_path: str | os.PathLike | None,
    out_path: str | os.PathLike,
    *,
    layout: str = "combined",
    smooth: bool = True,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    crf: int = 20,
    preset: str = "veryfast",
    max_width: int = MAX_VIDEO_WIDTH,
    progress: bool = True,
) -> Path:
    """Write a video of the groundings in sync with the sound; returns the output path.

    Every source frame is re-decoded (streaming) and shown with the maps of the nearest sampled frame, at the
    source's (average) frame rate, one output frame per source frame. The source's audio track is re-encoded
    as AAC (mono stays mono, anything else becomes stereo) and muxed in.

    layout: "combined" - the video with every head overlaid (winner-take-all colours, legend);
        "panels" - side by side: the plain video, then one panel per head.
    Size: the displayed source size per panel, scaled down when all panels together are wider than
        `max_width` (3840), then rounded down to even numbers (yuv420p needs them) by dropping the last
        row / column.
    Codec: H.264 (libx264, `crf` quality, `preset` speed; or libopenh264) in yuv420p, BT.709; MPEG-4 part 2
        only if the PyAV build has no H.264 encoder (see `video_encoder`).
    source_path: the video `vg` was computed from (None: `vg.source.path`).
    Cost: decoding, blending and encoding, no model. About 60 ms per 1080p frame on a 2-core CPU (a 10-minute
    30 fps video: ~20 minutes); memory does not grow with the length.
    """
    if layout not in ("combined", "panels"):
        raise InputError(f"layout must be 'combined' or 'panels', got {layout!r}")
    src = Path(os.fspath(source_path if source_path is not None else vg.source.path))
    out = Path(os.fspath(out_path))
    if not src.exists():
        raise InputError(f"video file not found: {str(src)!r}; pass the video ground_video was run on")
    if out.exists() and out.resolve() == src.resolve():
        raise InputError(f"the output {str(out)!r} is the input video; choose another output path")
    if out.suffix.lower() not in (".mp4", ".mov", ".mkv", ".m4v"):
        raise InputError(f"the output must be an .mp4, .mov, .m4v or .mkv file, not {out.name!r}")
    if out.parent and not out.parent.exists():
        raise InputError(f"the folder {str(out.parent)!r} does not exist; create it first or choose another path")

    k = vg.num_heads
    colors = head_colors(vg.head_names)
    w0, h0 = vg.source.width, vg.source.height
    frames = iter_display_frames(src)
    try:  # one frame: is this the video vg was computed from?
        first = next(frames, None)
    finally:
        frames.close()
    if first is not None and tuple(first[2].shape[-2:]) != (h0, w0):
        raise InputError(
            f"{str(src)!r} is {first[2].shape[-1]}x{first[2].shape[-2]} but the grounding was computed for a "
            f"{w0}x{h0} video; pass the video ground_video was run on"
        )
    n_panels = 1 if layout == "combined" else k + 1
    (hs, ws), (he, we) = _panel_size(w0, h0, n_panels, max_width)
    scaled = (hs, ws) != (h0, w0)
    # Maps go straight onto the (scaled) display grid: the same geometry with the displayed size swapped in.
    g = vg.geometry
    out_geometry = ImageGeometry((hs, ws), g.resized_size, g.input_size, g.patch_size)
    rng = display_range(vg.maps(smooth).transpose(0, 1))  # per head over every sampled frame
    maps = vg.maps(smooth)
    sample_times = vg.frame_times.numpy()

    font_size = _legend_font_size(we, he)
    patches: list[np.ndarray] = []
    if layout == "combined":
        patch = legend_patch(vg.head_names, colors, font_size)
        if patch.width <= we / 2 and patch.height <= he / 3:
            patches.append(np.asarray(patch))
    else:
        for name, colour in zip(vg.head_names, colors):
            patch = legend_patch([name], [colour], font_size)
            patches.append(np.asarray(patch) if patch.width <= we and patch.height <= he / 3 else None)

    cache: dict[str, Any] = {"index": None, "layers": None}

    def layers_for(j: int) -> list[tuple[np.ndarray, np.ndarray]]:
        # Source frames between two sampled ones reuse the nearest sampled map: compute each layer once.
        if cache["index"] != j:
            up = maps_to_original(maps[j], out_geometry)[:, :he, :we]
            if layout == "combined":
                cache["layers"] = [colour_layer(up, rng, colors, alpha=alpha, threshold=threshold)]
            else:
                cache["layers"] = [
                    colour_layer(up[i : i + 1], rng[i : i + 1], [colors[i]], alpha=alpha, threshold=threshold)
                    for i in range(k)
                ]
            cache["index"] = j
        return cache["layers"]

    def nearest(t: float) -> int:
        i = int(np.searchsorted(sample_times, t))
        if i <= 0:
            return 0
        if i >= len(sample_times):
            return len(sample_times) - 1
        return i if sample_times[i] - t < t - sample_times[i - 1] else i - 1

    rate = _source_rate(src, vg.source.fps)
    codec = video_encoder()
    try:
        container = av.open(str(out), mode="w")
    except av.error.FFmpegError as e:
        raise InputError(f"cannot write {str(out)!r}: {getattr(e, 'strerror', None) or e}") from e
    bar = tqdm(total=vg.source.frame_count, desc="rendering", unit="frame", disable=not progress)
    try:
        vstream = container.add_stream(codec, rate=rate)
        vstream.width, vstream.height = we * n_panels, he
        vstream.pix_fmt = "yuv420p"
        frame_tb = Fraction(1, 1) / rate  # frames count in 1/rate; the muxer picks the stream's own time base
        vstream.codec_context.time_base = frame_tb
        if codec == "libx264":
            vstream.options = {"crf": str(int(crf)), "preset": preset}
        else:
            vstream.bit_rate = int(we * n_panels * he * float(rate) * 0.2)
        cc = vstream.codec_context
        # Tag what we convert with, so players do not guess BT.601 vs BT.709 from the size.
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1

        audio_in = _audio_frames(src)
        first_audio = next(audio_in, None)
        astream = None
        if first_audio is not None:
            channels = len(first_audio.layout.channels)
            arate = first_audio.sample_rate
            supported = av.codec.Codec("aac", "w").audio_rates
            if supported and arate not in supported:
                arate = 48_000  # an AAC-incompatible rate: the encoder's resampler converts
            astream = container.add_stream("aac", rate=arate, layout="mono" if channels == 1 else "stereo")
            astream.bit_rate = 64_000 * min(2, channels)
        # "written": seconds of sound already handed to the encoder (output clock).
        audio_state: dict[str, Any] = {"pending": first_audio, "written": 0.0, "offset": None}

        def write_audio(until: float | None) -> None:
            """Encode source audio until output time `until` (None: all of it)."""
            if astream is None:
                return
            while audio_state["pending"] is not None:
                frame = audio_state["pending"]
                if until is not None and audio_state["written"] >= until:
                    return
                frame = _shift_audio(frame, audio_state)
                if frame is not None:
                    rate_in = frame.sample_rate
                    frame.pts = round(audio_state["written"] * rate_in)
                    frame.time_base = Fraction(1, rate_in)
                    audio_state["written"] += frame.samples / rate_in
                    for packet in astream.encode(frame):
                        container.mux(packet)
                audio_state["pending"] = next(audio_in, None)

        written = 0
        size = (hs, ws) if scaled else None
        for _, t, rgb in iter_display_frames(src, size=size):
            assert rgb is not None
            if audio_state["offset"] is None:
                # Output time 0 is the first video frame; audio on the audio clock shifts by its time.
                audio_state["offset"] = -t
                if -t > 0:  # the video starts first: the sound starts that much later
                    audio_state["written"] = -t
            frame_rgb = rgb.permute(1, 2, 0).numpy()[:he, :we]
            layers = layers_for(nearest(t))
            if layout == "combined":
                canvas = blend(frame_rgb, layers[0])
                if patches:
                    _paste_patch(canvas, patches[0], max(2, font_size // 4), max(2, font_size // 4))
            else:
                tiles = [np.ascontiguousarray(frame_rgb)]
                for i in range(k):
                    tile = blend(frame_rgb, layers[i])
                    if patches[i] is not None:
                        _paste_patch(tile, patches[i], max(2, font_size // 4), max(2, font_size // 4))
                    tiles.append(tile)
                canvas = np.concatenate(tiles, axis=1)
            vframe = av.VideoFrame.from_ndarray(np.ascontiguousarray(canvas), format="rgb24")
            vframe = vframe.reformat(format="yuv420p", dst_colorspace="ITU709")
            vframe.pts = written
            vframe.time_base = frame_tb
            for packet in vstream.encode(vframe):
                container.mux(packet)
            written += 1
            bar.update(1)
            write_audio(written / rate)
        for packet in vstream.encode():
            container.mux(packet)
        write_audio(None)
        if astream is not None:
            for packet in astream.encode():
                container.mux(packet)
    except BaseException:
        container.close()
        out.unlink(missing_ok=True)  # never leave a truncated file that looks finished
        raise
    finally:
        bar.close()
    container.close()
    return out


def _shift_audio(frame: av.AudioFrame, state: dict[str, Any]) -> av.AudioFrame | None:
    """Drop the audio that plays before the first video frame (only when the streams start apart)."""
    offset = state["offset"] or 0.0
    rate = frame.sample_rate
    drop_total = round(-offset * rate) if offset < 0 else 0
    dropped = state.get("dropped", 0)
    if dropped >= drop_total:
        return frame
    n = min(frame.samples, drop_total - dropped)
    state["dropped"] = dropped + n
    if n >= frame.samples:
        return None
    arr = frame.to_ndarray()
    # Planar: [channels, samples]; packed: [1, samples * channels].
    arr = arr[:, n:] if frame.format.is_planar else arr[:, n * len(frame.layout.channels) :]
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=frame.format.name, layout=frame.layout.name)
    out.sample_rate = rate
    return out
