"""Evaluate a DenseAV model as the paper does: prompted semantic segmentation, cross-modal retrieval, and how
well its heads separate words from sounds (``denseav eval``).

>>> from denseav.evaluation import evaluate_segmentation, evaluate_retrieval
>>> seg = evaluate_segmentation("ade_prompted/", model="sound-language", prompts="speech")
>>> seg.metrics["speech_basic_ap"]
>>> ret = evaluate_retrieval("pairs.csv", model="sound-language")
>>> ret.metrics["retrieval_speech_A_r10"], ret.metrics["ap_dis"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_EXPORTS = {
    "evaluate_retrieval": "api",
    "evaluate_segmentation": "api",
    "ClipFeatures": "encoding",
    "FeatureEncoder": "encoding",
    "StoreEncoder": "encoding",
    "Disentanglement": "metrics",
    "Provenance": "provenance",
    "RetrievalResult": "retrieval",
    "RetrievalSetResult": "retrieval",
    "ClassResult": "segmentation",
    "PromptSetResult": "segmentation",
    "SegmentationItem": "segmentation",
    "SegmentationResult": "segmentation",
}

__all__ = [
    "ClassResult",
    "ClipFeatures",
    "Disentanglement",
    "FeatureEncoder",
    "PromptSetResult",
    "Provenance",
    "RetrievalResult",
    "RetrievalSetResult",
    "SegmentationItem",
    "SegmentationResult",
    "StoreEncoder",
    "evaluate_retrieval",
    "evaluate_segmentation",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .api import evaluate_retrieval, evaluate_segmentation
    from .encoding import ClipFeatures, FeatureEncoder, StoreEncoder
    from .metrics import Disentanglement
    from .provenance import Provenance
    from .retrieval import RetrievalResult, RetrievalSetResult
    from .segmentation import ClassResult, PromptSetResult, SegmentationItem, SegmentationResult
