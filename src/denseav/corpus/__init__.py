"""Corpora: encode collections once into a Parquet feature store, then score, search and ground them in bulk.

>>> import denseav
>>> summary = denseav.index("my_videos/", "store/")         # images, sound windows and video frames
>>> store = denseav.FeatureStore.open("store/")
>>> hits = store.search(audio="bark.wav", k=5)               # frames that best match the sound
>>> scores = denseav.score_matrix(store, store)             # [sound windows, images] scores
"""

from __future__ import annotations

from .batch import BatchSummary, ground_pairs
from .indexing import IndexFailedError, IndexSummary, index
from .peaks import HeadPeak
from .score import score_matrix
from .search import SearchHit, search
from .sources import IndexOptions
from .store import FeatureStore, StoredItem, StoreModelMismatchError

__all__ = [
    "BatchSummary",
    "FeatureStore",
    "HeadPeak",
    "IndexFailedError",
    "IndexOptions",
    "IndexSummary",
    "SearchHit",
    "StoreModelMismatchError",
    "StoredItem",
    "ground_pairs",
    "index",
    "score_matrix",
    "search",
]
