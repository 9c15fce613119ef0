"""Which model produced a set of features: the facts a store records and checks before mixing features."""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..modeling import DenseAV

_HASH_CHUNK = 1 << 20
_sha_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, read in 1 MB chunks (memory stays flat for any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(model: DenseAV) -> str:
    """The sha256 of the weights file behind `model` (cached per path, size and mtime).

    The House API exposes this as `model.provenance.sha256()`; older models only carry `model.source`.
    """
    provenance = getattr(model, "provenance", None)
    if provenance is not None and hasattr(provenance, "sha256"):
        return str(provenance.sha256())
    source = getattr(model, "source", None)
    if source is None or not Path(source).is_file():
        raise ValueError(
            "this model has no weights file to fingerprint (it was built in memory); save it and load it with "
            "denseav.load(path) before indexing, so the store can record which weights made its features"
        )
    stat = Path(source).stat()
    key = (str(Path(source).resolve()), stat.st_size, int(stat.st_mtime_ns))
    if key not in _sha_cache:
        _sha_cache[key] = file_sha256(source)
    return _sha_cache[key]


@dataclass(frozen=True)
class ModelIdentity:
    """Name (registry name, repo id or path), revision, weights sha256 and weights dtype of a model."""

    name: str
    revision: str | None
    sha256: str
    dtype: str

    @classmethod
    def of(cls, model: DenseAV) -> ModelIdentity:
        provenance = getattr(model, "provenance", None)
        name = getattr(provenance, "name", None) or getattr(model, "name", None) or getattr(model, "source", "?")
        revision = getattr(provenance, "revision", None)
        if Path(str(name)).exists():  # a local checkpoint: record where it is, not where it was seen from
            name = Path(str(name)).resolve()
        return cls(str(name), revision, weights_sha256(model), str(model.dtype).removeprefix("torch."))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelIdentity:
        return cls(str(data["name"]), data.get("revision"), str(data["sha256"]), str(data["dtype"]))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{self.name}{rev} (weights sha256 {self.sha256[:12]}..., {self.dtype})"
