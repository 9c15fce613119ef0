"""Search a feature store: the frames and images that best match a sound, or the sound windows that best match
an image, each with its score, where it comes from, and where in the picture each head looks."""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from ..api import EncodedAudio, EncodedImage, ImageSize, encode_audio, encode_image, similarity
from ..errors import InputError
from ..image import MAX_LONG_SIDE
from ..modeling import DenseAV
from .columns import clip_batch, image_batches
from .fused import ClipBatch, FusedScorer, ImageBatch
from .peaks import HeadPeak, head_peaks
from .store import FeatureStore, StoredItem

# Stored items scored per step: 256 full-size frames are 154 MB of float16 features, read in place from Arrow's
# buffer (the fused scorer converts a tile at a time); enough rows that per-batch overhead is small.
_BATCH_ROWS = 256


@dataclass(frozen=True)
class SearchHit:
    """One result: `score` is the original's aggregate (as `ground().score`); `peaks` one per head.

    For a sound query the hits are images or video frames (`start` = the frame's time, None for a still image)
    and peaks locate the sound in the hit's picture. For an image query the hits are sound windows
    (`start`..`end` in the source) and peaks locate each window's sound in the query image, with `t` the
    moment in the source.
    """

    rank: int
    id: str
    kind: str
    media: str
    source: str
    score: float
    start: float | None
    end: float | None
    peaks: tuple[HeadPeak, ...]
    item: StoredItem = field(repr=False, compare=False)

    @property
    def timestamp(self) -> float | None:
        return self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "id": self.id,
            "kind": self.kind,
            "media": self.media,
            "source": self.source,
            "score": self.score,
            "start": self.start,
            "end": self.end,
            "peaks": {p.head: {"x": p.x, "y": p.y, "t": p.t, "value": p.value} for p in self.peaks},
        }


def encode_query(
    net: DenseAV,
    audio: Any,
    image: Any,
    sample_rate: int | None,
    channel: str | int,
    normalize: bool,
    image_size: Any,
    max_long_side: int = MAX_LONG_SIDE,
) -> EncodedAudio | EncodedImage:
    if (audio is None) == (image is None):
        raise InputError("search needs exactly one query: audio=... (finds images and frames) or image=... (sounds)")
    if isinstance(audio, EncodedAudio) or isinstance(image, EncodedImage):
        return audio if audio is not None else image
    query: Any
    if audio is not None:
        query = encode_audio(audio, model=net, sample_rate=sample_rate, channel=channel, normalize=normalize)
    else:
        query = encode_image(image, model=net, image_size=image_size, max_long_side=max_long_side)
    if not isinstance(query, (EncodedAudio, EncodedImage)):
        raise InputError("search takes one query, not a list; search once per query")
    return query


