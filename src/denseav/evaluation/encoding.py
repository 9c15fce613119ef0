"""The one step of an evaluation that runs the encoders: through a feature store, on either corpus engine.

An evaluation needs each distinct image and clip encoded once, with the original's evaluation preprocessing
(:mod:`.preprocess`). :class:`StoreEncoder` indexes the files into a feature store with ``denseav.index``
(``preprocess="eval"``; local or Ray engine; resumable; its progress bar) and reads their features back one
store batch at a time. The store keeps float32 features: with float16 the shared test datasets' metrics moved
by up to 8e-5 (IoU) and 5e-5 (act_dis), beyond the 1e-5 the original's numbers are matched to. :class:`FeatureEncoder` is the interface the evaluation
sees; it never looks at how features were made.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..audio import SAMPLE_RATE
from ..errors import InputError
from ..modeling import AudioFeatures, DenseAV, ImageFeatures
from ..provenance import file_sha256

if TYPE_CHECKING:  # the corpus needs pyarrow, which importing denseav.evaluation does not
    from ..corpus.store import FeatureStore, StoredItem

__all__ = ["ClipFeatures", "FeatureEncoder", "StoreEncoder"]

#: How an evaluation store keeps features (see the module docstring).
EVAL_FEATURES_DTYPE = "float32"


@dataclass(frozen=True)
class ClipFeatures:
    """A clip's aligned features (a batch of one, with its step mask) and its real 16 kHz samples in the window."""

    features: AudioFeatures
    samples: int


class FeatureEncoder(Protocol):
    """Features of files, each file once, as ``(path, features)`` pairs in any order (each a batch of one)."""

    def encode_images(self, paths: Sequence[Path]) -> Iterator[tuple[Path, ImageFeatures]]: ...

    def encode_clips(self, paths: Sequence[Path]) -> Iterator[tuple[Path, ClipFeatures]]: ...


def item_id(path: Path) -> str:
    """A file's id in an evaluation store: its absolute path (its content hash guards against edits)."""
    return Path(os.path.abspath(path)).as_posix()


class StoreEncoder:
    """Encode through the feature store at ``store`` (kept, so a rerun skips everything it holds) or, if None, a
    temporary one removed by :meth:`close`. ``engine``, ``address``, ``workers``, ``batch_size`` and ``progress``
    are ``denseav.index``'s."""

    def __init__(
        self,
        model: DenseAV,
        store: str | os.PathLike[str] | None = None,
        *,
        engine: str = "local",
        address: str | None = None,
        workers: int | None = None,
        batch_size: int = 8,
        progress: bool = True,
    ) -> None:
        self.model = model
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if store is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="denseav-eval-")
            store = Path(self._tmp.name) / "store"
        self.path = Path(store).expanduser()
        self.engine, self.address, self.workers = engine, address, workers
        self.batch_size, self.progress = batch_size, progress

    def close(self) -> None:
        """Remove the temporary store (a store given by path stays)."""
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> StoreEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def encode_images(self, paths: Sequence[Path]) -> Iterator[tuple[Path, ImageFeatures]]:
        device = self.model.device
        for path, it in self._encoded(paths, "image"):
            assert it.grid is not None
            cls = None if it.cls is None else it.cls.float()[None].to(device)
            yield path, ImageFeatures(it.features.float()[None].to(device), cls, it.grid)

    def encode_clips(self, paths: Sequence[Path]) -> Iterator[tuple[Path, ClipFeatures]]:
        device = self.model.device
        for path, it in self._encoded(paths, "audio"):
            assert it.mask is not None and it.start is not None and it.end is not None
            cls = None if it.cls is None else it.cls.float()[None].to(device)
            feats = AudioFeatures(it.features.float()[None].to(device), cls, it.mask[None].to(device))
            yield path, ClipFeatures(feats, round((it.end - it.start) * SAMPLE_RATE))

    def _encoded(self, paths: Sequence[Path], kind: str) -> Iterator[tuple[Path, StoredItem]]:
        """Index the files (skipping those stored with the same content), then stream their stored items."""
        from ..corpus.indexing import index
        from ..corpus.sources import MediaEntry

        wanted = {item_id(p): p for p in paths}
        if not wanted:
            return
        entries = [MediaEntry(str(p), i, "image" if kind == "image" else "audio") for i, p in wanted.items()]
        store = index(
            entries,
            self.path,
            model=self.model,
            preprocess="eval",
            features_dtype=EVAL_FEATURES_DTYPE,
            batch_size=self.batch_size,
            engine=self.engine,
            address=self.address,
            workers=self.workers,
            progress=f"encoding {'images' if kind == 'image' else 'clips'}" if self.progress else False,
        ).store
        keys = {(i, _sha256(p)) for i, p in wanted.items()}  # a file edited since an earlier run has two rows
        _check_all_stored(store, wanted, keys)
        for batch in store.batches(kind, ids=list(wanted)):
            for it in batch:
                if (it.id, it.content_hash) in keys:
                    yield wanted[it.id], it


def _sha256(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e}); check the dataset folder") from e


def _check_all_stored(store: FeatureStore, wanted: dict[str, Path], keys: set[tuple[str, str]]) -> None:
    """Every file is in the store with its current content, or the run stops naming the first that is not."""
    missing = keys - store.done_keys()
    if not missing:
        return
    failed = {(e["id"], e["content_hash"]): e["message"] for e in store.errors().to_pylist()}
    first = min(missing)
    reason = failed.get(first, "it was not encoded (the indexing stopped early?); run again")
    more = f"; {len(missing) - 1} more file(s) failed, listed in {store.path}/errors" if len(missing) > 1 else ""
    path = str(wanted[first[0]])
    raise InputError(f"{reason if path in reason else f'{path}: {reason}'}{more}")
