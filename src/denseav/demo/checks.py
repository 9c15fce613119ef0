"""Uploads checked from their headers, before anything is decoded, against the demo's `Limits`.

Durations come from the container's header; where a header does not say (some raw streams), the packets are
counted without decoding them. Every refusal is an InputError whose message says the limit and what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from .limits import Limits

__all__ = ["MediaInfo", "check_image", "check_media"]


@dataclass(frozen=True)
class MediaInfo:
    """What a media file's header says."""

    seconds: float
    has_audio: bool
    has_video: bool


def _check_size(path: Path, limits: Limits, what: str) -> None:
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise InputError(
            f"the {what} file is {size / 1e6:.0f} MB; this demo accepts files up to {limits.max_file_mb:g} MB. "
            "Upload a shorter or more compressed file."
        )


def _header_seconds(container: av.container.InputContainer) -> float | None:
    if container.duration:  # microseconds (av.time_base)
        return container.duration / 1_000_000
    spans = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
    return max(spans) if spans else None


def _counted_seconds(container: av.container.InputContainer, stop_after: float) -> float:
    """Seconds of the longest stream, summing packet durations (no decoding); stops once past `stop_after`."""
    seen: dict[int, float] = {}
    for packet in container.demux():
        if packet.duration and packet.time_base:
            key = packet.stream.index
            seen[key] = seen.get(key, 0.0) + float(packet.duration * packet.time_base)
            if seen[key] > stop_after:
                break
    return max(seen.values(), default=0.0)


def check_media(path: str | os.PathLike, limits: Limits, *, kind: str) -> MediaInfo:
    """Open a sound (kind="audio") or video (kind="video") file's header and enforce the limits.

    Raises InputError with a message for the page: unreadable file, no sound track, no picture in a video,
    over the size or duration limit.
    """
    p = Path(path)
    _check_size(p, limits, "sound" if kind == "audio" else "video")
    limit = limits.max_audio_seconds if kind == "audio" else limits.max_video_seconds
    try:
        with av.open(str(p)) as container:
            has_audio = bool(container.streams.audio)
            has_video = any(not _is_cover_art(s) for s in container.streams.video)
            seconds = _header_seconds(container)
            if seconds is None:
                seconds = _counted_seconds(container, limit)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        noun = "a sound" if kind == "audio" else "a video"
        raise InputError(
            f"this file could not be read as {noun} ({getattr(e, 'strerror', None) or type(e).__name__}); "
            "try a WAV, MP3, FLAC or OGG sound, or an MP4/WebM/MOV video"
        ) from e
    if not has_audio:
        if kind == "video":
            raise InputError("this video has no sound track; DenseAV grounds a sound, so upload a video with sound")
        raise InputError("this file has no sound in it; upload a sound (WAV, MP3, FLAC, OGG) or record one")
    if kind == "video" and not has_video:
        raise InputError("this file has sound but no picture; upload it as the sound, with a photo, instead")
    if seconds > limit:
        what = "sound" if kind == "audio" else "video"
        raise InputError(
            f"the {what} is {seconds:.1f} s long; this demo accepts up to {limit:g} s. Trim it and try again "
            "(or run `denseav` on your own machine, which has no limit)."
        )
    return MediaInfo(seconds, has_audio, has_video)


def _is_cover_art(stream: av.video.stream.VideoStream) -> bool:
    """An MP3's or M4A's embedded album picture shows up as a one-frame video stream."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def check_image(path: str | os.PathLike, limits: Limits) -> tuple[int, int]:
    """Read an image's header only; enforce the size limits; return (width, height)."""
    p = Path(path)
    _check_size(p, limits, "image")
    try:
        with Image.open(p) as picture:
            width, height = picture.size
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError("this file could not be read as an image; upload a JPEG, PNG or WebP picture") from e
    if width * height > limits.max_image_megapixels * 1e6:
        raise InputError(
            f"the image is {width}x{height} ({width * height / 1e6:.0f} megapixels); this demo accepts up to "
            f"{limits.max_image_megapixels:g} megapixels. Scale it down and try again."
        )
    return width, height
