"""`denseav batch`: ground a manifest of (image, sound) pairs into one Parquet table, one row per pair.

Each distinct image and sound is encoded once (a pair list often repeats them), bad pairs get their error in
their row and the run goes on, and the table appears under its name only once complete.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..api import EncodedAudio, EncodedImage, ImageSize, encode_audio, encode_image, similarity
from ..errors import InputError
from ..image import MAX_LONG_SIDE
from ..modeling import DenseAV
from ..paths import check_output_path
from .peaks import head_peaks
from .progress import Progress
from .schema import TENSOR_DTYPE, tensor_bytes
from .sources import manifest_rows

_F32_LIST = pa.list_(pa.float32())
RESULTS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("image", pa.string(), nullable=False),
        pa.field("audio", pa.string(), nullable=False),
        pa.field("score", pa.float32()),  # null when the pair failed (see `error`)
        pa.field("heads", pa.list_(pa.string())),
        pa.field("score_per_head", _F32_LIST),
        pa.field("peak_x", _F32_LIST),  # per head: original-image pixels
        pa.field("peak_y", _F32_LIST),
        pa.field("peak_t", _F32_LIST),  # per head: seconds in the clip
        pa.field("peak_value", _F32_LIST),
        pa.field("heatmaps", pa.binary()),  # --maps: float16 [K, T, h, w] (TENSOR_DTYPE), else null
        pa.field("heatmaps_shape", pa.list_(pa.int32())),
        pa.field("error", pa.string()),  # "ErrorType: message" for a failed pair, else null
    ]
)
assert TENSOR_DTYPE.itemsize == 2  # the heatmaps column is documented as float16
_CACHE_ITEMS = 64
_ROWS_PER_GROUP = 256


@dataclass(frozen=True)
class BatchSummary:
    path: Path
    pairs: int
    failed: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.pairs} pairs ({self.pairs / max(self.seconds, 1e-9):.2f}/s), {self.failed} failed; wrote {self.path}"


class _Encodings:
    """The last few encodings by path, so repeated images and sounds are encoded once."""

    def __init__(self, encode: Callable[[str], Any]) -> None:
        self.encode = encode
        self.cache: OrderedDict[str, Any] = OrderedDict()

    def __call__(self, path: str) -> Any:
        if path in self.cache:
            self.cache.move_to_end(path)
            return self.cache[path]
        value = self.encode(path)
        self.cache[path] = value
        if len(self.cache) > _CACHE_ITEMS:
            self.cache.popitem(last=False)
        return value


def read_pairs(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV / JSONL / Parquet manifest with `image` and `audio` columns (relative to its folder)."""
    if not path.is_file():
        raise InputError(f"{path}: no such pairs manifest; pass a .csv, .jsonl or .parquet file")
    rows = manifest_rows(path)
    if not rows:
        raise InputError(f"{path}: the pairs manifest has no rows")
    missing = [c for c in ("image", "audio") if c not in rows[0]]
    if missing:
        raise InputError(
            f"{path}: the pairs manifest has no {' or '.join(map(repr, missing))} column (it has "
            f"{', '.join(map(repr, rows[0]))}); give each row an image path and an audio path"
        )

    def resolve(value: Any) -> str:
        p = Path(str(value or "")).expanduser()
        return str(p if p.is_absolute() or not str(value or "") else path.parent / p)

    return [
        {"id": str(r.get("id") or n), "image": resolve(r.get("image")), "audio": resolve(r.get("audio"))}
        for n, r in enumerate(rows)
    ]


def _ground_row(pair: dict[str, str], images: _Encodings, audios: _Encodings, model: DenseAV, maps: bool) -> dict:
    image: EncodedImage = images(pair["image"])
    audio: EncodedAudio = audios(pair["audio"])
    g = similarity(image, audio, model=model)
    peaks = head_peaks(g.heatmaps, g.mask, g.times, g.geometry, g.head_names)
    return {
        **pair,
        "score": g.score,
        "heads": list(g.head_names),
        "score_per_head": g.score_per_head.tolist(),
        "peak_x": [p.x for p in peaks],
        "peak_y": [p.y for p in peaks],
        "peak_t": [p.t for p in peaks],
        "peak_value": [p.value for p in peaks],
        "heatmaps": tensor_bytes(g.heatmaps) if maps else None,
        "heatmaps_shape": list(g.heatmaps.shape) if maps else None,
        "error": None,
    }


def ground_pairs(
    pairs: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    model: DenseAV,
    maps: bool = False,
    image_size: ImageSize = "model",
    channel: str | int = "mix",
    normalize: bool = True,
    max_long_side: int = MAX_LONG_SIDE,
    strict: bool = False,
    progress: bool = True,
) -> BatchSummary:
    """Ground every (image, audio) pair of the manifest `pairs` into the Parquet file `out` (see RESULTS_SCHEMA).

    strict: stop at the first pair that fails (nothing is written); otherwise its row carries the error.
    """
    manifest = Path(pairs).expanduser()
    rows = read_pairs(manifest)
    target = check_output_path(out, suffixes=(".parquet",), what="--out", inputs=[manifest])
    images = _Encodings(lambda p: encode_image(p, model=model, image_size=image_size, max_long_side=max_long_side))
    audios = _Encodings(lambda p: encode_audio(p, model=model, channel=channel, normalize=normalize))
    bar = Progress(len(rows), enabled=progress, desc="denseav batch")
    tmp = target.with_name(f".{target.name}.tmp")
    failed = 0
    try:
        with pq.ParquetWriter(tmp, RESULTS_SCHEMA, compression="zstd") as writer:
            buffer: list[dict[str, Any]] = []
            for pair in rows:
                try:
                    buffer.append(_ground_row(pair, images, audios, model, maps))
                except Exception as e:
                    if strict:
                        raise InputError(f"pair {pair['id']} ({pair['image']}, {pair['audio']}): {e}") from e
                    buffer.append({**pair, "error": f"{type(e).__name__}: {' '.join(str(e).split())}"})
                    failed += 1
                bar.update(sources=1, items=1, errors=int(buffer[-1]["error"] is not None))
                if len(buffer) >= _ROWS_PER_GROUP:
                    writer.write_table(pa.Table.from_pylist(buffer, schema=RESULTS_SCHEMA))
                    buffer.clear()
            if buffer:
                writer.write_table(pa.Table.from_pylist(buffer, schema=RESULTS_SCHEMA))
        os.replace(tmp, target)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    return BatchSummary(target, len(rows), failed, bar.elapsed)
