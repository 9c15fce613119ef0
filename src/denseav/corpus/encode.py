"""Prepared items -> store rows: the one encoding step both engines run, so their stores agree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..modeling import DenseAV
from .provenance import ModelIdentity
from .schema import TENSOR_DTYPE, provenance_columns, tensor_bytes
from .sources import ItemFailure, PreparedItem


def _key_columns(item: PreparedItem | ItemFailure) -> dict[str, Any]:
    return {
        "id": item.id,
        "kind": item.kind,
        "media": item.media,
        "source": item.source,
        "start": item.start,
        "end": item.end,
        "content_hash": item.content_hash,
    }


def failure_row(failure: ItemFailure, identity: ModelIdentity) -> dict[str, Any]:
    return {
        **_key_columns(failure),
        "stage": failure.stage,
        "error": failure.error,
        "message": failure.message,
        **provenance_columns(identity, __version__),
    }


def _tensor_columns(features: torch.Tensor, cls: torch.Tensor | None, dtype: np.dtype) -> dict[str, Any]:
    return {
        "features": tensor_bytes(features, dtype),
        "features_shape": list(features.shape),
        "cls": None if cls is None else tensor_bytes(cls, dtype),
        "tensor_dtype": dtype.str,
    }


def _image_rows(
    model: DenseAV, items: Sequence[PreparedItem], identity: ModelIdentity, dtype: np.dtype
) -> list[dict[str, Any]]:
    feats = model.encode_image(torch.stack([it.pixels for it in items if it.pixels is not None]))
    gh, gw = feats.grid
    rows = []
    for j, it in enumerate(items):
        g = it.geometry
        assert g is not None
        rows.append(
            {
                **_key_columns(it),
                **_tensor_columns(feats.features[j], None if feats.cls is None else feats.cls[j], dtype),
                "mask": None,
                "times": None,
                "grid_h": gh,
                "grid_w": gw,
                "original_h": g.original_size[0],
                "original_w": g.original_size[1],
                "resized_h": g.resized_size[0],
                "resized_w": g.resized_size[1],
                "input_h": g.input_size[0],
                "input_w": g.input_size[1],
                "patch_size": g.patch_size,
                **provenance_columns(identity, __version__),
            }
        )
    return rows


def _audio_row(model: DenseAV, item: PreparedItem, identity: ModelIdentity, dtype: np.dtype) -> dict[str, Any]:
    assert item.waveform is not None
    sample_mask = None if item.sample_mask is None else item.sample_mask[None]
    feats = model.encode_audio(item.waveform[None], sample_mask=sample_mask)
    times = model.audio_step_times(feats.features.shape[1]) + (item.start or 0.0)
    return {
        **_key_columns(item),
        **_tensor_columns(feats.features[0], None if feats.cls is None else feats.cls[0], dtype),
        "mask": feats.mask[0].cpu().tolist(),
        "times": times.float().tolist(),
        **dict.fromkeys(("grid_h", "grid_w", "original_h", "original_w", "resized_h", "resized_w"), None),
        **dict.fromkeys(("input_h", "input_w", "patch_size"), None),
        **provenance_columns(identity, __version__),
    }


def _encode_failure(item: PreparedItem, e: BaseException) -> ItemFailure:
    message = " ".join(str(e).split()) or type(e).__name__
    return ItemFailure(
        item.id,
        item.kind,
        item.media,
        item.source,
        item.start,
        item.end,
        item.content_hash,
        "encode",
        type(e).__name__,
        message,
    )


def encode_items(
    model: DenseAV,
    items: Sequence[PreparedItem],
    identity: ModelIdentity,
    *,
    batch_size: int = 8,
    dtype: np.dtype = TENSOR_DTYPE,
) -> tuple[list[dict[str, Any]], list[ItemFailure]]:
    """Encode prepared items: images of one input size `batch_size` at a time, sound windows one at a time (the
    original gives HuBERT no padding mask; on a CPU one 10 s window at a time is also the fastest); features are
    stored as `dtype`.

    A batch that fails is retried item by item, so one bad item costs only itself.
    """
    rows: list[dict[str, Any]] = []
    failures: list[ItemFailure] = []
    groups: dict[tuple[int, ...], list[PreparedItem]] = {}
    for it in items:
        if it.kind == "image":
            assert it.pixels is not None
            groups.setdefault(tuple(it.pixels.shape), []).append(it)
    with torch.inference_mode():
        for group in groups.values():
            for i in range(0, len(group), batch_size):
                chunk = group[i : i + batch_size]
                try:
                    rows += _image_rows(model, chunk, identity, dtype)
                except Exception:
                    for one in chunk:
                        try:
                            rows += _image_rows(model, [one], identity, dtype)
                        except Exception as e:
                            failures.append(_encode_failure(one, e))
        for it in items:
            if it.kind == "audio":
                try:
                    rows.append(_audio_row(model, it, identity, dtype))
                except Exception as e:
                    failures.append(_encode_failure(it, e))
    return rows, failures
