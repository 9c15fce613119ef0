"""Videos of groundings: a video's own frames with their maps (`render_video`), a still image with its sound
(`render_grounding_video`), and one analysed video frame as a picture (`frame_overlay`).

Both writers are a loop over `media.VideoWriter`: each output frame is a picture (`FramePainter`) with the
colour layer of one moment laid over it; a layer is computed once and reused while the moment stays the same.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from contextlib import closing
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..audio import SAMPLE_RATE
from ..errors import InputError, InputTypeError
from ..image import ImageGeometry, PixelSampler
from ..media import (
    VIDEO_SUFFIXES,
    VideoWriter,
    array_audio_frames,
    check_input_file,
    decode_frame,
    file_audio_frames,
    iter_display_frames,
    probe_media,
)
from ..paths import check_output_path
from ..progress import progress as progress_reporter
from ..result import Grounding, HeadSelect, head_indices
from ..video import VideoGrounding, within_sound
from .colors import (
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
    Colour,
    ColourLayer,
    OverlayStyle,
    blend,
    display_range,
    head_colors,
)
from .legend import draw_legend, fits, legend_font_size, legend_margin, legend_patch, paste_patch
from .picture import display_size, draw_maps, resized_rgb, source_rgb

__all__ = [
    "GROUNDING_VIDEO_MAX_SIDE",
    "LAYOUTS",
    "MAX_VIDEO_WIDTH",
    "FramePainter",
    "frame_overlay",
    "render_grounding_video",
    "render_video",
]

LAYOUTS = ("combined", "panels")
# Wider videos are scaled down: H.264 players commonly stop at 4K.
MAX_VIDEO_WIDTH = 3840
# render_grounding_video draws the photo at most this many pixels wide or high (all panels together).
GROUNDING_VIDEO_MAX_SIDE = 1280
# A sound louder than this (the model's unit-variance input) is scaled to peak here, so AAC does not clip it.
_SOUND_PEAK = 0.98


def _panels(layout: str, heads: int) -> int:
    """Pictures side by side: 1 for "combined", the plain picture and one per head for "panels"."""
    if layout not in LAYOUTS:
        raise InputError(f"layout must be 'combined' or 'panels', got {layout!r}")
    return 1 if layout == "combined" else heads + 1


def _even(n: int) -> int:
    return max(2, n - n % 2)


def _panel_size(height: int, width: int, panels: int, max_width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(scaled (H, W), output (H, W)) of one panel: scaled so all panels fit max_width, then cut to even sides
    (yuv420p needs them) by dropping the last row / column."""
    scale = min(1.0, max_width / (panels * width))
    hs, ws = (height, width) if scale == 1.0 else (max(2, round(height * scale)), max(2, round(width * scale)))
    return (hs, ws), (_even(hs), _even(ws))


