"""Which model produced a set of features: the facts a store records and checks before mixing features."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..modeling import DenseAV


def weights_sha256(model: DenseAV) -> str:
    """The sha256 of the weights behind `model`, which a store records to refuse mixing features."""
    if model.provenance is None:
        raise InputError(
            "this model has no weights file to fingerprint (it was built in memory); save it and load it with "
            "denseav.load(path) before indexing, so the store can record which weights made its features"
        )
    return model.provenance.sha256()


@dataclass(frozen=True)
class ModelIdentity:
    """Name (registry name, repo id or path), revision, weights sha256 and weights dtype of a model."""

    name: str
    revision: str | None
    sha256: str
    dtype: str

    @classmethod
    def of(cls, model: DenseAV) -> ModelIdentity:
        name = model.provenance.name if model.provenance is not None else "?"
        revision = model.provenance.revision if model.provenance is not None else None
        if Path(name).exists():  # a local checkpoint: record where it is, not where it was seen from
            name = str(Path(name).resolve())
        return cls(str(name), revision, weights_sha256(model), str(model.dtype).removeprefix("torch."))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelIdentity:
        return cls(str(data["name"]), data.get("revision"), str(data["sha256"]), str(data["dtype"]))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{self.name}{rev} (weights sha256 {self.sha256[:12]}..., {self.dtype})"
