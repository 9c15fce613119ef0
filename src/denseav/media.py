"""Media files with PyAV: probing, streaming a video's frames and sound, and writing H.264 + AAC files.

Everything that touches a container lives here, so the grounding (`denseav.video`) and the drawing
(`denseav.render`) code never talk to FFmpeg themselves.

Clocks: a frame's time is given in seconds on the AUDIO track's clock (0 = the audio stream's start), which is
what the model's audio steps refer to; for ordinary files both streams start at 0 and the clocks agree.

Writing: `VideoWriter` encodes RGB frames as H.264 (libx264, else libopenh264, else MPEG-4 part 2) in yuv420p,
tagged BT.709, and muxes a sound track in step with them (`AudioCopier`, AAC; mono stays mono, anything else
becomes stereo). yuv420p stores colour at half resolution, so both sides of a frame must be even.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np
import torch

from .errors import InputError, OutputError
from .paths import check_input_file

__all__ = [
    "VIDEO_SUFFIXES",
    "AudioCopier",
    "DisplayFrame",
    "MediaProbe",
    "VideoWriter",
    "array_audio_frames",
    "check_input_file",
    "decode_frame",
    "file_audio_frames",
    "iter_display_frames",
    "probe_media",
    "video_encoder",
]

# Containers VideoWriter writes (all take H.264 + AAC).
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")
_ENCODERS = ("libx264", "libopenh264", "mpeg4")  # preference order; mpeg4 only as a last resort
_AUDIO_BLOCK = 1024  # samples per frame when an array becomes a sound track (one AAC frame)


def _reason(e: BaseException) -> str:
    return str(getattr(e, "strerror", None) or e)


# ------------------------------------------------------------------------------------------------- reading


def _open(p: Path) -> av.container.InputContainer:
    try:
        return av.open(str(p), mode="r")
    except av.error.FFmpegError as e:
        raise InputError(
            f"could not open {str(p)!r} as a video: {_reason(e)}; pass an MP4, MOV, MKV, WebM or another file "
            "FFmpeg reads"
        ) from e


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


@dataclass(frozen=True)
class MediaProbe:
    """What a file holds, read before decoding it. Times in seconds on the file's own clock."""

    has_video: bool
    has_audio: bool
    rate: Fraction | None  # the video stream's average (else guessed) frame rate
    duration: float | None  # of the video stream (else the container)
    frames: int  # as the header says (0: unknown)
    video_start: float
    audio_start: float
    rotation: int  # degrees counter-clockwise to display the first frame upright

    @property
    def fps(self) -> float | None:
        return float(self.rate) if self.rate else None


def probe_media(path: str | os.PathLike[str]) -> MediaProbe:
    """Stream facts of a video file: tracks, frame rate, duration, start times, display rotation."""
    p = check_input_file(path, "video")
    with _open(p) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        rate = duration = None
        rotation = 0
        if v is not None:
            rate = Fraction(v.average_rate or v.guessed_rate or 0) or None
            duration = _seconds(v.duration, v.time_base)
            try:
                for frame in c.decode(v):  # the display matrix rides on decoded frames
                    rotation = int(frame.rotation or 0)
                    break
            except av.error.FFmpegError:
                pass  # undecodable frames are reported, with the path, when the frames are read
        if not duration and c.duration:
            duration = c.duration / 1_000_000
        return MediaProbe(
            has_video=v is not None,
            has_audio=a is not None,
            rate=rate,
            duration=duration,
            frames=int(v.frames or 0) if v is not None else 0,
            video_start=(_seconds(v.start_time, v.time_base) or 0.0) if v is not None else 0.0,
            audio_start=(_seconds(a.start_time, a.time_base) or 0.0) if a is not None else 0.0,
            rotation=rotation,
        )


@dataclass(frozen=True)
class DisplayFrame:
    """One decoded video frame: its index among all frames, its time (audio clock), and RGB uint8 [3, H, W]
    as displayed (rotation applied), or None for a frame that was decoded but not converted."""

    index: int
    time: float
    rgb: torch.Tensor | None


def _to_display_rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> torch.Tensor:
    rotation = int(frame.rotation or 0)
    quarter = round(rotation / 90) % 4
    rgb: np.ndarray
    if size is None:
        rgb = frame.to_ndarray(format="rgb24")
    else:
        h, w = size
        sw, sh = (h, w) if quarter % 2 else (w, h)  # the stored frame is unrotated
        rgb = frame.to_ndarray(format="rgb24", width=sw, height=sh, interpolation="BICUBIC")
    if quarter:
        rgb = np.ascontiguousarray(np.rot90(rgb, quarter))  # the display matrix turns counter-clockwise
    return torch.from_numpy(rgb).permute(2, 0, 1)


