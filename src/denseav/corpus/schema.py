"""The store's Parquet schema, written once: one row per item, one row per failure.

Tensors are stored as little-endian bytes (`binary`) beside their shape (`list<int32>`) and numpy dtype
(`tensor_dtype`: `<f2` float16 by default, `<f4` in float32 stores), which any Parquet reader can turn back into
an array: `np.frombuffer(row.features, row.tensor_dtype).reshape(row.features_shape)`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

SCHEMA_VERSION = 2  # 2: the tensor_dtype column (float32 stores); version-1 stores read as float16
TENSOR_DTYPE = np.dtype("<f2")  # the default, and what a row without tensor_dtype holds
#: The storage precisions a store can be built with, by torch name -> numpy dtype of the bytes.
FEATURE_DTYPES: dict[str, np.dtype] = {"float16": TENSOR_DTYPE, "float32": np.dtype("<f4")}

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
        pa.field("features", _TENSOR, nullable=False),  # [h*w, C] (image) or [T, C] (audio), of tensor_dtype
        pa.field("features_shape", _SHAPE, nullable=False),
        pa.field("cls", _TENSOR),  # [C] of tensor_dtype, or null when the model has no cls vector on that side
        pa.field("tensor_dtype", pa.string()),  # numpy dtype of features and cls: "<f2" (float16) or "<f4"
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


def tensor_bytes(x: torch.Tensor, dtype: np.dtype = TENSOR_DTYPE) -> bytes:
    """`x` as little-endian bytes of `dtype` (float16 unless the store keeps float32)."""
    as_torch = getattr(torch, dtype.name)  # numpy's float16/float32 are torch's of the same name
    return x.detach().to("cpu", as_torch).contiguous().numpy().astype(dtype, copy=False).tobytes()


def tensor_from_bytes(data: bytes, shape: list[int] | tuple[int, ...], dtype: str | None = None) -> torch.Tensor:
    """The tensor in `data` (`dtype` as in the tensor_dtype column; None = float16), as a writable copy."""
    return torch.from_numpy(np.frombuffer(data, dtype=np.dtype(dtype or TENSOR_DTYPE)).reshape(shape).copy())


def provenance_columns(identity: Any, version: str) -> dict[str, Any]:
    return {
        "model_name": identity.name,
        "model_revision": identity.revision,
        "model_sha256": identity.sha256,
        "model_dtype": identity.dtype,
        "denseav_version": version,
    }
