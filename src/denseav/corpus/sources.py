"""What to index: sources (folders, globs, manifests) -> media entries -> prepared items ready to encode.

A still image gives one item. A sound file or a video's sound track gives overlapping windows (default 10 s,
hop 5 s), so moments can be found. A video also gives its frames at `fps` with their timestamps. Item ids are
the entry id plus the span (`clip.mp4#t=12.000` for a frame, `clip.mp4#t=5.000-15.000` for a window), so they
are stable across runs and engines.
"""

from __future__ import annotations

import glob
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ..audio import SAMPLE_RATE, normalize_waveform_, prepare_audio
from ..errors import InputError, InputFileNotFoundError
from ..image import MAX_LONG_SIDE, ImageGeometry, preprocess_image
from ..media import iter_display_frames
from ..modeling import DenseAV
from ..provenance import file_sha256
from .schema import FEATURE_DTYPES

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"})
MANIFEST_SUFFIXES = frozenset({".csv", ".jsonl", ".parquet"})
PREPROCESSING = ("standard", "eval")


@dataclass(frozen=True)
class IndexOptions:
    """How sources are cut into items and prepared; part of a store's identity (features depend on them)."""

    fps: float = 1.0
    window: float = 10.0
    hop: float = 5.0
    image_size: int | Literal["model"] | None = "model"  # as encode_image: "model" = the backbone's training size (224)
    channel: str | int = "mix"
    normalize: bool = True
    max_long_side: int = MAX_LONG_SIDE  # as encode_image: longer pictures are an item error
    # "standard": as encode_image / encode_audio (aspect kept, sound in windows). "eval": the original's evaluation
    # preprocessing (224 centre crop; each sound file one clip padded to 10.26 s with a mask), for `denseav eval`.
    preprocess: str = "standard"
    features_dtype: str = "float16"  # how features are kept: "float16" (half the bytes) or "float32" (exact)

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESSING:
            raise InputError(f"preprocess must be one of {', '.join(PREPROCESSING)}, got {self.preprocess!r}")
        if self.features_dtype not in FEATURE_DTYPES:
            raise InputError(f"features_dtype must be one of {', '.join(FEATURE_DTYPES)}, got {self.features_dtype!r}")
        for name in ("fps", "window", "hop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise InputError(f"{name} must be a positive number of seconds (or frames per second), got {value!r}")
        if self.hop > self.window:
            raise InputError(f"hop ({self.hop} s) is longer than the window ({self.window} s): sound would be skipped")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InputSpec:
    """What decoding needs to know of the model: its patch size, image size and shortest usable sound."""

    patch_size: int
    image_size: int | None
    max_long_side: int
    min_audio_samples: int

    @classmethod
    def of(cls, model: DenseAV, options: IndexOptions) -> InputSpec:
        enc = model.config.image_encoder
        size = enc.training_size if options.image_size == "model" else options.image_size
        return cls(enc.patch_size, None if size is None else int(size), options.max_long_side, model.min_audio_samples)


@dataclass(frozen=True)
class MediaEntry:
    """One file to index (or a span of it): where it is, the id its items derive from, and its media type."""

    path: str
    id: str
    media: str  # "image" | "audio" | "video"
    start: float | None = None
    end: float | None = None


@dataclass
class PreparedItem:
    """A decoded, preprocessed item: `pixels` [3, H, W] + `geometry` for images, `waveform` [N] for audio (with
    `sample_mask` [N] when it is padded: the evaluation preprocessing)."""

    id: str
    kind: str  # "image" | "audio"
    media: str
    source: str
    start: float | None
    end: float | None
    content_hash: str
    pixels: torch.Tensor | None = None
    geometry: ImageGeometry | None = None
    waveform: torch.Tensor | None = None
    sample_mask: torch.Tensor | None = None


@dataclass(frozen=True)
class ItemFailure:
    """An item (or a whole source) that could not be used, and why."""

    id: str
    kind: str
    media: str
    source: str
    start: float | None
    end: float | None
    content_hash: str | None
    stage: str  # "decode" | "encode"
    error: str  # exception type name
    message: str


# ------------------------------------------------------------------------------------------ sources


def media_type(path: str | os.PathLike[str]) -> str | None:
    suffix = Path(path).suffix.lower()
    for media, suffixes in (("image", IMAGE_SUFFIXES), ("audio", AUDIO_SUFFIXES), ("video", VIDEO_SUFFIXES)):
        if suffix in suffixes:
            return media
    return None


def expand_sources(sources: list[str | os.PathLike[str]]) -> list[MediaEntry]:
    """Folders (recursive), globs, manifests and media files -> entries, in a stable order, duplicates dropped."""
    entries: list[MediaEntry] = []
    for source in sources:
        text = os.fspath(source)
        p = Path(text).expanduser()
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and media_type(f))
            entries += [MediaEntry(str(f), f.relative_to(p).as_posix(), media_type(f) or "") for f in files]
        elif p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            entries += read_manifest(p)
        elif p.is_file():
            media = media_type(p)
            if media is None:
                raise InputError(f"{text}: not an image, sound, video or manifest (.csv/.jsonl/.parquet) file")
            entries.append(MediaEntry(str(p), text, media))
        elif glob.has_magic(text):
            matches = sorted(f for f in glob.glob(os.path.expanduser(text), recursive=True) if media_type(f))
            entries += [MediaEntry(f, Path(f).as_posix(), media_type(f) or "") for f in matches]
        else:
            raise InputFileNotFoundError(f"{text}: no such file, folder or matching glob; check the path")
    seen: dict[tuple[str, float | None, float | None], MediaEntry] = {}
    for e in entries:
        seen.setdefault((e.id, e.start, e.end), e)
    return list(seen.values())


