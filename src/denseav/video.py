"""Grounding a whole video: its own soundtrack against its frames, streamed so memory stays bounded.

`ground_video(path)` decodes the audio track once, encodes it once, then walks the frames with PyAV
(`denseav.media`): decode -> (keep it? `FrameSampler`) -> the same preprocessing as `ground` -> batches of
`batch_size` -> image encoder -> similarity with the audio step nearest to the frame's time (`_FrameMaps`).
Only small per-frame maps on the patch grid are kept, never decoded full-resolution frames, so a long or 4K video
costs the same memory as a short one.

Which frames are used (documented defaults):

* `fps=None` samples at min(source rate, DEFAULT_MAX_FPS = 5 frames per second). The audio features come at
  5.56 steps per second (0.18 s apart), so 5 fps gives about one frame per audio step and loses little.
* `max_frames=DEFAULT_MAX_FRAMES = 600` then caps the total: a video longer than 2 minutes is sampled evenly
  at 600 / duration frames per second instead. On a 2-core CPU the image encoder takes ~1.5 s per 16:9 frame,
  so a 10-minute 1080p video needs ~15 minutes for its frames (plus ~6 for its audio; `render_video` then
  takes ~20 more at 30 fps); on a GPU the model's share drops to about a minute.
  Pass `max_frames=None` to lift the cap, or a smaller `fps` for speed.

Frames without sound: a sampled frame shown before the sound track starts (a delayed audio track) or after it
ends gets NO map - NaN maps, step -1, `has_sound` False, `null` in `to_dict()` - and is not run through the
model; `render_video` draws no overlay on such frames. `frames_without_sound` counts them.

Times: every time here (frame_times, times) is in seconds on the audio track's clock (0 = its first sample),
which is what the audio steps refer to; for ordinary files the video starts at 0 too.

Long audio: the soundtrack goes through `denseav.encode_audio`, so it is encoded exactly as `ground` would
encode it (clips over the model's `audio_window_seconds`, 30 s, run through HuBERT in overlapping windows).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from .api import EncodedAudio, ModelLike, encode_audio, get_model, ground
from .build import DTypeLike
from .errors import InputError
from .image import ImageGeometry, maps_to_original, preprocess_image
from .limits import DEFAULT_MAX_FPS, DEFAULT_MAX_FRAMES
from .media import MediaProbe, check_input_file, decode_frame, iter_display_frames, probe_media
from .modeling import AudioFeatures, DenseAV
from .pretrained import DEFAULT_MODEL
from .progress import Progress
from .progress import progress as progress_reporter
from .result import Grounding, peak_locations, temporal_blur

__all__ = [
    "DEFAULT_MAX_FPS",
    "DEFAULT_MAX_FRAMES",
    "FrameSampler",
    "VideoGrounding",
    "VideoInfo",
    "ground_video",
    "within_sound",
]

# A frame this close (seconds) outside the sound track still counts as inside: float rounding of the clip's end.
_SOUND_SLACK = 1e-6


def within_sound(seconds: float, audio_duration: float) -> bool:
    """Whether a frame at `seconds` (audio clock) is shown while the sound track plays: 0 <= seconds < duration."""
    return -_SOUND_SLACK <= seconds < audio_duration + _SOUND_SLACK


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
    frame_steps: [F] the audio step used for each frame: the one whose centre is nearest to the frame's time;
        -1 for a frame outside the sound track (see `has_sound`).
    frame_maps: [F, K, h, w] float32, raw similarity of the frame with that step (as `Grounding.heatmaps`);
        NaN for frames outside the sound track.
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
        silent = f", {self.frames_without_sound} outside the sound track (no map)" if self.frames_without_sound else ""
        return (
            f"VideoGrounding(heads={self.head_names}, frames={f} of {s.frame_count} at {self.fps:.3g} fps{silent}, "
            f"grid={h}x{w}, video={s.width}x{s.height} {s.duration:.2f} s, audio={self.audio_duration:.2f} s in "
            f"{len(self.times)} steps)"
        )

    @property
    def num_frames(self) -> int:
        return int(self.frame_maps.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.frame_maps.shape[1])

    @property
    def has_sound(self) -> torch.Tensor:
        """[F] bool: True where the sampled frame lies within the sound track (and so has a map)."""
        return self.frame_steps >= 0

    @property
    def frames_without_sound(self) -> int:
        return int((~self.has_sound).sum())

    @property
    def waveform(self) -> torch.Tensor | None:
        """The model's 16 kHz mono input [N] (normalised unless normalize_audio=False)."""
        return self.audio.waveform

    @property
    def audio_duration(self) -> float:
        return self.audio.duration

    def maps(self, smooth: bool = True) -> torch.Tensor:
        """[F, K, h, w]: `smoothed_maps` or the raw `frame_maps` (NaN for frames without sound)."""
        return self.smoothed_maps if smooth else self.frame_maps

    def frame_at(self, seconds: float) -> int:
        """Index of the sampled frame nearest to `seconds` (audio clock)."""
        return int(torch.argmin((self.frame_times - seconds).abs()))

    def _check_index(self, index: int) -> int:
        if not -self.num_frames <= index < self.num_frames:
            raise IndexError(f"frame {index} out of range for {self.num_frames} sampled frame(s)")
        return index % self.num_frames

    def upsampled(self, index: int, *, smooth: bool = True, mode: str = "bilinear") -> torch.Tensor:
        """[K, H, W]: one sampled frame's maps on the video's (displayed) pixel grid (NaN without sound)."""
        return maps_to_original(self.maps(smooth)[self._check_index(index)], self.geometry, mode=mode)

    def frame_grounding(self, index: int, model: ModelLike) -> Grounding:
        """The full time-resolved `Grounding` of one sampled frame against the whole soundtrack.

        Re-decodes that frame from `source.path` (so the file must still be there) and re-encodes it with
        `model` (the one used for `ground_video`); the audio features are reused.
        """
        rgb = decode_frame(self.source.path, int(self.frame_indices[self._check_index(index)]))
        # The short side after resizing equals image_size (or the native one when image_size was None, where
        # resizing to it is the identity), so this reproduces ground_video's preprocessing.
        result = ground(rgb, self.audio, model=model, image_size=min(self.geometry.resized_size))
        if not isinstance(result, Grounding):
            raise AssertionError("internal: one image and one clip give one Grounding")
        return result

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary: source, sampling, and per frame the peak of each head in video pixels
        (`step` and `peak` are null for frames outside the sound track)."""
        s = self.source
        h, w = self.frame_maps.shape[-2:]
        frames = []
        for f in range(self.num_frames):
            sounded = bool(self.has_sound[f])
            frames.append(
                {
                    "time": round(float(self.frame_times[f]), 4),
                    "index": int(self.frame_indices[f]),
                    "step": int(self.frame_steps[f]) if sounded else None,
                    "peak": peak_locations(self.frame_maps[f], self.head_names, self.geometry) if sounded else None,
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
            "frames_without_sound": self.frames_without_sound,
            "grid": {"height": h, "width": w},
            "frames": frames,
        }


# ------------------------------------------------------------------------------------------------ sampling


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


class FrameSampler:
    """Decides which decoded frames are analysed: the first frame in each 1/rate-second bin (counted from the
    first frame), at most `max_frames` of them. Called as want(index, seconds) by `iter_display_frames`."""

    def __init__(self, rate: float, source_fps: float | None, max_frames: int | None):
        self.rate = rate
        self.max_frames = max_frames
        # Half a source frame of slack, in units of sampling periods, so frames exactly on the grid are kept.
        self._slack = 0.5 * rate / source_fps if source_fps else 0.0
        self._last_bin = -1
        self.first_time: float | None = None
        self.kept = 0

    def __call__(self, index: int, seconds: float) -> bool:
        if self.first_time is None:
            self.first_time = seconds
        if self.max_frames is not None and self.kept >= self.max_frames:
            return False
        b = math.floor((seconds - self.first_time) * self.rate + self._slack)
        if b <= self._last_bin:
            return False
        self._last_bin = b
        self.kept += 1
        return True


# ------------------------------------------------------------------------------------------------ encoding


def _step_similarity(net: DenseAV, image_feats: Any, audio: EncodedAudio, steps: torch.Tensor) -> torch.Tensor:
    """[B, K, 3, h, w]: each frame against its own audio step and that step's two neighbours (edges repeated)."""
    total = audio.features.features.shape[1]
    idx = torch.stack([(steps - 1).clamp(min=0), steps, (steps + 1).clamp(max=total - 1)], dim=1)  # [B, 3]
    idx = idx.to(audio.features.features.device)
    b = idx.shape[0]
    cls = None if audio.features.cls is None else audio.features.cls.expand(b, -1)
    # Only the 3 steps each frame needs: the full [B, K, T, h, w] volume would be huge for long videos.
    three = AudioFeatures(audio.features.features[0][idx], cls, audio.features.mask[0][idx])
    return net(image_feats, three).float().cpu()


