"""The store's Parquet schema, written once: one row per item, one row per failure.

Tensors are stored as little-endian float16 bytes (`binary`) beside their shape (`list<int32>`), which any
Parquet reader can turn back into an array: `np.frombuffer(row.features, "<f2").reshape(row.features_shape)`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

SCHEMA_VERSION = 1
TENSOR_DTYPE = np.dtype("<f2")

_TENSOR = pa.binary()
_SHAPE = pa.list_(pa.int32())

# Columns shared by both tables: which item, from where.
_ITEM_KEY = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),  # "image" (a picture or a video frame) | "audio" (a window)
    pa.field("media", pa.string(), nullable=False),  # the source file's type: "image" | "audio" | "video"
    pa.field("source", pa.string(), nullable=False),  # the file path
    pa.field("start", pa.float64()),  # seconds in the source (frame time for frames; null for still images)
    pa.field("end", pa.float64()),
    pa.field("content_hash", pa.string()),  # sha256 of the source file's bytes
]

_PROVENANCE = [
    pa.field("model_name", pa.string(), nullable=False),
    pa.field("model_revision", pa.string()),
    pa.field("model_sha256", pa.string(), nullable=False),
    pa.field("model_dtype", pa.string(), nullable=False),
    pa.field("denseav_version", pa.string(), nullable=False),
]

ITEMS_SCHEMA = pa.schema(
    [
        *_ITEM_KEY,
        pa.field("features", _TENSOR, nullable=False),  # float16 [h*w, C] (image) or [T, C] (audio)
        pa.field("features_shape", _SHAPE, nullable=False),
        pa.field("cls", _TENSOR),  # float16 [C], or null when the model has no cls vector on that side
        pa.field("mask", pa.list_(pa.bool_())),  # audio: [T], True = a real audio step; null for images
        pa.field("times", pa.list_(pa.float32())),  # audio: [T] seconds in the source at each step's centre
        pa.field("grid_h", pa.int32()),  # image: the feature grid (h, w); null for audio
        pa.field("grid_w", pa.int32()),
        pa.field("original_h", pa.int32()),  # image geometry: the picture, the resize, the model input
        pa.field("original_w", pa.int32()),
        pa.field("resized_h", pa.int32()),
        pa.field("resized_w", pa.int32()),
        pa.field("input_h", pa.int32()),
        pa.field("input_w", pa.int32()),
        pa.field("patch_size", pa.int32()),
        *_PROVENANCE,
    ]
)

ERRORS_SCHEMA = pa.schema(
    [
        *_ITEM_KEY,
        pa.field("stage", pa.string(), nullable=False),  # "decode" | "encode"
        pa.field("error", pa.string(), nullable=False),  # the exception type
        pa.field("message", pa.string(), nullable=False),
        *_PROVENANCE,
    ]
)

KEY_COLUMNS = ["id", "content_hash"]


def tensor_bytes(x: torch.Tensor) -> bytes:
    return x.detach().to("cpu", torch.float16).contiguous().numpy().astype(TENSOR_DTYPE, copy=False).tobytes()


def tensor_from_bytes(data: bytes, shape: list[int] | tuple[int, ...]) -> torch.Tensor:
    """A float16 tensor viewing `data` (read-only bytes are copied once, so the tensor is writable)."""
    return torch.from_numpy(np.frombuffer(data, dtype=TENSOR_DTYPE).reshape(shape).copy())


def provenance_columns(identity: Any, version: str) -> dict[str, Any]:
    return {
        "model_name": identity.name,
        "model_revision": identity.revision,
        "model_sha256": identity.sha256,
        "model_dtype": identity.dtype,
        "denseav_version": version,
    }