def manifest_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}: line {n} is not valid JSON ({e.msg}); one object per line") from e
        return rows
    import csv

    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _seconds(row: dict[str, Any], column: str, where: str) -> float | None:
    value = row.get(column)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {column}={value!r} is not a number of seconds") from None


def read_manifest(path: Path, columns: tuple[str, ...] = ("path",)) -> list[MediaEntry]:
    """A CSV / JSONL / Parquet manifest: a `path` column (relative paths are relative to the manifest's folder),
    optional `id`, and optional `start` / `end` seconds for sound and video."""
    rows = manifest_rows(path)
    if not rows:
        raise InputError(f"{path}: the manifest has no rows")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise InputError(
            f"{path}: the manifest has no {', '.join(repr(c) for c in missing)} column (it has "
            f"{', '.join(map(repr, rows[0]))}); add one holding each file's path"
        )
    entries = []
    for n, row in enumerate(rows, 1):
        where = f"{path} row {n}"
        raw = str(row.get("path") or "")
        if not raw:
            raise InputError(f"{where}: empty path")
        file = Path(raw).expanduser()
        file = file if file.is_absolute() else path.parent / file
        media = media_type(file)
        if media is None:
            raise InputError(f"{where}: {raw} is not an image, sound or video file (by its extension)")
        start, end = _seconds(row, "start", where), _seconds(row, "end", where)
        if start is not None and end is not None and end <= start:
            raise InputError(f"{where}: end ({end}) is not after start ({start})")
        entries.append(MediaEntry(str(file), str(row.get("id") or raw), media, start, end))
    return entries


# ------------------------------------------------------------------------------------------ decoding

Skip = Callable[[str, str], bool]


def _failure(
    entry: MediaEntry,
    item_id: str,
    kind: str,
    digest: str | None,
    e: BaseException,
    *,
    start: float | None = None,
    end: float | None = None,
) -> ItemFailure:
    """The failure of one item (its own span) or of a whole entry (the entry's span)."""
    message = " ".join(str(e).split()) or type(e).__name__
    if start is None and end is None:
        start, end = entry.start, entry.end
    return ItemFailure(item_id, kind, entry.media, entry.path, start, end, digest, "decode", type(e).__name__, message)


def decode_entry(entry: MediaEntry, options: IndexOptions, spec: InputSpec, skip: Skip) -> Iterator[Any]:
    """Prepared items and failures of one entry; `skip(id, content_hash)` drops items already in the store.

    Never raises for a bad file: every problem becomes an ItemFailure naming the item.
    """
    try:
        digest = file_sha256(entry.path)
    except OSError as e:
        yield _failure(entry, entry.id, "audio" if entry.media == "audio" else "image", None, e)
        return
    if options.preprocess == "eval":
        if not skip(entry.id, digest):
            yield _eval_item(entry, digest, spec)
        return
    if entry.media == "image":
        if not skip(entry.id, digest):
            yield _image_item(entry, digest, spec)
        return
    if entry.media == "video":
        yield from _video_frames(entry, digest, options, spec, skip)
    yield from _sound_windows(entry, digest, options, spec.min_audio_samples, skip)


def _image_item(entry: MediaEntry, digest: str, spec: InputSpec) -> PreparedItem | ItemFailure:
    try:
        pixels, geometry = preprocess_image(
            entry.path, patch_size=spec.patch_size, image_size=spec.image_size, max_long_side=spec.max_long_side
        )
    except Exception as e:  # any unreadable image is recorded, never fatal
        return _failure(entry, entry.id, "image", digest, e)
    return PreparedItem(entry.id, "image", "image", entry.path, None, None, digest, pixels=pixels, geometry=geometry)


