"""Where an evaluation's numbers came from: the model (name, revision, weights sha256), the data, the package."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..modeling import DenseAV

__all__ = ["Provenance", "dataset_sha256", "file_sha256", "make_provenance", "weights_provenance"]

_BLOCK = 1 << 20


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def dataset_sha256(files: Iterable[Path], base: Path) -> str:
    """One hash of the dataset's content: sha256 over (path relative to ``base``, file sha256) of every file used,
    in sorted order, so renaming, editing, adding or removing a used file changes it."""
    h = hashlib.sha256()
    for path in sorted({Path(os.path.relpath(f, base)).as_posix(): f for f in files}.items()):
        h.update(f"{path[0]}\0{file_sha256(path[1])}\n".encode())
    return h.hexdigest()


def weights_provenance(
    model: DenseAV, source: str | os.PathLike[str] | None
) -> tuple[str | None, str | None, str | None]:
    """``(name, revision, weights sha256)`` of a loaded model.

    Uses ``model.provenance`` when the model carries it; otherwise hashes the weights file that ``source`` (the
    name or path the model was loaded from) resolves to, if it can be found without a download.
    """
    prov = getattr(model, "provenance", None)
    if prov is not None:
        return prov.name, prov.revision, prov.sha256()
    name = getattr(model, "name", None) or (None if source is None else os.fspath(source))
    weights = _local_weights(source)
    return name, None, None if weights is None else file_sha256(weights)


def _local_weights(source: str | os.PathLike[str] | None) -> Path | None:
    if source is None:
        return None
    p = Path(source).expanduser()
    if p.is_file():
        return p
    for candidate in ("model.safetensors", "checkpoint.ckpt"):
        if (p / candidate).is_file():
            return p / candidate
    try:
        from ..pretrained import ResolvedFiles, resolve

        target = resolve(os.fspath(source), progress=False)
    except Exception:  # offline and not cached, or not a name: the hash is then simply unknown
        return None
    return target.weights if isinstance(target, ResolvedFiles) else None


@dataclass(frozen=True)
class Provenance:
    model: str | None
    revision: str | None
    weights_sha256: str | None
    dataset: str
    dataset_sha256: str
    package_version: str

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


def make_provenance(
    model: DenseAV, source: str | os.PathLike[str] | None, dataset: Path, files: Iterable[Path]
) -> Provenance:
    from .. import __version__

    name, revision, sha = weights_provenance(model, source)
    base = dataset if dataset.is_dir() else dataset.parent
    return Provenance(name, revision, sha, str(dataset.resolve()), dataset_sha256(files, base), __version__)
