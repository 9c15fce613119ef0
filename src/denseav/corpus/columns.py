"""Stored features straight from Arrow record batches into tensors, without a Python object per row.

A binary column keeps its values back to back in one Arrow buffer, so the `features` of a batch of items of one
shape are a single [rows, n, C] view of that buffer, and clips of any lengths one [steps, C] view: nothing is
copied until the fused scorer converts a tile to float32. Only the items a caller keeps become `StoredItem`s.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import torch

from .fused import ClipBatch, ImageBatch
from .schema import TENSOR_DTYPE


def image_batches(batch: pa.RecordBatch) -> Iterator[tuple[np.ndarray, ImageBatch]]:
    """(row numbers, their images) per feature shape in `batch` (rows of images or frames)."""
    values, offsets = _tensor_values(batch.column("features"))
    shapes = _shapes(batch)
    cls = _optional_tensor_values(batch.column("cls"))
    for shape in np.unique(shapes, axis=0):
        rows = np.flatnonzero((shapes == shape).all(axis=1))
        n, c = (int(s) for s in shape)
        if len(rows) == len(shapes):  # one shape: the whole buffer is the batch
            patches: torch.Tensor | list[torch.Tensor] = values.view(len(rows), n, c)
        else:
            patches = [values[offsets[r] : offsets[r + 1]].view(n, c) for r in rows]
        yield rows, ImageBatch(patches, None if cls is None else cls.view(len(shapes), c)[rows])


def clip_batch(batch: pa.RecordBatch) -> ClipBatch:
    """The sound windows of `batch` (rows of audio items), laid end to end as stored."""
    values, _ = _tensor_values(batch.column("features"))
    shapes = _shapes(batch)
    c = int(shapes[0, 1])
    mask = batch.column("mask").flatten().to_numpy(zero_copy_only=False)  # booleans are bit-packed in Arrow
    cls = _optional_tensor_values(batch.column("cls"))
    return ClipBatch(
        values.view(-1, c),
        torch.from_numpy(shapes[:, 0].astype(np.int64)),
        torch.from_numpy(mask),
        None if cls is None else cls.view(len(shapes), c),
    )


def _shapes(batch: pa.RecordBatch) -> np.ndarray:
    """[rows, 2] the stored features' shapes ([h*w, C] or [T, C])."""
    return batch.column("features_shape").flatten().to_numpy().reshape(len(batch), 2)


def _tensor_values(column: pa.Array) -> tuple[torch.Tensor, np.ndarray]:
    """A binary column of stored tensors as (every value, row after row [total], row starts [rows + 1]), no copy.

    The tensor views Arrow's read-only buffer; everything here only reads it (the scorer copies tiles out),
    which is why torch's warning about non-writable memory is silenced for this one call.
    """
    if column.null_count:
        raise ValueError("a stored tensor column has nulls where every row needs a value")
    _, offsets_buffer, data = column.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32)[column.offset : column.offset + len(column) + 1]
    size = TENSOR_DTYPE.itemsize
    start, count = int(offsets[0]), int(offsets[-1] - offsets[0]) // size
    if count == 0:
        return torch.empty(0, dtype=torch.float16), np.zeros(len(offsets), np.int64)
    array = np.frombuffer(data, TENSOR_DTYPE, count=count, offset=start)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        values = torch.from_numpy(array)
    return values, (offsets - start) // size


def _optional_tensor_values(column: pa.Array) -> torch.Tensor | None:
    """The values of a column such as `cls`: None when no row has one (a model without cls vectors)."""
    if column.null_count == len(column):
        return None
    return _tensor_values(column)[0]
