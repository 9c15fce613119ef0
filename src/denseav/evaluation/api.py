"""The evaluation's Python API: one call per task, mirroring ``denseav eval segmentation|retrieval``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..api import DeviceLike, ModelLike, get_model
from ..build import DTypeLike
from ..modeling import DenseAV
from ..pretrained import DEFAULT_MODEL
from .data import PROMPTED_CSV
from .encoding import FeatureEncoder, StoreEncoder
from .provenance import make_provenance
from .retrieval import RetrievalResult, run_retrieval
from .segmentation import SegmentationResult, run_segmentation

__all__ = ["evaluate_retrieval", "evaluate_segmentation"]


@contextmanager
def _encoder(
    given: FeatureEncoder | None,
    model: DenseAV,
    store: str | os.PathLike[str] | None,
    engine: str,
    address: str | None,
    workers: int | None,
    batch_size: int,
    progress: bool,
) -> Iterator[FeatureEncoder]:
    """``given``, else a :class:`StoreEncoder` (its temporary store removed at the end)."""
    if given is not None:
        yield given
        return
    with StoreEncoder(
        model, store, engine=engine, address=address, workers=workers, batch_size=batch_size, progress=progress
    ) as encoder:
        yield encoder


def evaluate_segmentation(
    root: str | os.PathLike[str],
    *,
    model: ModelLike = DEFAULT_MODEL,
    prompts: str = "speech",
    store: str | os.PathLike[str] | None = None,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    encoder: FeatureEncoder | None = None,
    batch_size: int = 8,
    revision: str | None = None,
    device: DeviceLike = None,
    dtype: DTypeLike = None,
    progress: bool = True,
) -> SegmentationResult:
    """Speech- or sound-prompted segmentation (``prompts`` "speech", "sound" or "both") on a dataset in the
    original's layout (``ROOT/prompted_segmentation.csv``, ``frames/``, ``annotations/``, ``audio/``).

    Returns per-class and mean basic (and, for speech, advanced) AP and best IoU exactly as the original computes
    them; with "both" and a two-head model also the head disentanglement of the two prompt sets.
    Every distinct image and clip is encoded once into a feature store: ``store`` (a folder, kept: a rerun or a
    resumed run skips what it holds) or a temporary one; ``engine`` "local" or "ray" (``address``, ``workers``)
    as ``denseav.index``. ``encoder`` replaces the store by any :class:`FeatureEncoder`.
    """
    net = get_model(model, device=device, dtype=dtype, revision=revision)
    with _encoder(encoder, net, store, engine, address, workers, batch_size, progress) as enc:
        result = run_segmentation(root, net, prompts=prompts, encoder=enc)
    files = [Path(root) / PROMPTED_CSV]
    files += [p for s in result.sets.values() for i in s.items for p in (i.image, i.label, i.audio)]
    result.provenance = make_provenance(net, Path(root), files)
    return result


def evaluate_retrieval(
    pairs_csv: str | os.PathLike[str],
    *,
    model: ModelLike = DEFAULT_MODEL,
    disentangle: bool | None = None,
    store: str | os.PathLike[str] | None = None,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    encoder: FeatureEncoder | None = None,
    batch_size: int = 8,
    revision: str | None = None,
    device: DeviceLike = None,
    dtype: DTypeLike = None,
    progress: bool = True,
) -> RetrievalResult:
    """Recall@1/5/10 both ways per set (``speech`` / ``sound`` rows of the CSV), heads summed as the original.

    ``disentangle``: None (default) adds the head-disentanglement scores when the model has two heads and the
    CSV both sets; True requires them (an error otherwise); False leaves them out. ``store``, ``engine``,
    ``address``, ``workers``, ``encoder``: as :func:`evaluate_segmentation`.
    """
    net = get_model(model, device=device, dtype=dtype, revision=revision)
    with _encoder(encoder, net, store, engine, address, workers, batch_size, progress) as enc:
        result = run_retrieval(pairs_csv, net, disentangle=disentangle, encoder=enc)
    files = [Path(pairs_csv)] + [p for s in result.sets.values() for pair in s.pairs for p in (pair.image, pair.audio)]
    result.provenance = make_provenance(net, Path(pairs_csv), files)
    return result
