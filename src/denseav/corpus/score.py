"""`score_matrix`: the original's score for every (clip, image) pair, from features encoded once.

The aggregation is the original's (`Similarity.score`: element-wise max over heads, max over space, masked mean
over time; the spec's section 5), computed by the fused scorer (`fused.py`: one matrix product per head for many
clips and images, no similarity volumes), so the numbers are the ones `ground(...).score` gives to within float32
rounding. Work goes in slices and tiles that keep extra memory under `max_memory` whatever the number of pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..api import EncodedAudio, EncodedImage, encode_audio, encode_image
from ..errors import InputError
from ..modeling import DenseAV, ImageFeatures
from .fused import TILE_BYTES, ClipBatch, FusedScorer, ImageBatch
from .store import FeatureStore, StoredItem

# Bytes score_matrix may hold besides its inputs and its result (batches of copied features and the fused
# scorer's tiles); well under the 1 GB the corpus design allows whatever the number of pairs.
DEFAULT_MAX_MEMORY = 512 * 1024**2


@dataclass(frozen=True)
class _Features:
    """One encoded item as score_matrix uses it: features [n, C], cls [C] or None; an image's grid (h, w) with
    h * w = n, or a clip's mask [T]."""

    features: torch.Tensor
    cls: torch.Tensor | None
    grid: tuple[int, int] | None = None
    mask: torch.Tensor | None = None


# Per side: its encoded type, the function that encodes raw inputs, and what its items are called.
_SIDES: dict[str, tuple[type, Callable[..., Any], str]] = {
    "image": (EncodedImage, encode_image, "an image or frame"),
    "audio": (EncodedAudio, encode_audio, "a sound window"),
}


def _side(side: Any, model: DenseAV, kind: str) -> list[_Features]:
    """One side's items as _Features; raw inputs (paths, arrays) are encoded here, together, once."""
    encoded_type, encode, _ = _SIDES[kind]
    items = list(side) if isinstance(side, (list, tuple)) else [side]
    raw = [i for i, x in enumerate(items) if not isinstance(x, (encoded_type, StoredItem))]
    if raw:
        for i, e in zip(raw, encode([items[i] for i in raw], model=model)):
            items[i] = e
    return [_features_of(x, kind) for x in items]


def _features_of(x: EncodedImage | EncodedAudio | StoredItem, kind: str) -> _Features:
    if isinstance(x, StoredItem):
        if x.kind != kind:
            raise InputError(f"{x.id} is {_SIDES[x.kind][2]}; pass it on the {x.kind} side")
        return _Features(x.features, x.cls, x.grid, x.mask)
    f = x.features
    cls = None if f.cls is None else f.cls[0]
    if isinstance(f, ImageFeatures):
        return _Features(f.features[0], cls, f.grid)
    return _Features(f.features[0], cls, mask=f.mask[0])


