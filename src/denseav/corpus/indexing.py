"""`denseav.index(...)`: encode every image, sound window and video frame of some sources into a store, once."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..api import ImageSize, ModelLike, get_model
from ..build import DTypeLike
from ..errors import InputError, OutputError
from ..image import MAX_LONG_SIDE
from ..modeling import DenseAV
from ..paths import check_writable_folder
from ..pretrained import DEFAULT_MODEL, parse_model_ref
from .progress import Progress
from .provenance import ModelIdentity
from .sources import IndexOptions, MediaEntry, expand_sources
from .store import STORE_FILE, FeatureStore

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class IndexSummary:
    """What one `index` run did."""

    store: FeatureStore
    sources: int
    encoded: int
    skipped: int
    errors: int
    seconds: float

    @property
    def items_per_second(self) -> float:
        return self.encoded / max(self.seconds, 1e-9)

    def __str__(self) -> str:
        return (
            f"{self.sources} sources: {self.encoded} items encoded ({self.items_per_second:.2f} items/s), "
            f"{self.skipped} already in the store, {self.errors} errors; store {self.store.path} now holds "
            f"{len(self.store)} items"
        )


class IndexFailedError(InputError):
    """Raised under `strict=True` when some items could not be indexed (they are in the errors table)."""


def check_store_target(out: Path, what: str = "--out") -> None:
    """Fail before any model loads: the target must be a store, an empty folder, or a new one in a writable place."""
    if out.exists() and not (out / STORE_FILE).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"{what} {out} exists and is not a denseav feature store; choose a new or empty folder")
    check_writable_folder(out if out.is_dir() else out.parent, what=f"{what} {out}")


def _worker_model_ref(net: DenseAV) -> tuple[str, str | None]:
    """What a Ray worker loads to get `net`'s weights: its registry name or repo id and the revision it was read
    at, or its local path made absolute (workers do not share this process's working directory)."""
    if net.provenance is None:
        raise InputError(
            "the ray engine loads the model on every worker by name or path, and this model was not made by "
            "denseav.load; pass its name or folder, or use engine='local'"
        )
    name = net.provenance.name
    if parse_model_ref(name).kind == "path":
        return os.path.abspath(name), None
    return name, net.provenance.revision


def index(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Sequence[MediaEntry],
    out: str | os.PathLike[str],
    *,
    model: ModelLike = DEFAULT_MODEL,
    revision: str | None = None,
    device: str | torch.device | None = None,
    dtype: DTypeLike = None,
    fps: float = 1.0,
    window: float = 10.0,
    hop: float = 5.0,
    image_size: ImageSize = "model",
    channel: str | int = "mix",
    normalize: bool = True,
    max_long_side: int = MAX_LONG_SIDE,
    preprocess: str = "standard",
    features_dtype: str = "float16",
    batch_size: int = 8,
    shard_size: int = 256,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    strict: bool = False,
    progress: bool | str = True,
) -> IndexSummary:
    """Encode `sources` (folders, globs, manifests, files, or `expand_sources` entries) into the feature store `out`; returns a summary.

    Items already in the store (same id and file content) are skipped, so an interrupted run resumes. Bad items
    are recorded in the store's errors table and the run goes on; `strict=True` raises at the end if any failed.
    engine: "local" (threads on this machine) or "ray" (Ray Data; `address` of a cluster, `workers` actors).
    Other options: the model (as `denseav.load`), how videos and sound are cut (`fps`, `window`, `hop` seconds)
    and prepared (as `encode_image` / `encode_audio`; `preprocess="eval"`: as the original's evaluation, see
    `IndexOptions`), the stored precision (`features_dtype` "float16" or "float32"), images per encoder call,
    items per Parquet shard; `progress`: a progress bar (a string: the bar's label).
    """
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    options = IndexOptions(fps, window, hop, image_size, channel, normalize, max_long_side, preprocess, features_dtype)
    listed: list[Any] = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    entries: list[MediaEntry] = listed if all(isinstance(s, MediaEntry) for s in listed) else expand_sources(listed)
    if not entries:
        raise InputError(f"nothing to index: no image, sound or video files in {', '.join(map(str, listed))}")
    out_path = Path(out).expanduser()
    check_store_target(out_path)
    net = get_model(model, device=device, dtype=dtype, revision=revision)
    worker_model = _worker_model_ref(net) if engine == "ray" else None
    identity = ModelIdentity.of(net)
    store = FeatureStore.create_or_open(out_path, identity, options)
    done = store.done_keys()
    label = progress if isinstance(progress, str) else "denseav index"
    bar = Progress(len(entries), enabled=bool(progress), desc=label)
    try:
        with store.writer(shard_size) as writer:
            if engine == "local":
                from .engines.local import run_local

                run_local(entries, writer, net, identity, options, done, bar, batch_size=batch_size)
            else:
                from .engines.ray import run_ray

                assert worker_model is not None
                run_ray(
                    entries,
                    writer,
                    worker_model[0],
                    identity,
                    options,
                    done,
                    bar,
                    revision=worker_model[1],
                    batch_size=batch_size,
                    address=address,
                    workers=workers,
                )
    finally:
        bar.close()
    summary = IndexSummary(store, len(entries), bar.items, bar.skipped, bar.errors, bar.elapsed)
    if strict and bar.errors:
        raise IndexFailedError(
            f"{bar.errors} item(s) could not be indexed (strict mode); their messages are in {store.path}/errors "
            "(FeatureStore.open(path).errors())"
        )
    return summary