class _FrameMaps:
    """Collects the analysed frames: preprocesses each, runs the sounded ones through the model in batches, and
    keeps only their maps on the patch grid (NaN for frames outside the sound track)."""

    def __init__(self, net: DenseAV, audio: EncodedAudio, batch_size: int, image_size: int | None, bar: Progress):
        self.net, self.audio, self.batch_size, self.image_size, self.bar = net, audio, batch_size, image_size, bar
        self.geometry: ImageGeometry | None = None
        self.times: list[float] = []
        self.indices: list[int] = []
        self.steps: list[int] = []
        self._raw: list[torch.Tensor] = []  # per frame [K, h, w]
        self._smooth: list[torch.Tensor] = []
        self._batch: list[tuple[int, torch.Tensor]] = []  # (position among kept frames, pixels)
        self._step_times = audio.times.double()

    def _step_of(self, seconds: float) -> int:
        if not within_sound(seconds, self.audio.duration):
            return -1
        return int(torch.argmin((self._step_times - seconds).abs()))

    def add(self, path: Path, index: int, seconds: float, rgb: torch.Tensor) -> None:
        pixels, g = preprocess_image(
            rgb, image_size=self.image_size, patch_size=self.net.config.image_encoder.patch_size
        )
        if self.geometry is None:
            self.geometry = g
        elif g != self.geometry:
            h0, w0 = self.geometry.original_size
            raise InputError(
                f"the frame size of {str(path)!r} changes mid-stream (frame {index} is {g.original_size[1]}x"
                f"{g.original_size[0]}, the first was {w0}x{h0}); re-encode it to one size first"
            )
        self.times.append(seconds)
        self.indices.append(index)
        self.steps.append(self._step_of(seconds))
        nan = torch.full((len(self.net.head_names), *g.grid_size), torch.nan)
        self._raw.append(nan)
        self._smooth.append(nan)
        if self.steps[-1] >= 0:
            self._batch.append((len(self.steps) - 1, pixels))
            if len(self._batch) >= self.batch_size:
                self.flush()
        else:
            self.bar.update(1)

    def flush(self) -> None:
        if not self._batch:
            return
        positions = [p for p, _ in self._batch]
        with torch.inference_mode():
            feats = self.net.encode_image(torch.stack([px for _, px in self._batch]))
            sims = _step_similarity(self.net, feats, self.audio, torch.tensor([self.steps[p] for p in positions]))
        # Blurring the 3 steps [s-1, s, s+1] (edges repeated) and keeping the middle is the clip's blur at s.
        smooth = temporal_blur(sims, dim=2)[:, :, 1]
        for j, p in enumerate(positions):
            self._raw[p], self._smooth[p] = sims[j, :, 1], smooth[j]
        self.bar.update(len(positions))
        self._batch.clear()

    def finish(self, path: Path) -> tuple[ImageGeometry, torch.Tensor, torch.Tensor]:
        """(geometry, raw maps [F, K, h, w], smoothed maps) of every analysed frame."""
        self.flush()
        if self.geometry is None:
            raise InputError(f"{str(path)!r} contains no decodable video frames; the file may be truncated or corrupt")
        return self.geometry, torch.stack(self._raw), torch.stack(self._smooth)


