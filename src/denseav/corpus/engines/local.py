"""The local engine: one decoding thread feeds the encoder through a bounded queue.

Decoding (FFmpeg, resizing) overlaps encoding (torch, on the cores torch is given); the queue holds at most
`2 * batch_size` prepared items and the writer at most one shard, so memory is flat in the corpus size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Any

from ...modeling import DenseAV
from ..encode import encode_items, failure_row
from ..progress import Progress
from ..provenance import ModelIdentity
from ..schema import FEATURE_DTYPES
from ..sources import IndexOptions, InputSpec, ItemFailure, MediaEntry, PreparedItem, decode_entry
from ..store import ShardWriter

_END = object()


class _SourceDone:
    """Marks the end of one entry's items in the queue (the progress bar counts sources)."""


def _produce(
    entries: Sequence[MediaEntry],
    options: IndexOptions,
    spec: InputSpec,
    done: set[tuple[str, str]],
    out: queue.Queue,
    stop: threading.Event,
    skipped: list[int],
) -> None:
    def skip(item_id: str, digest: str) -> bool:
        hit = (item_id, digest) in done
        skipped[0] += hit
        return hit

    def put(x: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(x, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    try:
        for entry in entries:
            for item in decode_entry(entry, options, spec, skip):
                if not put(item):
                    return
            if not put(_SourceDone()):
                return
        put(_END)
    except BaseException as e:  # handed to the consumer, which re-raises it
        put(e)


def run_local(
    entries: Sequence[MediaEntry],
    writer: ShardWriter,
    model: DenseAV,
    identity: ModelIdentity,
    options: IndexOptions,
    done: set[tuple[str, str]],
    progress: Progress,
    *,
    batch_size: int = 8,
) -> None:
    """Decode, encode and write every entry not already `done`; failures become error rows."""
    items: queue.Queue = queue.Queue(maxsize=2 * batch_size)
    stop = threading.Event()
    skipped = [0]
    producer = threading.Thread(
        target=_produce,
        args=(entries, options, InputSpec.of(model, options), done, items, stop, skipped),
        name="denseav-decode",
        daemon=True,
    )
    producer.start()
    pending: list[PreparedItem] = []
    store_dtype = FEATURE_DTYPES[options.features_dtype]
    sources_done = 0
    skipped_reported = 0  # the producer only ever adds to skipped[0]; this side only reads it

    def encode_pending() -> None:
        nonlocal sources_done, skipped_reported
        rows, failures = encode_items(model, pending, identity, batch_size=batch_size, dtype=store_dtype)
        writer.add(rows, [failure_row(f, identity) for f in failures])
        seen = skipped[0]
        progress.update(sources=sources_done, items=len(rows), errors=len(failures), skipped=seen - skipped_reported)
        skipped_reported, sources_done = seen, 0
        pending.clear()

    try:
        while True:
            x = items.get()
            if x is _END:
                break
            if isinstance(x, BaseException):
                raise x
            if isinstance(x, _SourceDone):
                sources_done += 1
            elif isinstance(x, ItemFailure):
                writer.add([], [failure_row(x, identity)])
                progress.update(errors=1)
            else:
                pending.append(x)
            if len(pending) >= batch_size or (sources_done and not pending):
                encode_pending()
        encode_pending()
    finally:
        stop.set()
        producer.join()