def score_features(
    model: DenseAV,
    images: Sequence[_Features],
    audios: Sequence[_Features],
    *,
    per_head: bool = False,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> torch.Tensor:
    """[A, V] (or [A, V, K]) float32 scores of already-encoded features; see `score_matrix`.

    Clips are copied into batches of at most a quarter of `max_memory` (images are not copied: the fused scorer
    converts them a tile at a time); the scorer's tiles take at most another quarter.
    """
    k = model.config.num_heads
    out = torch.empty((len(audios), len(images), k) if per_head else (len(audios), len(images)))
    if not images or not audios:
        return out
    scorer = FusedScorer(model.similarity, model.device, tile_bytes=min(TILE_BYTES, max_memory // 4))
    for clip_idx in _clip_slices(audios, max_memory // 4):
        clips = ClipBatch.of([(audios[a].features, _mask(audios[a]), audios[a].cls) for a in clip_idx])
        rows = torch.tensor(clip_idx)[:, None]
        for members in _indices_by(images, lambda f: f.features.shape).values():
            per_batch = max(1, (max_memory // 4) // images[members[0]].features.nbytes)
            for lo in range(0, len(members), per_batch):
                idx = members[lo : lo + per_batch]
                out[rows, torch.tensor(idx)] = scorer(_image_batch([images[v] for v in idx]), clips, per_head=per_head)
    return out


def _mask(clip: _Features) -> torch.Tensor:
    assert clip.mask is not None, "a clip's _Features carry its mask"
    return clip.mask


def _clip_slices(audios: Sequence[_Features], max_bytes: int) -> Iterator[list[int]]:
    """Consecutive clip indices whose features take at most `max_bytes` together (at least one clip)."""
    part: list[int] = []
    size = 0
    for a, clip in enumerate(audios):
        if part and size + clip.features.nbytes > max_bytes:
            yield part
            part, size = [], 0
        part.append(a)
        size += clip.features.nbytes
    if part:
        yield part


def _indices_by(items: Sequence[_Features], key: Callable[[_Features], Any]) -> dict[Any, list[int]]:
    groups: dict[Any, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(key(item), []).append(i)
    return groups


def _image_batch(images: Sequence[_Features]) -> ImageBatch:
    """Images of one shape as a batch (features not copied); the cls vectors stacked when every image has one."""
    cls = [f.cls for f in images]
    stacked = None if any(c is None for c in cls) else torch.stack(cls)  # type: ignore[arg-type]
    return ImageBatch([f.features for f in images], stacked)


def score_matrix(
    images: Any,
    audios: Any,
    *,
    model: DenseAV | None = None,
    per_head: bool = False,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> torch.Tensor:
    """The original's score for every (clip, image) pair: float32 [A, V], or [A, V, heads] with `per_head`.

    images / audios: lists of `EncodedImage` / `EncodedAudio`, of stored items (`FeatureStore.items()`), of raw
        inputs (paths, arrays; encoded once here), or a `FeatureStore` (all its images and frames, or all its
        sound windows, in store order).
    model: needed to encode raw inputs and for the similarity; defaults to a store's own model.
    max_memory: bytes of working memory besides the inputs and the result (default 512 MB); a store side is read a
        batch at a time, so a store counts as input only by the batch in memory.
    Equal to `ground(image, audio).score` for each pair (within 1e-5), at the cost of A + V encodings.
    """
    if model is None:
        store = images if isinstance(images, FeatureStore) else audios if isinstance(audios, FeatureStore) else None
        if store is None:
            raise InputError("score_matrix needs model=... (a loaded DenseAV) unless one side is a FeatureStore")
        model = store.load_model()
    for side in (images, audios):
        if isinstance(side, FeatureStore):
            side.check_model_of(model)
    image_side = images if isinstance(images, FeatureStore) else _side(images, model, "image")
    audio_side = audios if isinstance(audios, FeatureStore) else _side(audios, model, "audio")
    k = model.config.num_heads
    a_count, v_count = _count(audio_side, "audio"), _count(image_side, "image")
    out = torch.empty((a_count, v_count, k) if per_head else (a_count, v_count))
    a0 = 0
    for clips in _chunks(audio_side, "audio", _STORE_CLIP_ROWS):
        v0 = 0
        for frames in _chunks(image_side, "image", _STORE_IMAGE_ROWS):
            scores = score_features(model, frames, clips, per_head=per_head, max_memory=max_memory)
            out[a0 : a0 + len(clips), v0 : v0 + len(frames)] = scores
            v0 += len(frames)
        a0 += len(clips)
    return out


# A store side is read this many items at a time (about 40 MB of float16 features either way for the published
# models), so memory stays bounded whatever the store's size; the image side is re-read once per clip chunk.
_STORE_IMAGE_ROWS = 64
_STORE_CLIP_ROWS = 1024


def _count(side: FeatureStore | list[_Features], kind: str) -> int:
    return side.table(["id"], kind=kind).num_rows if isinstance(side, FeatureStore) else len(side)


def _chunks(side: FeatureStore | list[_Features], kind: str, rows: int) -> Iterator[list[_Features]]:
    """A list side whole; a store side a batch of stored items at a time."""
    if not isinstance(side, FeatureStore):
        yield side
        return
    for batch in side.batches(kind, batch_rows=rows):
        yield [_Features(it.features, it.cls, it.grid, it.mask) for it in batch]
