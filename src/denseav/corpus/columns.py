"""Stored features straight from Arrow record batches into tensors, without a Python object per row.

A binary column keeps its values back to back in one Arrow buffer, so the `features` of a batch of items of one
shape (float16, or float32 in a float32 store: the `tensor_dtype` column) are a single [rows, n, C] view of that buffer, and clips of any lengths one [steps, C] view: nothing is
copied until the fused scorer converts a tile to float32. Only the items a caller keeps become `StoredItem`s.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from .fused import ClipBatch, ImageBatch
from .schema import TENSOR_DTYPE


def image_batches(batch: pa.RecordBatch) -> Iterator[tuple[np.ndarray, ImageBatch]]:
    """(row numbers, their images) per feature shape in `batch` (rows of images or frames)."""
    dtype = _dtype(batch)
    values, offsets = _tensor_values(batch.column("features"), dtype)
    shapes = _shapes(batch)
    cls = _optional_tensor_values(batch.column("cls"), dtype)
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
    dtype = _dtype(batch)
    values, _ = _tensor_values(batch.column("features"), dtype)
    shapes = _shapes(batch)
    c = int(shapes[0, 1])
    mask = batch.column("mask").flatten().to_numpy(zero_copy_only=False)  # booleans are bit-packed in Arrow
    cls = _optional_tensor_values(batch.column("cls"), dtype)
    return ClipBatch(
        values.view(-1, c),
        torch.from_numpy(shapes[:, 0].astype(np.int64)),
        torch.from_numpy(mask),
        None if cls is None else cls.view(len(shapes), c),
    )


def _dtype(batch: pa.RecordBatch) -> np.dtype:
    """The numpy dtype of the batch's tensors (the `tensor_dtype` column; null in version-1 rows = float16)."""
    names = {name or TENSOR_DTYPE.str for name in pc.unique(batch.column("tensor_dtype")).to_pylist()}
    if len(names) != 1:
        raise ValueError(f"stored tensors of several dtypes ({sorted(names)}) in one batch; a store has one")
    return np.dtype(names.pop())


def _shapes(batch: pa.RecordBatch) -> np.ndarray:
    """[rows, 2] the stored features' shapes ([h*w, C] or [T, C])."""
    return batch.column("features_shape").flatten().to_numpy().reshape(len(batch), 2)


def _tensor_values(column: pa.Array, dtype: np.dtype) -> tuple[torch.Tensor, np.ndarray]:
    """A binary column of stored tensors as (every value, row after row [total], row starts [rows + 1]), no copy.

    The tensor views Arrow's read-only buffer; everything here only reads it (the scorer copies tiles out),
    which is why torch's warning about non-writable memory is silenced for this one call.
    """
    if column.null_count:
        raise ValueError("a stored tensor column has nulls where every row needs a value")
    _, offsets_buffer, data = column.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32)[column.offset : column.offset + len(column) + 1]
    size = dtype.itemsize
    start, count = int(offsets[0]), int(offsets[-1] - offsets[0]) // size
    if count == 0:
        return torch.from_numpy(np.zeros(0, dtype)), np.zeros(len(offsets), np.int64)
    array = np.frombuffer(data, dtype, count=count, offset=start)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        values = torch.from_numpy(array)
    return values, (offsets - start) // size


def _optional_tensor_values(column: pa.Array, dtype: np.dtype) -> torch.Tensor | None:
    """The values of a column such as `cls`: None when no row has one (a model without cls vectors)."""
    if column.null_count == len(column):
        return None
    return _tensor_values(column, dtype)[0]
