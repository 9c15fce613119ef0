"""The Ray engine: the same decode + encode step, run by Ray Data on a cluster (`pip install denseav[ray]`).

The entries become a Ray dataset; `map_batches` runs them through a pool of actors, each of which loads the
model once (one GPU per actor when the cluster has GPUs, one CPU otherwise). Encoded rows stream back to this
process, which writes them with the same shard writer as the local engine, so both engines build the same store
(and resume, crash safety and the errors table work the same).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

import pyarrow as pa

from ...errors import InputError
from ..progress import Progress
from ..provenance import ModelIdentity
from ..schema import ERRORS_SCHEMA, FEATURE_DTYPES, ITEMS_SCHEMA
from ..sources import IndexOptions, InputSpec, ItemFailure, MediaEntry, PreparedItem
from ..store import ShardWriter

# One schema for everything an actor sends back: item rows, error rows and one marker row per finished source,
# told apart by `record`. Fixed types (all nullable) keep Ray from having to unify per-batch schemas.
_ROWS_PER_OUTPUT = 32  # items per table an actor hands back (about 20 MB for full-size frames)
_RECORD = pa.field("record", pa.string(), nullable=False)
OUTPUT_SCHEMA = pa.schema(
    [_RECORD]
    + [f.with_nullable(True) for f in ITEMS_SCHEMA]
    + [f.with_nullable(True) for f in ERRORS_SCHEMA if f.name not in ITEMS_SCHEMA.names]
)


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise InputError("the ray engine needs Ray Data: pip install 'denseav[ray]' (or use --engine local)") from e
    return ray


class EncodeActor:
    """A Ray Data actor: loads the model once, then turns batches of entries into output rows."""

    def __init__(
        self,
        model_ref: str,
        revision: str | None,
        dtype: str,
        device: str,
        identity: dict[str, Any],
        options: dict[str, Any],
        done: list[tuple[str, str]],
        batch_size: int,
        threads: int,
    ) -> None:
        import torch

        from ...build import load

        torch.set_num_threads(max(1, threads))
        self.model = load(model_ref, revision=revision, device=device, dtype=dtype, progress=False)
        self.identity = ModelIdentity.of(self.model)
        expected = ModelIdentity.from_dict(identity)
        if self.identity.sha256 != expected.sha256:
            raise InputError(
                f"the Ray worker loaded {model_ref} as {self.identity.describe()}, but the store needs "
                f"{expected.describe()}; make the same weights available on every node"
            )
        self.options = IndexOptions(**options)
        self.spec = InputSpec.of(self.model, self.options)
        self.done = {tuple(k) for k in done}
        self.batch_size = batch_size

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        """Rows for a batch of entries, yielded every `_ROWS_PER_OUTPUT` items so that a long video never sits
        in the actor (or in one Ray block) whole."""
        from ..encode import failure_row
        from ..sources import decode_entry

        for row in batch.to_pylist():
            entry = MediaEntry(**row)
            prepared: list[PreparedItem] = []
            out: list[dict[str, Any]] = []
            for item in decode_entry(entry, self.options, self.spec, self._skip):
                if isinstance(item, ItemFailure):
                    out.append({"record": "error", **failure_row(item, self.identity)})
                else:
                    prepared.append(item)
                if len(prepared) >= _ROWS_PER_OUTPUT:
                    yield self._encoded(prepared, out)
                    prepared, out = [], []
            out.append({"record": "source", "id": entry.id})
            yield self._encoded(prepared, out)

    def _encoded(self, prepared: list[PreparedItem], out: list[dict[str, Any]]) -> pa.Table:
        from ..encode import encode_items, failure_row

        dtype = FEATURE_DTYPES[self.options.features_dtype]
        rows, failures = encode_items(self.model, prepared, self.identity, batch_size=self.batch_size, dtype=dtype)
        out = [{"record": "item", **r} for r in rows] + out
        out += [{"record": "error", **failure_row(f, self.identity)} for f in failures]
        return pa.Table.from_pylist(out, schema=OUTPUT_SCHEMA)

    def _skip(self, item_id: str, digest: str) -> bool:
        return (item_id, digest) in self.done


def _write(table: pa.Table, writer: ShardWriter, progress: Progress) -> None:
    records = table.column("record").to_pylist()
    rows = table.to_pylist()
    items = [{k: r[k] for k in ITEMS_SCHEMA.names} for r, kind in zip(rows, records) if kind == "item"]
    errors = [{k: r[k] for k in ERRORS_SCHEMA.names} for r, kind in zip(rows, records) if kind == "error"]
    writer.add(items, errors)
    progress.update(sources=records.count("source"), items=len(items), errors=len(errors))


def run_ray(
    entries: Sequence[MediaEntry],
    writer: ShardWriter,
    model_ref: str,
    identity: ModelIdentity,
    options: IndexOptions,
    done: set[tuple[str, str]],
    progress: Progress,
    *,
    revision: str | None = None,
    batch_size: int = 8,
    address: str | None = None,
    workers: int | None = None,
) -> None:
    """Index `entries` on a Ray cluster: `address` ("auto", "ray://host:10001", ...) or, if none, the cluster
    this process is already connected to, else a local one started (and stopped) here."""
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        actors = workers or max(1, gpus or int(resources.get("CPU", 1)))
        per_actor = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        # Blocks are what actors are handed: enough for every actor to stay busy to the end, few enough (about
        # 100 sources each on big corpora) that scheduling costs nothing next to encoding.
        blocks = max(1, min(len(entries), max(8 * actors, len(entries) // 100)))
        ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts sources, items, errors
        dataset = ray.data.from_items([asdict(e) for e in entries], override_num_blocks=blocks)
        encoded = dataset.map_batches(
            EncodeActor,
            fn_constructor_kwargs={
                "model_ref": model_ref,
                "revision": revision,
                "dtype": identity.dtype,
                "device": "cuda" if gpus else "cpu",
                "identity": identity.to_dict(),
                "options": options.to_dict(),
                "done": sorted(done),
                "batch_size": batch_size,
                "threads": 1,
            },
            batch_size=1,  # one source per call: a video may hold thousands of items
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=actors),  # Ray >= 2.51 deprecates `concurrency=` for this
            **per_actor,
        )
        for table in encoded.iter_batches(batch_size=None, batch_format="pyarrow"):
            _write(table, writer, progress)
    finally:
        if started_here:
            ray.shutdown()