def search(
    store: FeatureStore,
    *,
    audio: Any = None,
    image: Any = None,
    k: int = 10,
    model: Any = None,
    device: str | torch.device | None = None,
    dtype: Any = None,
    sample_rate: int | None = None,
    channel: str | int = "mix",
    normalize: bool = True,
    image_size: ImageSize = "model",
) -> list[SearchHit]:
    """The `k` best stored matches of one query, best first (ties by id). The query is encoded with the store's
    model (or `model`, which must hold the same weights); the store is read one Arrow batch at a time (memory
    stays flat in its size) and scored by the fused scorer (`fused.py`), as `score_matrix` scores."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InputError(f"k must be a positive number of results, got {k!r}")
    if store.options.preprocess != "standard":  # centre crops and padded clips: peaks and spans would be wrong
        raise InputError(
            f"{store.path} holds features made with the {store.options.preprocess!r} preprocessing (by `denseav "
            "eval`); search a store built by `denseav index`"
        )
    net = store.load_model(model, device=device, dtype=dtype)
    query = encode_query(net, audio, image, sample_rate, channel, normalize, image_size)
    target = "image" if isinstance(query, EncodedAudio) else "audio"
    best = _top_k(net, store, query, target, k)
    if not best:
        raise InputError(
            f"{store.path} holds no {'images or frames' if target == 'image' else 'sound windows'} to search"
        )
    ranked = sorted(best, key=lambda e: (-e[0], e[2].id))
    return [_hit(net, query, rank, s, it) for rank, (s, _, it) in enumerate(ranked, 1)]


def _top_k(
    net: DenseAV, store: FeatureStore, query: EncodedAudio | EncodedImage, target: str, k: int
) -> list[tuple[float, tuple[int, ...], StoredItem]]:
    """A min-heap of the `k` best (score, reversed id, item) of `target` items. The store is scanned in Arrow
    batches scored by the fused scorer; only the rows that enter the heap become `StoredItem`s."""
    best: list[tuple[float, tuple[int, ...], StoredItem]] = []
    score = _batch_scorer(net, query)
    for batch in store.record_batches(target, batch_rows=_BATCH_ROWS):
        scores = score(batch)
        ids = batch.column("id")
        for row in np.argsort(-scores, kind="stable"):  # best first, so the scan of a batch stops early
            s = float(scores[row])
            if len(best) == k and s < best[0][0]:
                break
            key = _reverse(ids[row].as_py())
            if len(best) == k and (s, key) <= best[0][:2]:
                continue
            entry = (s, key, StoredItem.from_row(batch.slice(int(row), 1).to_pylist()[0]))
            if len(best) < k:
                heapq.heappush(best, entry)
            else:
                heapq.heapreplace(best, entry)
    return best


def _batch_scorer(net: DenseAV, query: EncodedAudio | EncodedImage) -> Callable[[pa.RecordBatch], np.ndarray]:
    """A function from a record batch of stored items to their float32 scores against `query` [rows]."""
    scorer = FusedScorer(net.similarity, net.device)
    if isinstance(query, EncodedAudio):
        a = query.features
        clip = ClipBatch.of([(a.features[0], a.mask[0], None if a.cls is None else a.cls[0])])

        def against_images(batch: pa.RecordBatch) -> np.ndarray:
            scores = np.empty(len(batch), np.float32)
            for rows, images in image_batches(batch):
                scores[rows] = scorer(images, clip)[0].numpy()
            return scores

        return against_images
    image = ImageBatch(query.features.features, query.features.cls)
    return lambda batch: scorer(image, clip_batch(batch))[:, 0].numpy()


def _reverse(text: str) -> tuple[int, ...]:
    """A key that orders ids in reverse, so among equal scores the heap keeps the smallest ids."""
    return tuple(-ord(c) for c in text)


def _pair(query: EncodedAudio | EncodedImage, item: StoredItem) -> tuple[EncodedImage, EncodedAudio]:
    stored = item.encoded(query.model)
    if isinstance(query, EncodedAudio):
        assert isinstance(stored, EncodedImage)
        return stored, query
    assert isinstance(stored, EncodedAudio)
    return query, stored


def _hit(net: DenseAV, query: EncodedAudio | EncodedImage, rank: int, score: float, item: StoredItem) -> SearchHit:
    image, audio = _pair(query, item)
    g = similarity(image, audio, model=net)
    times = g.times + (item.start or 0.0) if item.kind == "audio" else g.times
    peaks = head_peaks(g.heatmaps, g.mask, times, g.geometry, g.head_names)
    return SearchHit(rank, item.id, item.kind, item.media, item.source, score, item.start, item.end, tuple(peaks), item)


def save_hit_pngs(
    hits: list[SearchHit], query: EncodedAudio | EncodedImage, folder: str | os.PathLike[str], model: DenseAV
) -> list[Path]:
    """One overlay PNG per hit (`01_<id>.png`, ...): the hit's picture (or the query image) with its grounding."""
    from ..render import save_png
    from .sources import load_frame

    out = []
    for hit in hits:
        image, audio = _pair(query, hit.item)
        if image.rgb is None:
            image = EncodedImage(image.features, image.geometry, model, load_frame(hit.source, hit.start))
        g = similarity(image, audio, model=model)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in hit.id)[:80]
        out.append(save_png(g, Path(folder) / f"{hit.rank:02d}_{safe}.png"))
    return out
