"""Where a loaded model came from: the name it was asked by, the revision, and the weights file it was read from."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelProvenance:
    """name: the registry name, or the repo id / path as given to `load`; revision: the Hub revision asked for
    (None: the registry's or the repo's default); source: the weights file the tensors were read from."""

    name: str
    revision: str | None
    source: str

    def sha256(self) -> str:
        """The weights file's sha256 (hex), computed once.

        A file in the Hugging Face cache is a link into `blobs/`, whose file name is the Hub's ETag: the sha256
        of the content for files stored with Git LFS, as weights are (a 40-character git sha1 otherwise; see
        huggingface_hub's `file_download` docs). Such a name is used as is; anything else is hashed.
        """
        return self._sha256

    @cached_property
    def _sha256(self) -> str:  # cached_property writes the instance's __dict__, which a frozen dataclass allows
        return _cache_blob_sha256(Path(self.source)) or file_sha256(Path(self.source))


def _cache_blob_sha256(path: Path) -> str | None:
    """The sha256 a Hugging Face cache blob is named by, or None when `path` is not an LFS blob of that cache."""
    blob = path.resolve()
    in_cache = blob.parent.name == "blobs" and blob.parent.parent.name.startswith(("models--", "datasets--"))
    return blob.name if in_cache and _SHA256_HEX.fullmatch(blob.name) else None


def file_sha256(path: str | os.PathLike[str], chunk: int = 16 << 20) -> str:
    """The sha256 of a file's bytes, read in chunks (memory stays flat for any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
