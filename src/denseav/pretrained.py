"""The registry of published checkpoints (`weights_manifest.json`) and where their files come from.

A model is named by a registry name (`sound-language`, `language`, `sound`), a Hugging Face repo id
(`user/repo`), or a local path. Hub files go through huggingface_hub and its cache, so HF_HOME,
HF_HUB_CACHE and HF_HUB_OFFLINE work as everywhere else.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ModelNotFoundError

DEFAULT_MODEL = "sound-language"


@dataclass(frozen=True)
class PretrainedModel:
    name: str
    description: str
    hf_repo: str
    revision: str | None
    config_file: str
    weights_file: str
    weights_bytes: int | None
    head_names: tuple[str, ...]
    torch_hub_entry: str | None
    ckpt_file: str | None
    aliases: tuple[str, ...]


@lru_cache(maxsize=1)
def manifest() -> dict[str, Any]:
    return json.loads(resources.files("denseav").joinpath("weights_manifest.json").read_text())


@lru_cache(maxsize=1)
def pretrained_models() -> dict[str, PretrainedModel]:
    out = {}
    for name, m in manifest()["models"].items():
        hub = m.get("torch_hub") or {}
        out[name] = PretrainedModel(
            name=name,
            description=m["description"],
            hf_repo=m["hf_repo"],
            revision=m.get("revision"),
            config_file=m.get("config_file", "config.json"),
            weights_file=m.get("weights_file", "model.safetensors"),
            weights_bytes=m.get("weights_bytes"),
            head_names=tuple(m["head_names"]),
            torch_hub_entry=hub.get("entry"),
            ckpt_file=hub.get("ckpt"),
            aliases=tuple(m.get("aliases", ())),
        )
    return out


def list_models() -> list[str]:
    """Names accepted by `denseav.load`."""
    return list(pretrained_models())


def find_pretrained(name: str) -> PretrainedModel | None:
    """Registry entry by name, alias, HF repo id or torch.hub .ckpt file name (case-insensitive)."""
    key = name.strip().lower()
    for m in pretrained_models().values():
        if key in (m.name, m.hf_repo.lower(), (m.ckpt_file or "").lower()) or key in (a.lower() for a in m.aliases):
            return m
    return None


@dataclass(frozen=True)
class ResolvedFiles:
    """Local files of one checkpoint, ready for `checkpoint.read_*`."""

    weights: Path
    config: Path | None
    backbones: Path | None
    pretrained: PretrainedModel | None


def _offline_help(what: str, error: Exception) -> ModelNotFoundError:
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face Hub could not be reached"
    return ModelNotFoundError(
        f"{what} is not in the local Hugging Face cache and {why}. Download it once with network "
        f"(`denseav download {what}` or `python -c \"import denseav; denseav.load('{what}')\"`), or pass a local "
        f"folder holding config.json + model.safetensors (or a .ckpt) instead of a name. ({type(error).__name__})"
    )


def hub_files(
    repo_id: str, *, revision: str | None = None, pretrained: PretrainedModel | None = None, progress: bool = True
) -> ResolvedFiles:
    """Fetch (or find in the cache) a checkpoint's files from the Hugging Face Hub."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    label = pretrained.name if pretrained else repo_id
    revision = revision or (pretrained.revision if pretrained else None)
    config_file = pretrained.config_file if pretrained else "config.json"
    weights_file = pretrained.weights_file if pretrained else "model.safetensors"
    if not progress:
        disable_progress_bars()
    try:
        config = Path(hf_hub_download(repo_id, config_file, revision=revision))
        weights = Path(hf_hub_download(repo_id, weights_file, revision=revision))
        try:  # optional: only checkpoints with non-published backbone sizes have one (see checkpoint.py)
            backbones: Path | None = Path(hf_hub_download(repo_id, "backbones.json", revision=revision))
        except (EntryNotFoundError, LocalEntryNotFoundError):
            backbones = None
    except RepositoryNotFoundError as e:
        raise ModelNotFoundError(f"no Hugging Face repo {repo_id!r} (or it is private): {e}") from e
    except LocalEntryNotFoundError as e:
        raise _offline_help(label, e) from e
    except EntryNotFoundError as e:
        raise ModelNotFoundError(f"{repo_id} has no {e}; is it a DenseAV checkpoint?") from e
    finally:
        if not progress:
            enable_progress_bars()
    return ResolvedFiles(weights, config, backbones, pretrained)


def is_cached(name: str, revision: str | None = None) -> bool:
    """Whether a registry model's files are already in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    m = find_pretrained(name)
    if m is None:
        return False
    rev = revision or m.revision
    return all(
        isinstance(try_to_load_from_cache(m.hf_repo, f, revision=rev), str) for f in (m.config_file, m.weights_file)
    )


def looks_like_path(name: str) -> bool:
    return (
        (os.path.sep in name and not is_repo_id(name))
        or name.startswith((".", "~", "/"))
        or name.endswith((".ckpt", ".safetensors", ".pt", ".pth"))
        or Path(name).expanduser().exists()
    )


def is_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not Path(name).exists() and not name.startswith((".", "~", "/"))


def resolve(name_or_path: str | os.PathLike, *, revision: str | None = None, progress: bool = True):
    """A registry name, a repo id or a local path -> ('local', Path, entry) or ('hub', ResolvedFiles, entry)."""
    text = os.fspath(name_or_path)
    entry = find_pretrained(text)
    if entry is not None and not Path(text).exists():
        return hub_files(entry.hf_repo, revision=revision, pretrained=entry, progress=progress)
    if Path(text).expanduser().exists():
        return Path(text).expanduser()
    if is_repo_id(text):
        return hub_files(text, revision=revision, progress=progress)
    if looks_like_path(text):
        raise ModelNotFoundError(f"no checkpoint file or folder at {text}")
    raise ModelNotFoundError(
        f"unknown model {text!r}. Choose one of {', '.join(list_models())} (or an alias: "
        f"{', '.join(a for m in pretrained_models().values() for a in m.aliases)}), a Hugging Face repo id "
        "'user/repo', or a local folder / .ckpt file."
    )