def iter_display_frames(
    path: str | os.PathLike[str],
    *,
    want: Callable[[int, float], bool] | None = None,
    size: tuple[int, int] | None = None,
) -> Generator[DisplayFrame, None, None]:
    """Stream a video's frames as `DisplayFrame`s (index, seconds on the audio clock, RGB or None).

    want(index, seconds) -> bool says which frames to convert to RGB (None: all); the others are decoded (the
    codec needs them) but carry None, which keeps skipping cheap. size=(height, width) scales the displayed
    frame with FFmpeg's swscale (bicubic) while converting. Rotation metadata is applied.
    """
    p = check_input_file(path, "video")
    with _open(p) as container:
        if not container.streams.video:
            raise InputError(f"{str(p)!r} has no video track; pass a video file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame/slice threads: decoding is a large part of a long run
        audio = container.streams.audio[0] if container.streams.audio else None
        audio_start = (_seconds(audio.start_time, audio.time_base) or 0.0) if audio is not None else 0.0
        fallback_rate = float(stream.average_rate or 25)
        index = 0
        try:
            for frame in container.decode(stream):
                t = (frame.time if frame.time is not None else index / fallback_rate) - audio_start
                keep = want is None or want(index, t)
                yield DisplayFrame(index, t, _to_display_rgb(frame, size) if keep else None)
                index += 1
        except av.error.FFmpegError as e:
            raise InputError(
                f"could not decode the video frames of {str(p)!r} (failed after {index} frames): {_reason(e)}; "
                "the file may be truncated or corrupt"
            ) from e


def decode_frame(path: str | os.PathLike[str], index: int, *, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Frame `index` of a video decoded again (RGB uint8 [3, H, W] as displayed)."""
    frames = iter_display_frames(path, want=lambda i, _t: i == index, size=size)
    try:
        for frame in frames:
            if frame.rgb is not None:
                return frame.rgb
    finally:
        frames.close()  # and with it the file
    raise InputError(f"frame {index} could not be decoded again from {os.fspath(path)!r}; has the file changed?")


def file_audio_frames(path: str | os.PathLike[str]) -> Iterator[av.AudioFrame]:
    """The decoded frames of a file's first audio track (nothing if it has none)."""
    p = check_input_file(path, "video")
    try:
        with _open(p) as c:
            if c.streams.audio:
                yield from c.decode(c.streams.audio[0])
    except av.error.FFmpegError as e:
        raise InputError(
            f"could not decode the audio of {str(p)!r}: {_reason(e)}; the file may be truncated or corrupt"
        ) from e


def array_audio_frames(wave: np.ndarray, sample_rate: int) -> Iterator[av.AudioFrame]:
    """A mono float waveform [N] as audio frames of `_AUDIO_BLOCK` samples."""
    samples = np.ascontiguousarray(wave, dtype=np.float32).reshape(1, -1)
    for start in range(0, samples.shape[1], _AUDIO_BLOCK):
        frame = av.AudioFrame.from_ndarray(samples[:, start : start + _AUDIO_BLOCK], format="flt", layout="mono")
        frame.sample_rate = sample_rate
        yield frame


# ------------------------------------------------------------------------------------------------- writing


def video_encoder() -> str:
    """The H.264 encoder this PyAV build has (libx264, else libopenh264), else MPEG-4 part 2 as a fallback."""
    for name in _ENCODERS:
        if name in av.codecs_available:
            try:
                av.codec.Codec(name, "w")
            except av.error.FFmpegError:
                continue
            return name
    raise InputError("this PyAV/FFmpeg build has no H.264 or MPEG-4 encoder; install the PyPI `av` wheel")


class AudioCopier:
    """Encodes a sound track into an output container as AAC, in step with the video written beside it.

    frames: the source's decoded audio frames (any rate, layout and sample format).
    start: output time (seconds) at which the first source sample plays; negative drops that much from the
        front (the source's sound began before the first video frame).
    """

    def __init__(self, container: av.container.OutputContainer, frames: Iterator[av.AudioFrame], start: float):
        self._container = container
        self._frames = frames
        self._pending = next(frames, None)
        self._to_drop = max(0.0, -start)  # seconds still to drop from the front
        self._written = max(0.0, start)  # output seconds handed to the encoder so far
        self._stream = self._add_stream(self._pending) if self._pending is not None else None

    def _add_stream(self, first: av.AudioFrame) -> av.AudioStream:
        channels = len(first.layout.channels)
        rate = first.sample_rate
        supported = av.codec.Codec("aac", "w").audio_rates
        if supported and rate not in supported:
            rate = 48_000  # an AAC-incompatible rate: the encoder's resampler converts
        stream = self._container.add_stream("aac", rate=rate, layout="mono" if channels == 1 else "stereo")
        stream.bit_rate = 64_000 * min(2, channels)
        return stream

    def _trimmed(self, frame: av.AudioFrame) -> av.AudioFrame | None:
        """The frame without the part still to be dropped (None: all of it)."""
        n = min(frame.samples, round(self._to_drop * frame.sample_rate))
        if n <= 0:
            return frame
        self._to_drop = max(0.0, self._to_drop - n / frame.sample_rate)
        if n >= frame.samples:
            return None
        arr: Any = frame.to_ndarray()  # the source's own sample format, handed back to from_ndarray as is
        # Planar: [channels, samples]; packed: [1, samples * channels].
        arr = arr[:, n:] if frame.format.is_planar else arr[:, n * len(frame.layout.channels) :]
        out = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=frame.format.name, layout=frame.layout.name)
        out.sample_rate = frame.sample_rate
        return out

    def write_until(self, seconds: float | None) -> None:
        """Encode source audio until the output holds `seconds` of it (None: all that is left)."""
        while self._stream is not None and self._pending is not None:
            if seconds is not None and self._written >= seconds:
                return
            frame = self._trimmed(self._pending)
            if frame is not None:
                rate = frame.sample_rate
                frame.pts = round(self._written * rate)
                frame.time_base = Fraction(1, rate)
                self._written += frame.samples / rate
                self._container.mux(self._stream.encode(frame))
            self._pending = next(self._frames, None)

    def finish(self) -> None:
        self.write_until(None)
        if self._stream is not None:
            self._container.mux(self._stream.encode(None))


class VideoWriter:
    """Writes RGB frames at a constant rate as an H.264 video with an optional AAC sound track.

    Use as a context manager: on leaving normally the streams are flushed and the file closed; on an error the
    partial file is deleted, so a truncated file that looks finished is never left behind.
    width, height: even numbers (yuv420p). rate: frames per second. crf, preset: libx264's quality and speed
    (other encoders get a bit rate instead). audio, audio_start: see `AudioCopier`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        rate: Fraction,
        *,
        crf: int = 20,
        preset: str = "veryfast",
        audio: Iterator[av.AudioFrame] | None = None,
        audio_start: float = 0.0,
    ):
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise InputError(f"video frames must have even sides for yuv420p, got {width}x{height}")
        self.path = Path(os.fspath(path))
        self.size = (height, width)
        self.rate = rate
        self.frames_written = 0
        try:
            self._container = av.open(str(self.path), mode="w")
        except av.error.FFmpegError as e:
            raise OutputError(f"cannot write {str(self.path)!r}: {_reason(e)}") from e
        try:
            self._stream = self._add_video_stream(crf, preset)
            self._audio = AudioCopier(self._container, audio, audio_start) if audio is not None else None
        except BaseException:
            self._abort()
            raise

    def _add_video_stream(self, crf: int, preset: str) -> av.VideoStream:
        codec = video_encoder()
        stream = self._container.add_stream(codec, rate=self.rate)
        if not isinstance(stream, av.VideoStream):
            raise AssertionError(f"internal: {codec} is not a video encoder")
        stream.height, stream.width = self.size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / self.rate  # frames count in 1/rate; the muxer picks its own
        if codec == "libx264":
            stream.options = {"crf": str(int(crf)), "preset": preset}
        else:
            stream.bit_rate = int(self.size[0] * self.size[1] * float(self.rate) * 0.2)
        cc = stream.codec_context
        # Tag what we convert with, so players do not guess BT.601 vs BT.709 from the size.
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
        return stream

    def write(self, rgb: np.ndarray) -> None:
        """Append one uint8 RGB frame [H, W, 3] of the writer's size; the sound follows up to its end."""
        if rgb.shape != (*self.size, 3):
            raise AssertionError(f"internal: frame {rgb.shape} does not fit the video {self.size}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709")
        frame.pts = self.frames_written
        frame.time_base = 1 / self.rate
        self._container.mux(self._stream.encode(frame))
        self.frames_written += 1
        if self._audio is not None:
            self._audio.write_until(float(self.frames_written / self.rate))

    def close(self) -> None:
        self._container.mux(self._stream.encode(None))
        if self._audio is not None:
            self._audio.finish()
        self._container.close()

    def _abort(self) -> None:
        self._container.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is not None:
            self._abort()
            return
        try:
            self.close()
        except BaseException:
            self.path.unlink(missing_ok=True)
            raise
