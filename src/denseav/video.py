"""Grounding a whole video: its own soundtrack against its frames, streamed so memory stays bounded.

`ground_video(path)` decodes the audio track once, encodes it once, then walks the frames with PyAV:
decode -> (keep it?) -> the same preprocessing as `ground` -> batches of `batch_size` -> image encoder ->
similarity with the audio step nearest to the frame's time. Only small per-frame maps on the patch grid are
kept, never decoded full-resolution frames, so a long or 4K video costs the same memory as a short one.

Which frames are used (documented defaults):

* `fps=None` samples at min(source rate, DEFAULT_MAX_FPS = 5 frames per second). The audio features come at
  5.56 steps per second (0.18 s apart), so 5 fps gives about one frame per audio step and loses little.
* `max_frames=DEFAULT_MAX_FRAMES = 600` then caps the total: a video longer than 2 minutes is sampled evenly
  at 600 / duration frames per second instead. On a 2-core CPU the image encoder takes ~1.5 s per 16:9 frame,
  so a 10-minute 1080p video needs ~15 minutes for its frames (plus ~6 for its audio; `render_video` then
  takes ~20 more at 30 fps); on a GPU the model's share drops to about a minute.
  Pass `max_frames=None` to lift the cap, or a smaller `fps` for speed.

Times: every time here (frame_times, times) is in seconds on the audio track's clock (0 = its first sample),
which is what the audio steps refer to; for ordinary files the video starts at 0 too.

Long audio: the soundtrack goes through `denseav.encode_audio`, so it is encoded exactly as `ground` would
encode it (clips over the model's `audio_window_seconds`, 30 s, run through HuBERT in overlapping windows).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from tqdm.auto import tqdm

from .api import EncodedAudio, EncodedImage, ModelLike, encode_audio, get_model, similarity
from .build import DTypeLike
from .errors import InputError
from .image import DEFAULT_IMAGE_SIZE, ImageGeometry, maps_to_original, preprocess_image
from .modeling import DenseAV
from .pretrained import DEFAULT_MODEL
from .result import Grounding

__all__ = [
    "DEFAULT_MAX_FPS",
    "DEFAULT_MAX_FRAMES",
    "VideoFileNotFoundError",
    "VideoGrounding",
    "VideoInfo",
    "ground_video",
    "iter_display_frames",
]

DEFAULT_MAX_FPS = 5.0
DEFAULT_MAX_FRAMES = 600

# The demo's 3-tap temporal blur (see result.temporal_blur): exp(-x^2 / 2) at x = -2, 0, 2, normalised.
_TAPS = torch.exp(-(torch.tensor([-2.0, 0.0, 2.0]) ** 2) / 2)
_TAPS = _TAPS / _TAPS.sum()


class VideoFileNotFoundError(InputError, FileNotFoundError):
    """A video path that does not exist (catchable as InputError or FileNotFoundError)."""


@dataclass(frozen=True)
class VideoInfo:
    """What the source video is. Sizes are as displayed (rotation metadata applied)."""

    path: str
    width: int
    height: int
    fps: float  # the video stream's average frame rate
    frame_count: int  # frames decoded
    duration: float  # seconds from the first frame to the end of the last
    rotation: int = 0  # degrees counter-clockwise applied for display (phone videos: often 90 or -90)
    video_start: float = 0.0  # stream start times in the file (seconds); times elsewhere count from audio_start
    audio_start: float = 0.0


@dataclass
class VideoGrounding:
    """Where in each sampled frame the sound at that moment comes from, per head.

    frame_times: [F] seconds (audio clock) of each sampled frame.
    frame_indices: [F] index of each sampled frame among all decoded frames of the source.
    frame_steps: [F] the audio step used for each frame: the one whose centre is nearest to the frame's time
        (frames past the end of the audio use the last step).
    frame_maps: [F, K, h, w] float32, raw similarity of the frame with that step (as `Grounding.heatmaps`).
    smoothed_maps: [F, K, h, w] the same with the demo's 3-tap temporal blur over the neighbouring steps
        (what `Grounding.smoothed()` gives at that step); the renderer shows these by default.
    times: [T] centres of every audio step; audio: the encoded soundtrack (features [1, T, C], waveform), so a
        caller can recompute a frame's whole time-resolved volume with `frame_grounding`.
    geometry: how every frame was preprocessed (all frames share one size).
    fps: the sampling rate actually used; source: the video's own properties.
    """

    frame_times: torch.Tensor
    frame_indices: torch.Tensor
    frame_steps: torch.Tensor
    frame_maps: torch.Tensor
    smoothed_maps: torch.Tensor
    head_names: tuple[str, ...]
    times: torch.Tensor
    geometry: ImageGeometry
    fps: float
    source: VideoInfo
    audio: EncodedAudio = field(repr=False)

    def __repr__(self) -> str:
        f, _k, h, w = self.frame_maps.shape
        s = self.source
        return (
            f"VideoGrounding(heads={self.head_names}, frames={f} of {s.frame_count} at {self.fps:.3g} fps, "
            f"grid={h}x{w}, video={s.width}x{s.height} {s.duration:.2f} s, audio steps={len(self.times)})"
        )

    @property
    def num_frames(self) -> int:
        return self.frame_maps.shape[0]

    @property
    def num_heads(self) -> int:
        return self.frame_maps.shape[1]

    @property
    def waveform(self) -> torch.Tensor | None:
        """The model's 16 kHz mono input [N] (normalised unless normalize_audio=False)."""
        return self.audio.waveform

    @property
    def audio_duration(self) -> float:
        return self.audio.duration

    def maps(self, smooth: bool = True) -> torch.Tensor:
        """[F, K, h, w]: `smoothed_maps` or the raw `frame_maps`."""
        return self.smoothed_maps if smooth else self.frame_maps

    def frame_at(self, seconds: float) -> int:
        """Index of the sampled frame nearest to `seconds` (audio clock)."""
        return int(torch.argmin((self.frame_times - seconds).abs()))

    def upsampled(self, index: int, *, smooth: bool = True, mode: str = "bilinear") -> torch.Tensor:
        """[K, H, W]: one sampled frame's maps on the video's (displayed) pixel grid."""
        if not -self.num_frames <= index < self.num_frames:
            raise IndexError(f"frame {index} out of range for {self.num_frames} sampled frame(s)")
        return maps_to_original(self.maps(smooth)[index], self.geometry, mode=mode)

    def frame_grounding(self, index: int, model: ModelLike) -> Grounding:
        """The full time-resolved `Grounding` of one sampled frame against the whole soundtrack.

        Re-decodes that frame from `source.path` (so the file must still be there) and re-encodes it with
        `model` (the one used for `ground_video`); the audio features are reused.
        """
        if not -self.num_frames <= index < self.num_frames:
            raise IndexError(f"frame {index} out of range for {self.num_frames} sampled frame(s)")
        target = int(self.frame_indices[index])
        net = get_model(model)
        for i, _, rgb in iter_display_frames(self.source.path, want=lambda i, t: i == target):
            if i == target and rgb is not None:
                # The short side after resizing equals image_size (or the native one when image_size was None,
                # where resizing to it is the identity), so this reproduces ground_video's preprocessing.
                pixels, geometry = preprocess_image(
                    rgb, image_size=min(self.geometry.resized_size), patch_size=net.config.image_encoder.patch_size
                )
                with torch.inference_mode():
                    feats = net.encode_image(pixels[None])
                return similarity(EncodedImage(feats, geometry, net, rgb), self.audio, model=net)
        raise InputError(
            f"frame {target} could not be decoded again from {self.source.path!r}; has the file changed since "
            "ground_video ran?"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary: source, sampling, and per frame the peak of each head in video pixels."""
        s = self.source
        h, w = self.frame_maps.shape[-2:]
        hr, wr = self.geometry.resized_size
        flat = self.frame_maps.flatten(2)  # [F, K, h*w]
        values, where = flat.max(dim=2)
        frames = []
        for f in range(self.num_frames):
            peaks = {}
            for k, name in enumerate(self.head_names):
                gy, gx = divmod(int(where[f, k]), w)
                peaks[name] = {
                    "x": round((gx * 8 + 4) * s.width / wr, 1),
                    "y": round((gy * 8 + 4) * s.height / hr, 1),
                    "value": float(values[f, k]),
                }
            frames.append(
                {
                    "time": round(float(self.frame_times[f]), 4),
                    "index": int(self.frame_indices[f]),
                    "step": int(self.frame_steps[f]),
                    "peak": peaks,
                }
            )
        return {
            "heads": list(self.head_names),
            "source": {
                "path": s.path,
                "width": s.width,
                "height": s.height,
                "fps": s.fps,
                "frames": s.frame_count,
                "seconds": round(s.duration, 4),
                "rotation": s.rotation,
            },
            "sampled_fps": self.fps,
            "audio_seconds": round(self.audio.duration, 4),
            "grid": {"height": h, "width": w},
            "frames": frames,
        }


# ----------------------------------------------------------------------------------------------- decoding


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(os.fspath(path))
    if not p.exists():
        raise VideoFileNotFoundError(f"video file not found: {str(p)!r}; check the path")
    if p.is_dir():
        raise InputError(f"{str(p)!r} is a directory, not a video file; pass the path of a video inside it")
    return p


def _open(p: Path) -> av.container.InputContainer:
    try:
        return av.open(str(p), mode="r")
    except av.error.FFmpegError as e:
        raise InputError(
            f"could not open {str(p)!r} as a video: {getattr(e, 'strerror', None) or e}; pass an MP4, MOV, MKV, "
            "WebM or another file FFmpeg reads"
        ) from e


def _seconds(value: int | None, time_base: Any) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


def _rotate(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Apply the display matrix's counter-clockwise rotation (multiples of 90 degrees)."""
    k = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def iter_display_frames(
    path: str | os.PathLike,
    *,
    want: Callable[[int, float], bool] | None = None,
    size: tuple[int, int] | None = None,
) -> Iterator[tuple[int, float, torch.Tensor | None]]:
    """Stream a video's frames: (index, seconds on the audio clock, RGB uint8 [3, H, W] or None).

    want(index, seconds) -> bool says which frames to convert to RGB (None: all); the others are decoded (the
    codec needs them) but yield None, which keeps skipping cheap. size=(height, width) scales the displayed
    frame with FFmpeg's swscale (bicubic) while converting. Rotation metadata is applied.
    """
    p = _check_path(path)
    with _open(p) as container:
        if not container.streams.video:
            raise InputError(f"{str(p)!r} has no video track; pass a video file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame/slice threads: decoding is a large part of a long run
        audio_start = 0.0
        if container.streams.audio:
            a = container.streams.audio[0]
            audio_start = _seconds(a.start_time, a.time_base) or 0.0
        index = 0
        try:
            for frame in container.decode(stream):
                t = (frame.time if frame.time is not None else index / float(stream.average_rate or 25)) - audio_start
                if want is not None and not want(index, t):
                    yield index, t, None
                    index += 1
                    continue
                rotation = int(frame.rotation or 0)
                quarter = round(rotation / 90) % 2 == 1
                if size is not None:
                    h, w = size
                    sw, sh = (h, w) if quarter else (w, h)  # the stored frame is unrotated
                    rgb = frame.to_ndarray(format="rgb24", width=sw, height=sh, interpolation="BICUBIC")
                else:
                    rgb = frame.to_ndarray(format="rgb24")
                rgb = _rotate(rgb, rotation)
                yield index, t, torch.from_numpy(rgb).permute(2, 0, 1)
                index += 1
        except av.error.FFmpegError as e:
            raise InputError(
                f"could not decode the video frames of {str(p)!r} (failed after {index} frames): "
                f"{getattr(e, 'strerror', None) or e}; the file may be truncated or corrupt"
            ) from e


def _probe(p: Path) -> dict[str, Any]:
    """Stream facts needed before decoding: presence of tracks, rates, duration, start times."""
    with _open(p) as c:
        if not c.streams.video:
            raise InputError(
                f"{str(p)!r} has no video track; ground_video needs a video with sound (for a still image and a "
                "sound file use denseav.ground)"
            )
        if not c.streams.audio:
            raise InputError(
                f"{str(p)!r} has no audio track; DenseAV finds what a sound refers to, so the video needs sound. "
                "Add one (e.g. `ffmpeg -i video.mp4 -i sound.wav -c:v copy -shortest out.mp4`) or use "
                "denseav.ground(frame, sound_file)"
            )
        v, a = c.streams.video[0], c.streams.audio[0]
        rate = float(v.average_rate or v.guessed_rate or 0) or None
        duration = _seconds(v.duration, v.time_base)
        if not duration and c.duration:
            duration = c.duration / 1_000_000
        return {
            "fps": rate,
            "duration": duration,
            "frames": int(v.frames or 0),
            "video_start": _seconds(v.start_time, v.time_base) or 0.0,
            "audio_start": _seconds(a.start_time, a.time_base) or 0.0,
        }


# ------------------------------------------------------------------------------------------------ frames


def _sampling_rate(
    fps: float | None, source_fps: float | None, duration: float | None, max_frames: int | None
) -> float:
    """Frames per second to keep (documented in the module docstring)."""
    if fps is not None:
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
            raise InputError(f"fps must be a positive number of frames per second, got {fps!r}; e.g. fps=2")
        rate = float(fps)
    else:
        rate = DEFAULT_MAX_FPS
    if source_fps:
        rate = min(rate, source_fps)
    if max_frames is not None and duration:
        rate = min(rate, max_frames / duration)
    return rate


def _frame_similarity(
    net: DenseAV, image_feats: Any, audio: EncodedAudio, steps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw and 3-tap-smoothed maps [B, K, N] of each frame with its own audio step (and that step's neighbours)."""
    total = audio.features.features.shape[1]
    idx = torch.stack([(steps - 1).clamp(min=0), steps, (steps + 1).clamp(max=total - 1)], dim=1)  # [B, 3]
    idx = idx.to(audio.features.features.device)
    feats = audio.features.features[0][idx]  # [B, 3, C]
    mask = audio.features.mask[0][idx]
    b = feats.shape[0]
    cls = None if audio.features.cls is None else audio.features.cls.expand(b, -1)
    # Only the 3 steps each frame needs: the full [B, K, T, N] volume would be huge for long videos.
    sims = net.similarity(image_feats.features, feats, audio_mask=mask, image_cls=image_feats.cls, audio_cls=cls)
    sims = sims.float().cpu()  # [B, K, 3, N]
    smoothed = (sims * _TAPS.view(1, 1, 3, 1)).sum(dim=2)
    return sims[:, :, 1], smoothed


def ground_video(
    path: str | os.PathLike,
    *,
    model: ModelLike = DEFAULT_MODEL,
    fps: float | None = None,
    max_frames: int | None = DEFAULT_MAX_FRAMES,
    batch_size: int = 8,
    image_size: int | None = DEFAULT_IMAGE_SIZE,
    normalize_audio: bool = True,
    channel: str | int = "mix",
    device: str | torch.device | None = None,
    dtype: DTypeLike = None,
    progress: bool = True,
) -> VideoGrounding:
    """Ground a video's own soundtrack in its frames: per sampled frame, where the sound at that moment is.

    path: any video FFmpeg reads (MP4, MOV, MKV, WebM, ...) with an audio track.
    fps: frames per second to analyse; None = min(source rate, 5). max_frames: cap on analysed frames (default
        600; longer videos are sampled evenly); None = no cap. See the module docstring for timings.
    batch_size: frames per image-encoder call (memory vs speed).
    image_size, normalize_audio, channel, device, dtype: as in `denseav.ground`.
    progress: tqdm progress bars on stderr.

    Raises InputError for missing or unreadable files, a video without an audio (or video) track, an empty or
    too short soundtrack, or bad arguments.
    """
    p = _check_path(path)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}; e.g. batch_size=8")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames <= 0):
        raise InputError(f"max_frames must be a positive integer or None (no cap), got {max_frames!r}")
    info = _probe(p)
    net = get_model(model, device=device, dtype=dtype)

    # The whole soundtrack, decoded and encoded once, exactly as `ground` encodes a sound file.
    audio = encode_audio(p, model=net, normalize=normalize_audio, channel=channel)
    step_times = audio.times.double()
    duration = info["duration"] or audio.duration
    rate = _sampling_rate(fps, info["fps"], duration, max_frames)
    # Half a source frame of slack, in units of sampling periods, so frames exactly on the grid are kept.
    slack = 0.5 * rate / info["fps"] if info["fps"] else 0.0
    expected = max(1, math.ceil(duration * rate))
    if max_frames is not None:
        expected = min(expected, max_frames)

    kept_times: list[float] = []
    kept_indices: list[int] = []
    kept_steps: list[int] = []
    raw_maps: list[torch.Tensor] = []
    smooth_maps: list[torch.Tensor] = []
    geometry: ImageGeometry | None = None
    batch: list[torch.Tensor] = []
    batch_steps: list[int] = []
    state = {"last_bin": -1, "first": None, "count": 0}

    def want(index: int, t: float) -> bool:
        if state["first"] is None:
            state["first"] = t
        if max_frames is not None and state["count"] >= max_frames:
            return False
        b = math.floor((t - state["first"]) * rate + slack)
        if b > state["last_bin"]:
            state["last_bin"] = b
            state["count"] += 1
            return True
        return False

    def flush() -> None:
        if not batch:
            return
        with torch.inference_mode():
            feats = net.encode_image(torch.stack(batch))
            raw, smooth = _frame_similarity(net, feats, audio, torch.tensor(batch_steps))
        h, w = feats.grid
        raw_maps.append(raw.unflatten(-1, (h, w)))
        smooth_maps.append(smooth.unflatten(-1, (h, w)))
        bar.update(len(batch))
        batch.clear()
        batch_steps.clear()

    count = 0
    last_time = 0.0
    bar = tqdm(total=expected, desc="encoding frames", unit="frame", disable=not progress)
    try:
        for index, t, rgb in iter_display_frames(p, want=want):
            count, last_time = index + 1, t
            if rgb is None:
                continue
            pixels, g = preprocess_image(rgb, image_size=image_size, patch_size=net.config.image_encoder.patch_size)
            if geometry is None:
                geometry = g
            elif g != geometry:
                raise InputError(
                    f"the frame size of {str(p)!r} changes mid-stream (frame {index} is "
                    f"{g.original_size[1]}x{g.original_size[0]}, the first was "
                    f"{geometry.original_size[1]}x{geometry.original_size[0]}); re-encode it to one size first"
                )
            step = int(torch.argmin((step_times - t).abs()))
            kept_times.append(t)
            kept_indices.append(index)
            kept_steps.append(step)
            batch.append(pixels)
            batch_steps.append(step)
            if len(batch) >= batch_size:
                flush()
        flush()
    finally:
        bar.close()
    if geometry is None:
        raise InputError(f"{str(p)!r} contains no decodable video frames; the file may be truncated or corrupt")

    source_fps = info["fps"] or (count / duration if duration else 0.0)
    first = state["first"] or 0.0
    h0, w0 = geometry.original_size
    source = VideoInfo(
        path=str(p),
        width=w0,
        height=h0,
        fps=float(source_fps),
        frame_count=count,
        duration=(last_time - first) + (1.0 / source_fps if source_fps else 0.0),
        rotation=_first_rotation(p),
        video_start=info["video_start"],
        audio_start=info["audio_start"],
    )
    return VideoGrounding(
        frame_times=torch.tensor(kept_times, dtype=torch.float64),
        frame_indices=torch.tensor(kept_indices, dtype=torch.int64),
        frame_steps=torch.tensor(kept_steps, dtype=torch.int64),
        frame_maps=torch.cat(raw_maps),
        smoothed_maps=torch.cat(smooth_maps),
        head_names=net.head_names,
        times=audio.times,
        geometry=geometry,
        fps=rate,
        source=source,
        audio=audio,
    )


def _first_rotation(p: Path) -> int:
    """The display rotation of the first frame (for VideoInfo; frames themselves are rotated as decoded)."""
    with _open(p) as c:
        for frame in c.decode(c.streams.video[0]):
            return int(frame.rotation or 0)
    return 0