class FramePainter:
    """Draws output frames: a picture [H, W, 3] with the colour layers of one moment (or none: a frame without
    sound), laid out "combined" (every head over the picture, with a legend) or "panels" (the plain picture,
    then one panel per head). The layers of the current moment are cached: consecutive frames showing the same
    moment cost one blend each.

    size: (height, width) of one panel; rng: the per-head display range [K, 2]; geometry: the grounding's
    geometry with the picture's (scaled) size as its original size, so maps are sampled straight onto it.
    """

    def __init__(
        self,
        names: Sequence[str],
        colors: Sequence[Colour],
        layout: str,
        size: tuple[int, int],
        rng: torch.Tensor,
        style: OverlayStyle,
        geometry: ImageGeometry,
    ):
        self.names, self.colors, self.layout, self.size = list(names), list(colors), layout, size
        self.rng, self.style, self.geometry = rng, style, geometry
        self._sampler = PixelSampler(geometry)  # keeps the sampling grid: the maps change, the geometry does not
        self.panels = _panels(layout, len(self.names))
        self._key: object = None
        self._layers: list[ColourLayer] = []
        h, w = size
        self._font_size = legend_font_size(w, h)
        groups = [self.names] if layout == "combined" else [[n] for n in self.names]
        share = 0.5 if layout == "combined" else 1.0
        self._legends: list[np.ndarray | None] = []
        for group in groups:
            patch = legend_patch(group, [self.colors[self.names.index(n)] for n in group], self._font_size)
            self._legends.append(np.asarray(patch) if fits(patch, w, h, max_width_share=share) else None)

    @property
    def width(self) -> int:
        return self.size[1] * self.panels

    def layers(self, key: object, grid: torch.Tensor) -> list[ColourLayer]:
        """The colour layers of the moment `key` with maps `grid` [K, h, w] on the patch grid; they are sampled
        onto the picture's pixels only when the moment changes."""
        if key != self._key:
            h, w = self.size
            m = self._sampler(grid)[:, :h, :w]
            if self.layout == "combined":
                self._layers = [self.style.layer(m, self.rng, self.colors)]
            else:
                self._layers = [
                    self.style.layer(m[i : i + 1], self.rng[i : i + 1], [c]) for i, c in enumerate(self.colors)
                ]
            self._key = key
        return self._layers

    def _labelled(self, tile: np.ndarray, legend: np.ndarray | None) -> np.ndarray:
        if legend is not None:
            margin = legend_margin(self._font_size)
            paste_patch(tile, legend, margin, margin)
        return tile

    def paint(self, rgb: np.ndarray, layers: list[ColourLayer] | None) -> np.ndarray:
        """One output frame [H, W * panels, 3] from the picture and the moment's layers (None: no overlay)."""
        if self.layout == "combined":
            tile = blend(rgb, layers[0]) if layers else rgb.copy()
            return self._labelled(tile, self._legends[0])
        tiles = [np.ascontiguousarray(rgb)]
        for i, legend in enumerate(self._legends):
            tiles.append(self._labelled(blend(rgb, layers[i]) if layers else rgb.copy(), legend))
        return np.concatenate(tiles, axis=1)


# ------------------------------------------------------------------------------------------ a video's frames


class SampledMaps:
    """Which analysed frame's maps a source frame shows: the nearest analysed frame with sound, or none when
    the source frame lies outside the sound track."""

    def __init__(self, vg: VideoGrounding):
        self._positions = torch.nonzero(vg.has_sound).flatten().numpy()
        self._times = vg.frame_times.double().numpy()[self._positions]
        self._duration = vg.audio_duration

    def __call__(self, seconds: float) -> int | None:
        if not len(self._positions) or not within_sound(seconds, self._duration):
            return None
        i = int(np.searchsorted(self._times, seconds))
        if i >= len(self._times) or (i > 0 and seconds - self._times[i - 1] <= self._times[i] - seconds):
            i -= 1
        return int(self._positions[i])


def _check_source(src: Path, vg: VideoGrounding) -> float:
    """The time (audio clock) of the source's first frame, after checking it is the video vg was computed from."""
    frames = iter_display_frames(check_input_file(src, "video"))
    try:
        first = next(frames, None)
    finally:
        frames.close()  # and with it the file
    w0, h0 = vg.source.width, vg.source.height
    if first is None or first.rgb is None:
        raise InputError(f"{str(src)!r} contains no decodable video frames; pass the video ground_video was run on")
    if tuple(first.rgb.shape[-2:]) != (h0, w0):
        raise InputError(
            f"{str(src)!r} is {first.rgb.shape[-1]}x{first.rgb.shape[-2]} but the grounding was computed for a "
            f"{w0}x{h0} video; pass the video ground_video was run on"
        )
    return first.time