# ----------------------------------------------------------------------------------------------- grounding


def _check_tracks(p: Path, info: MediaProbe) -> None:
    if not info.has_video:
        raise InputError(
            f"{str(p)!r} has no video track; ground_video needs a video with sound (for a still image and a "
            "sound file use denseav.ground)"
        )
    if not info.has_audio:
        raise InputError(
            f"{str(p)!r} has no audio track; DenseAV finds what a sound refers to, so the video needs sound. "
            "Add one (e.g. `ffmpeg -i video.mp4 -i sound.wav -c:v copy -shortest out.mp4`) or use "
            "denseav.ground(frame, sound_file)"
        )


def _check_counts(batch_size: object, max_frames: object) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}; e.g. batch_size=8")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames <= 0):
        raise InputError(f"max_frames must be a positive integer or None (no cap), got {max_frames!r}")


def _source_info(
    p: Path, info: MediaProbe, size: tuple[int, int], frames: int, span: float, duration: float
) -> VideoInfo:
    """The source's properties once every frame was decoded: `span` seconds from the first frame to the last."""
    source_fps = info.fps or (frames / duration if duration else 0.0)
    return VideoInfo(
        path=str(p),
        width=size[1],
        height=size[0],
        fps=float(source_fps),
        frame_count=frames,
        duration=span + (1.0 / source_fps if source_fps else 0.0),
        rotation=info.rotation,
        video_start=info.video_start,
        audio_start=info.audio_start,
    )


