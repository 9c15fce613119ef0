"""Where an evaluation's numbers came from: the model (name, revision, weights sha256), the data, the package."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..modeling import DenseAV
from ..provenance import file_sha256

__all__ = ["Provenance", "dataset_sha256", "make_provenance"]


def dataset_sha256(files: Iterable[Path], base: Path) -> str:
    """One hash of the dataset's content: sha256 over (path relative to ``base``, file sha256) of every file used,
    in sorted order, so renaming, editing, adding or removing a used file changes it."""
    h = hashlib.sha256()
    for rel, path in sorted({Path(os.path.relpath(f, base)).as_posix(): Path(f) for f in files}.items()):
        h.update(f"{rel}\0{file_sha256(path)}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Provenance:
    model: str | None  # registry name, repo id or path the model was loaded from (None: built in memory)
    revision: str | None
    weights_sha256: str | None
    dataset: str
    dataset_sha256: str
    package_version: str

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


def make_provenance(model: DenseAV, dataset: Path, files: Iterable[Path]) -> Provenance:
    """The run's provenance; the model part comes from ``model.provenance`` (absent for a model built in memory)."""
    from .. import __version__

    prov = model.provenance
    name, revision, sha = (prov.name, prov.revision, prov.sha256()) if prov is not None else (None, None, None)
    base = dataset if dataset.is_dir() else dataset.parent
    return Provenance(name, revision, sha, str(dataset.resolve()), dataset_sha256(files, base), __version__)