def render_video(
    vg: VideoGrounding,
    source_path: str | os.PathLike[str] | None,
    out_path: str | os.PathLike[str],
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

    Every source frame is re-decoded (streaming) and shown with the maps of the nearest analysed frame, at the
    source's (average) frame rate, one output frame per source frame. Frames outside the sound track (before a
    delayed audio track starts, after it ends) show no overlay. The source's audio track is re-encoded as AAC
    (mono stays mono, anything else becomes stereo) and muxed in.

    layout: "combined" - the video with every head overlaid (winner-take-all colours, legend);
        "panels" - side by side: the plain video, then one panel per head.
    Size: the displayed source size per panel, scaled down when all panels together are wider than
        `max_width` (3840). Odd sizes become even: H.264 in yuv420p stores colour at half resolution, so the
        last row and/or column of an odd-sized video is dropped (a 333x197 video comes out 332x196).
    Codec: H.264 (libx264, `crf` quality, `preset` speed; or libopenh264) in yuv420p, BT.709; MPEG-4 part 2
        only if the PyAV build has no H.264 encoder (see `media.video_encoder`).
    source_path: the video `vg` was computed from (None: `vg.source.path`).
    The output path is checked before any decoding (OutputError: wrong suffix, missing folder, the input).
    Cost: decoding, blending and encoding, no model; memory does not grow with the length. On a busy 2-core
    CPU a 1080p frame cost ~130 ms, most of it x264 (~80 ms at `veryfast`); the colour layer (~100 ms with
    its upsampling) is made once per analysed frame and blending is ~12 ms (benchmarks/render_bench.py).
    """
    src = Path(os.fspath(source_path if source_path is not None else vg.source.path))
    out = check_output_path(out_path, suffixes=VIDEO_SUFFIXES, what="output video", inputs=[src])
    panels = _panels(layout, vg.num_heads)
    style = OverlayStyle(alpha, threshold)
    start = _check_source(src, vg)
    (hs, ws), (he, we) = _panel_size(vg.source.height, vg.source.width, panels, max_width)
    maps = vg.maps(smooth)
    rng = display_range(maps.transpose(0, 1))  # per head over every analysed frame (NaN: no sound, left out)
    # Maps go straight onto the (scaled) display grid: the same geometry with the displayed size swapped in.
    on_screen = replace(vg.geometry, original_size=(hs, ws))
    painter = FramePainter(vg.head_names, head_colors(vg.head_names), layout, (he, we), rng, style, on_screen)
    shown = SampledMaps(vg)
    rate = probe_media(src).rate or Fraction(vg.source.fps or 25).limit_denominator(1001)
    audio = file_audio_frames(src)
    size = None if (hs, ws) == (vg.source.height, vg.source.width) else (hs, ws)
    bar = progress_reporter(vg.source.frame_count, "rendering", "frame", enabled=progress)
    with (
        closing(bar),
        VideoWriter(out, painter.width, he, rate, crf=crf, preset=preset, audio=audio, audio_start=-start) as writer,
    ):
        for frame in iter_display_frames(src, size=size):
            if frame.rgb is None:
                raise AssertionError("internal: every frame is converted")
            j = shown(frame.time)
            layers = None if j is None else painter.layers(j, maps[j])
            writer.write(painter.paint(frame.rgb.permute(1, 2, 0).numpy()[:he, :we], layers))
            bar.update(1)
    return out


def frame_overlay(
    vg: VideoGrounding,
    index: int,
    *,
    smooth: bool = True,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    legend: bool = True,
) -> Image.Image:
    """One analysed frame of a video with its maps laid over it (normalised over the whole video; a frame
    outside the sound track is shown plain). The frame is decoded again from `vg.source.path`."""
    if isinstance(index, bool) or not isinstance(index, int):
        raise InputTypeError(f"index is an analysed frame's position (an int), not {index!r}")
    if not -vg.num_frames <= index < vg.num_frames:
        raise InputError(f"frame {index} out of range for {vg.num_frames} analysed frame(s)")
    style = OverlayStyle(alpha, threshold)
    rgb = decode_frame(vg.source.path, int(vg.frame_indices[index])).permute(1, 2, 0).numpy()
    colors = head_colors(vg.head_names)
    if bool(vg.has_sound[index]):
        rng = display_range(vg.maps(smooth).transpose(0, 1))
        rgb = draw_maps(rgb, vg.maps(smooth)[index], rng, vg.geometry, colors, style)
    picture = Image.fromarray(rgb, "RGB")
    if legend:
        draw_legend(picture, vg.head_names, colors)
    return picture


# ------------------------------------------------------------------------------------ a photo with its sound


def step_rate(result: Grounding) -> Fraction:
    """Audio steps per second of a result (16000 / 2880 = 5.56 for the published models), from the spacing of
    its steps; a one-step clip gives one frame for the whole clip."""
    if len(result.times) >= 2:
        hop = round(float(result.times[1] - result.times[0]) * SAMPLE_RATE)
    else:
        hop = round(result.audio_duration * SAMPLE_RATE)
    return Fraction(SAMPLE_RATE, max(1, hop))


def _frame_rate(result: Grounding, fps: float | None) -> Fraction:
    if fps is None:
        return step_rate(result)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or not 0 < fps <= 120:
        raise InputError(f"fps must be a number of frames per second in (0, 120], got {fps!r}; e.g. fps=10")
    return Fraction(fps).limit_denominator(1001)


def listenable(wave: torch.Tensor | None) -> np.ndarray:
    """The model's 16 kHz input [N] as a sound track: the normalised input (unit variance) is scaled down to a
    peak of 0.98 so AAC does not clip it; a raw input (normalize_audio=False) within [-1, 1] is kept as is."""
    if wave is None or not wave.numel():
        raise InputError("this Grounding carries no waveform (it was built without one); it cannot be played")
    w = wave.detach().float().cpu().numpy()
    peak = float(np.abs(w).max())
    return w * (_SOUND_PEAK / peak) if peak > 1 else w


def render_grounding_video(
    result: Grounding,
    out_path: str | os.PathLike[str],
    *,
    fps: float | None = None,
    layout: str = "combined",
    heads: HeadSelect = None,
    smooth: bool = True,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    max_side: int = GROUNDING_VIDEO_MAX_SIDE,
    crf: int = 20,
    preset: str = "veryfast",
    progress: bool = False,
) -> Path:
    """Write a still image and its sound as a video: the photo with the maps of each moment, in sync with the
    sound (H.264 yuv420p + AAC); returns the output path.

    The sound is the result's `waveform` (the model's 16 kHz mono input; a normalised one is scaled to a 0.98
    peak). fps: frames per second; None (default) = one frame per audio step (5.56 fps for the published
    models). Each frame shows the audio step nearest to its middle, normalised per head over the whole clip
    (as `save_png` shows a moment). layout: "combined" or "panels" (the plain photo, then one panel per head);
    heads, smooth, alpha, threshold: as in `overlay`. Size: the photo is downscaled first so all panels
    together are at most `max_side` (1280) pixels wide and high, then cut to even sides (yuv420p).
    The output path (.mp4, .mov, .m4v or .mkv) is checked before any work.
    """
    out = check_output_path(out_path, suffixes=VIDEO_SUFFIXES, what="output video")
    idx = head_indices(result.head_names, heads)
    panels = _panels(layout, len(idx))
    style = OverlayStyle(alpha, threshold)
    rate = _frame_rate(result, fps)
    wave = listenable(result.waveform)
    names = [result.head_names[i] for i in idx]
    (hs, ws), (he, we) = _panel_size(*display_size(result.geometry.original_size, max_side=max_side), panels, max_side)
    rgb = resized_rgb(source_rgb(result, None), (hs, ws))[:he, :we]
    volume = (result.smoothed() if smooth else result.heatmaps)[idx]
    colors = [head_colors(result.head_names)[i] for i in idx]
    on_screen = replace(result.geometry, original_size=(hs, ws))
    painter = FramePainter(names, colors, layout, (he, we), display_range(volume), style, on_screen)
    frames = max(1, math.ceil(result.audio_duration * rate))
    bar = progress_reporter(frames, "rendering", "frame", enabled=progress)
    with (
        closing(bar),
        VideoWriter(
            out, painter.width, he, rate, crf=crf, preset=preset, audio=array_audio_frames(wave, SAMPLE_RATE)
        ) as writer,
    ):
        for k in range(frames):
            step = result.step_at(min(float((k + Fraction(1, 2)) / rate), result.audio_duration))
            layers = painter.layers(step, volume[:, step])
            writer.write(painter.paint(rgb, layers))
            bar.update(1)
    return out