def ground_video(
    path: str | os.PathLike[str],
    *,
    model: ModelLike = DEFAULT_MODEL,
    fps: float | None = None,
    max_frames: int | None = DEFAULT_MAX_FRAMES,
    batch_size: int = 8,
    image_size: int | Literal["model"] | None = "model",
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
    progress: progress on stderr (a bar on a terminal, a line now and then in a log).
    Frames outside the sound track get no map (see the module docstring).

    Raises InputError for missing or unreadable files, a video without an audio (or video) track, an empty or
    too short soundtrack, or bad arguments.
    """
    p = check_input_file(path, "video")
    _check_counts(batch_size, max_frames)
    info = probe_media(p)
    _check_tracks(p, info)
    net = get_model(model, device=device, dtype=dtype)
    # The whole soundtrack, decoded and encoded once, exactly as `ground` encodes a sound file.
    audio = encode_audio(p, model=net, normalize=normalize_audio, channel=channel)
    if not isinstance(audio, EncodedAudio):
        raise AssertionError("internal: one clip gives one EncodedAudio")
    duration = info.duration or audio.duration
    rate = _sampling_rate(fps, info.fps, duration, max_frames)
    sampler = FrameSampler(rate, info.fps, max_frames)
    expected = min(max(1, math.ceil(duration * rate)), max_frames or math.inf)
    count, last_time = 0, 0.0
    size = net.config.image_encoder.training_size if image_size == "model" else image_size
    bar = progress_reporter(int(expected), "encoding frames", "frame", enabled=progress)
    try:
        frames = _FrameMaps(net, audio, batch_size, size, bar)
        for frame in iter_display_frames(p, want=sampler):
            count, last_time = frame.index + 1, frame.time
            if frame.rgb is not None:
                frames.add(p, frame.index, frame.time, frame.rgb)
        geometry, raw, smooth = frames.finish(p)
    finally:
        bar.close()
    source = _source_info(p, info, geometry.original_size, count, last_time - (sampler.first_time or 0.0), duration)
    return VideoGrounding(
        frame_times=torch.tensor(frames.times, dtype=torch.float64),
        frame_indices=torch.tensor(frames.indices, dtype=torch.int64),
        frame_steps=torch.tensor(frames.steps, dtype=torch.int64),
        frame_maps=raw,
        smoothed_maps=smooth,
        head_names=net.head_names,
        times=audio.times,
        geometry=geometry,
        fps=rate,
        source=source,
        audio=audio,
    )
