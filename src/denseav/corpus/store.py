"""FeatureStore: a folder of sharded Parquet files holding encoded items, their failures, and who made them.

    STORE/store.json              written once: format, model identity, indexing options
    STORE/items/part-*.parquet    one row per encoded item (schema.ITEMS_SCHEMA)
    STORE/errors/part-*.parquet   one row per failed item (schema.ERRORS_SCHEMA)

Shards are written under a temporary name and renamed when complete, so a crash loses at most the shard in
flight and readers never see half a file. Any Parquet reader can read the folders (pandas, DuckDB, Ray, Spark).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import torch

from .. import __version__
from ..api import EncodedAudio, EncodedImage
from ..errors import InputError, InputFileNotFoundError, OutputError
from ..image import ImageGeometry
from ..modeling import AudioFeatures, DenseAV, ImageFeatures
from .provenance import ModelIdentity
from .schema import ERRORS_SCHEMA, ITEMS_SCHEMA, SCHEMA_VERSION, tensor_from_bytes
from .sources import IndexOptions

STORE_FILE = "store.json"
FORMAT = "denseav-feature-store"
_TMP_SUFFIX = ".parquet.tmp"  # matches no `*.parquet` glob; pyarrow also skips the leading dot


class StoreModelMismatchError(InputError):
    """A store opened with a model (or options) other than the ones it was built with."""


@dataclass(frozen=True)
class StoredItem:
    """One item read back from a store, with features as stored (float16, or float32 in a float32 store)."""

    id: str
    kind: str
    media: str
    source: str
    start: float | None
    end: float | None
    content_hash: str | None
    features: torch.Tensor  # [h*w, C] or [T, C]
    cls: torch.Tensor | None
    mask: torch.Tensor | None  # audio [T] bool
    times: torch.Tensor | None  # audio [T] seconds in the source
    geometry: ImageGeometry | None
    grid: tuple[int, int] | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StoredItem:
        dtype = row.get("tensor_dtype")
        features = tensor_from_bytes(row["features"], row["features_shape"], dtype)
        c = features.shape[-1]
        geometry = grid = None
        if row["kind"] == "image":
            geometry = ImageGeometry(
                (row["original_h"], row["original_w"]),
                (row["resized_h"], row["resized_w"]),
                (row["input_h"], row["input_w"]),
                row["patch_size"],
            )
            grid = (row["grid_h"], row["grid_w"])
        return cls(
            row["id"],
            row["kind"],
            row["media"],
            row["source"],
            row["start"],
            row["end"],
            row["content_hash"],
            features,
            None if row["cls"] is None else tensor_from_bytes(row["cls"], (c,), dtype),
            None if row["mask"] is None else torch.tensor(row["mask"], dtype=torch.bool),
            None if row["times"] is None else torch.tensor(row["times"], dtype=torch.float32),
            geometry,
            grid,
        )

    def encoded(self, model: DenseAV) -> EncodedImage | EncodedAudio:
        """The item as `encode_image` / `encode_audio` would have returned it (float32 features, batch of one),
        bound to `model` (the store's; see `FeatureStore.load_model`)."""
        feats = self.features.float()[None].to(model.device)
        cls = None if self.cls is None else self.cls.float()[None].to(model.device)
        if self.kind == "image":
            assert self.grid is not None and self.geometry is not None
            return EncodedImage(ImageFeatures(feats, cls, self.grid), self.geometry, model)
        assert self.mask is not None and self.times is not None
        offset = self.start or 0.0
        duration = (self.end or 0.0) - offset
        mask = self.mask[None].to(model.device)
        return EncodedAudio(AudioFeatures(feats, cls, mask), self.times - offset, duration, model)


class ShardWriter:
    """Buffers rows and commits them as shards of `shard_size` items (errors ride along with each shard)."""

    def __init__(self, store: FeatureStore, shard_size: int) -> None:
        self.store = store
        self.shard_size = max(1, shard_size)
        self.items: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.written_items = 0
        self.written_errors = 0

    def add(self, items: list[dict[str, Any]], errors: list[dict[str, Any]]) -> None:
        self.items += items
        self.errors += errors
        while len(self.items) >= self.shard_size:
            self.flush(self.shard_size)
        if len(self.errors) >= self.shard_size:
            self.flush(0)

    def flush(self, count: int | None = None) -> None:
        """Commit `count` buffered items (all if None) as one shard, with every buffered error."""
        count = len(self.items) if count is None else count
        shard, self.items = self.items[:count], self.items[count:]
        if shard:
            self.store.write_shard("items", pa.Table.from_pylist(shard, schema=ITEMS_SCHEMA))
            self.written_items += len(shard)
        if self.errors:
            self.store.write_shard("errors", pa.Table.from_pylist(self.errors, schema=ERRORS_SCHEMA))
            self.written_errors += len(self.errors)
            self.errors = []

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        # Complete rows are worth keeping on a normal end and on Ctrl-C; after an error in the writing itself
        # the buffered rows are dropped (the resume re-encodes them).
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.flush()


class FeatureStore:
    """A feature store on disk. `FeatureStore.open(path)` to read; `denseav.index(...)` to build one."""

    def __init__(self, path: Path, identity: ModelIdentity, options: IndexOptions, meta: dict[str, Any]) -> None:
        self.path = path
        self.identity = identity
        self.options = options
        self.meta = meta

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> FeatureStore:
        p = Path(path).expanduser()
        meta_file = p / STORE_FILE
        if not meta_file.is_file():
            if not p.exists():
                raise InputFileNotFoundError(f"{p}: no such store; build one with `denseav index SOURCE --out {p}`")
            raise InputError(f"{p} is not a denseav feature store (no {STORE_FILE}); build one with `denseav index`")
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != FORMAT or meta.get("schema_version", 0) > SCHEMA_VERSION:
            raise InputError(f"{p}: store format {meta.get('schema_version')} is newer than this denseav reads")
        options = IndexOptions(**meta["options"])
        return cls(p, ModelIdentity.from_dict(meta["model"]), options, meta)

    @classmethod
    def create_or_open(
        cls, path: str | os.PathLike[str], identity: ModelIdentity, options: IndexOptions
    ) -> FeatureStore:
        """The store at `path` for adding items: created if new, else checked to match model and options."""
        p = Path(path).expanduser()
        if (p / STORE_FILE).is_file():
            store = cls.open(p)
            store.check_model(identity, exact=True)
            if store.options != options:
                raise StoreModelMismatchError(
                    f"{p} was indexed with options {store.options.to_dict()}, this run asks for "
                    f"{options.to_dict()}; use the same options or index into a new --out folder"
                )
            return store
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise OutputError(f"{p} exists and is not a denseav feature store; choose a new or empty folder for --out")
        for sub in ("items", "errors"):
            (p / sub).mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "model": identity.to_dict(),
            "options": options.to_dict(),
            "denseav_version": __version__,
        }
        tmp = p / f".{STORE_FILE}.tmp"
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, p / STORE_FILE)
        return cls(p, identity, options, meta)

    def check_model(self, identity: ModelIdentity, *, exact: bool = False) -> None:
        """Refuse a model whose weights differ from the store's (and, for adding items, another dtype)."""
        same = identity.sha256 == self.identity.sha256 and (not exact or identity.dtype == self.identity.dtype)
        if not same:
            raise StoreModelMismatchError(
                f"{self.path} was built with model {self.identity.describe()}, not {identity.describe()}; "
                "pass the store's model (or leave --model out to use it), or index into a new folder"
            )

    def load_model(self, model: Any = None, *, device: Any = None, dtype: Any = None) -> DenseAV:
        """The model to query this store with: `model` (checked to hold the store's weights) or, by default, the
        store's own (its recorded name, revision and dtype)."""
        from ..api import get_model

        if model is None:
            net = get_model(
                self.identity.name, revision=self.identity.revision, device=device, dtype=dtype or self.identity.dtype
            )
        else:
            net = get_model(model, device=device, dtype=dtype)
        self.check_model_of(net)
        return net

    def check_model_of(self, model: DenseAV) -> None:
        self.check_model(ModelIdentity.of(model))

    # ------------------------------------------------------------------ writing

    def writer(self, shard_size: int = 256) -> ShardWriter:
        return ShardWriter(self, shard_size)

    def write_shard(self, table_name: str, table: pa.Table) -> Path:
        folder = self.path / table_name
        name = f"part-{uuid.uuid4().hex[:16]}"
        tmp = folder / f".{name}{_TMP_SUFFIX}"
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        final = folder / f"{name}.parquet"
        os.replace(tmp, final)
        return final

    # ------------------------------------------------------------------ reading

    def _dataset(self, table_name: str) -> ds.Dataset:
        schema = ITEMS_SCHEMA if table_name == "items" else ERRORS_SCHEMA
        files = sorted(str(f) for f in (self.path / table_name).glob("*.parquet"))
        return ds.dataset(files, schema=schema, format="parquet")

    def table(self, columns: list[str] | None = None, *, kind: str | None = None) -> pa.Table:
        filt = None if kind is None else ds.field("kind") == kind
        return self._dataset("items").to_table(columns=columns, filter=filt)

    def record_batches(
        self, kind: str | None = None, *, batch_rows: int = 512, ids: list[str] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """The items table (of `kind`, with one of `ids`) as Arrow record batches of at most `batch_rows` rows.

        One shard is read ahead at most, so memory stays flat in the store's size (a shard of full-size frames
        is a few hundred MB; see `_BATCH_ROWS` in search.py for how readers size their batches)."""
        filt = None if kind is None else ds.field("kind") == kind
        if ids is not None:
            wanted = ds.field("id").isin(ids)
            filt = wanted if filt is None else filt & wanted
        scan = self._dataset("items").to_batches(
            filter=filt, batch_size=batch_rows, batch_readahead=1, fragment_readahead=1
        )
        return (batch for batch in scan if batch.num_rows)

    def batches(
        self, kind: str | None = None, *, batch_rows: int = 512, ids: list[str] | None = None
    ) -> Iterator[list[StoredItem]]:
        """Items (of `kind`, with one of `ids`) in batches of at most `batch_rows`, one shard read at a time
        (memory stays flat)."""
        for batch in self.record_batches(kind, batch_rows=batch_rows, ids=ids):
            yield [StoredItem.from_row(r) for r in batch.to_pylist()]

    def items(self, kind: str | None = None) -> list[StoredItem]:
        return [it for batch in self.batches(kind) for it in batch]

    def done_keys(self) -> set[tuple[str, str]]:
        """(id, content_hash) of every stored item: what a resumed run skips."""
        t = self.table(["id", "content_hash"])
        return set(zip(t.column("id").to_pylist(), t.column("content_hash").to_pylist()))

    def errors(self) -> pa.Table:
        """The latest failure of each item that is still not in the store, sorted by id."""
        raw = self._dataset("errors").to_table()
        done = self.done_keys()
        latest: dict[str, dict[str, Any]] = {}
        for row in raw.to_pylist():
            if (row["id"], row["content_hash"]) not in done:
                latest[row["id"]] = row
        return pa.Table.from_pylist([latest[k] for k in sorted(latest)], schema=ERRORS_SCHEMA)

    def counts(self) -> dict[str, int]:
        kinds = self.table(["kind"]).column("kind").to_pylist()
        return {"image": kinds.count("image"), "audio": kinds.count("audio"), "errors": self.errors().num_rows}

    def __len__(self) -> int:
        return self._dataset("items").count_rows()

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, {len(self)} items, model {self.identity.describe()})"

    def search(self, *, audio: Any = None, image: Any = None, k: int = 10, model: Any = None, **options: Any) -> list:
        """The `k` stored items that best match a query sound (-> frames/images) or image (-> sound windows).

        See `denseav.corpus.search.search`; the model defaults to the one the store was built with.
        """
        from .search import search

        return search(self, audio=audio, image=image, k=k, model=model, **options)
