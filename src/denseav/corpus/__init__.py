"""Corpora: encode collections once into a Parquet feature store, then score, search and ground them in bulk.

>>> import denseav
>>> summary = denseav.index("my_videos/", "store/")         # images, sound windows and video frames
>>> store = denseav.FeatureStore.open("store/")
>>> hits = store.search(audio="bark.wav", k=5)               # frames that best match the sound
>>> scores = denseav.score_matrix(store, store)             # [sound windows, images] scores

The names below are imported on first use, so the command line (which imports `denseav.corpus.cli`) does not
pay for pyarrow or torch until a corpus command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_EXPORTS = {
    "BatchSummary": "batch",
    "ground_pairs": "batch",
    "IndexFailedError": "indexing",
    "IndexSummary": "indexing",
    "index": "indexing",
    "HeadPeak": "peaks",
    "score_matrix": "score",
    "SearchHit": "search",
    "search": "search",
    "IndexOptions": "sources",
    "FeatureStore": "store",
    "StoreModelMismatchError": "store",
    "StoredItem": "store",
}

__all__ = [  # the same names as _EXPORTS, spelled out for linters and type checkers
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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from .batch import BatchSummary, ground_pairs
    from .indexing import IndexFailedError, IndexSummary, index
    from .peaks import HeadPeak
    from .score import score_matrix
    from .search import SearchHit, search
    from .sources import IndexOptions
    from .store import FeatureStore, StoredItem, StoreModelMismatchError