def _eval_item(entry: MediaEntry, digest: str, spec: InputSpec) -> PreparedItem | ItemFailure:
    """An image or a whole sound file prepared as the original's evaluation does (`denseav.evaluation.preprocess`)."""
    from ..evaluation.preprocess import load_audio, load_image

    kind = "audio" if entry.media == "audio" else "image"
    try:
        if entry.media == "video":
            raise InputError("the evaluation preprocessing takes image and sound files, not videos")
        if kind == "image":
            im = load_image(entry.path)
            (w0, h0), (w1, h1) = im.original_size, im.resized_size
            size = tuple(im.pixels.shape[-2:])
            geometry = ImageGeometry((h0, w0), (h1, w1), (size[0], size[1]), spec.patch_size)
            return PreparedItem(entry.id, kind, "image", entry.path, None, None, digest, im.pixels, geometry)
        clip = load_audio(entry.path)
    except Exception as e:  # recorded, never fatal (the evaluation reports it with the file's name)
        return _failure(entry, entry.id, kind, digest, e)
    end = clip.length / SAMPLE_RATE  # the real samples in the padded clip: what the evaluation's notes need
    return PreparedItem(
        entry.id, kind, "audio", entry.path, 0.0, end, digest, waveform=clip.waveform, sample_mask=clip.sample_mask
    )


def frame_id(entry_id: str, t: float) -> str:
    return f"{entry_id}#t={t:.3f}"


def window_id(entry_id: str, start: float, end: float) -> str:
    return f"{entry_id}#t={start:.3f}-{end:.3f}"


def _video_frames(entry: MediaEntry, digest: str, options: IndexOptions, spec: InputSpec, skip: Skip) -> Iterator[Any]:
    lo = entry.start or 0.0
    hi = math.inf if entry.end is None else entry.end
    next_t = lo

    def want(_index: int, t: float) -> bool:
        nonlocal next_t
        if t + 1e-6 < next_t or t >= hi:
            return False
        next_t = lo + (math.floor((t - lo) * options.fps + 1e-6) + 1) / options.fps
        return True

    try:
        for frame in iter_display_frames(entry.path, want=want):
            t, rgb = frame.time, frame.rgb
            if rgb is None:
                continue
            item_id = frame_id(entry.id, t)
            if skip(item_id, digest):
                continue
            try:
                pixels, geometry = preprocess_image(
                    rgb, patch_size=spec.patch_size, image_size=spec.image_size, max_long_side=spec.max_long_side
                )
            except Exception as e:
                yield _failure(entry, item_id, "image", digest, e, start=t, end=t)
                continue
            yield PreparedItem(item_id, "image", "video", entry.path, t, t, digest, pixels=pixels, geometry=geometry)
    except Exception as e:  # a truncated or corrupt video: what was decoded stays, the rest is one failure
        yield _failure(entry, f"{entry.id}#frames", "image", digest, e)


def window_spans(duration: float, window: float, hop: float) -> list[tuple[float, float]]:
    """[start, end) spans covering `duration`: `window` long, `hop` apart; the last one ends at `duration`."""
    spans = []
    start = 0.0
    while True:
        end = min(start + window, duration)
        spans.append((start, end))
        if end >= duration:
            return spans
        start += hop


def _sound_windows(
    entry: MediaEntry, digest: str, options: IndexOptions, min_samples: int, skip: Skip
) -> Iterator[Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # silence is reported per window below, as an item error
            wave = prepare_audio(entry.path, channel=options.channel, normalize=False)
    except Exception as e:
        yield _failure(entry, f"{entry.id}#audio", "audio", digest, e)
        return
    offset = entry.start or 0.0
    first = round(offset * SAMPLE_RATE)
    last = wave.shape[-1] if entry.end is None else min(wave.shape[-1], round(entry.end * SAMPLE_RATE))
    duration = max(0, last - first) / SAMPLE_RATE
    for a, b in window_spans(duration, options.window, options.hop):
        start, end = offset + a, offset + b
        item_id = window_id(entry.id, start, end)
        if skip(item_id, digest):
            continue
        piece = wave[first + round(a * SAMPLE_RATE) : first + round(b * SAMPLE_RATE)].clone()
        problem = _window_problem(piece, min_samples)
        if problem is not None:
            yield _failure(entry, item_id, "audio", digest, InputError(problem), start=start, end=end)
            continue
        if options.normalize:
            normalize_waveform_(piece)
        yield PreparedItem(item_id, "audio", entry.media, entry.path, start, end, digest, waveform=piece)


def _window_problem(piece: torch.Tensor, min_samples: int) -> str | None:
    n = piece.shape[-1]
    if n < min_samples:
        return (
            f"too short: {n / SAMPLE_RATE:.3f} s of sound, the model needs at least {min_samples / SAMPLE_RATE:.3f} s"
        )
    if bool(piece.max() == piece.min()):
        return "silent: every sample is equal (digital silence has nothing to ground)"
    return None


def load_frame(source: str, t: float | None) -> torch.Tensor:
    """The RGB uint8 [3, H, W] picture of an item: the image file, or the video frame nearest `t` seconds."""
    from ..image import to_rgb_uint8

    if media_type(source) != "video" or t is None:
        return to_rgb_uint8(source)
    frames = iter_display_frames(source, want=lambda _i, ft: abs(ft - t) < 1e-3)  # the frame the item came from
    try:
        for frame in frames:
            if frame.rgb is not None:
                return frame.rgb
    finally:
        frames.close()
    raise InputError(f"{source}: no video frame at {t:.3f} s; the file changed since it was indexed")
