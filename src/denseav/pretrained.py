"""The registry of published checkpoints (`weights_manifest.json`) and where a model's files come from.

A model is named by a registry name (`sound-language`, `language`, `sound`, or an alias), a Hugging Face repo id
(`user/repo`), or a local path; `parse_model_ref` is the one place that tells them apart. Hub files go through
huggingface_hub and its cache, so HF_HOME, HF_HUB_CACHE, HF_ENDPOINT and HF_HUB_OFFLINE work as everywhere else.

Files already in the cache are used without asking the Hub anything (see `hub_files`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .errors import InputTypeError, ModelNotFoundError

MANIFEST_FILE = "weights_manifest.json"  # at the repository root; src/denseav/ holds a link to it (see pyproject)
# Backbone sizes of a checkpoint that is not one of the published ones (the tiny test fixtures, say), beside its
# weights; see checkpoint/config.py. This module imports no torch, so the CLI can read the registry cheaply.
BACKBONES_FILE = "backbones.json"


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
    data: dict[str, Any] = json.loads(resources.files("denseav").joinpath(MANIFEST_FILE).read_text())
    return data


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


def _default_model() -> str:
    name = manifest()["default"]
    if name not in pretrained_models():
        raise RuntimeError(f"{MANIFEST_FILE}: default {name!r} is not one of its models {list(pretrained_models())}")
    return str(name)


DEFAULT_MODEL = _default_model()  # the manifest's "default": the model `denseav.load()` loads without a name


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


# ------------------------------------------------------------------------------------------ what a string names

RefKind = Literal["registry", "hub", "path"]
_CHECKPOINT_SUFFIXES = (".ckpt", ".safetensors", ".pt", ".pth")


@dataclass(frozen=True)
class ModelRef:
    """What a model string names. kind "registry": `entry` is the published model; "hub": `text` is a repo id;
    "path": `text` is a local file or folder (which may not exist; `entry` set for a published file name such as
    denseav_2head.ckpt, so that it keeps its head names)."""

    kind: RefKind
    text: str
    entry: PretrainedModel | None = None

    @property
    def path(self) -> Path:
        return Path(self.text).expanduser()


def _published_file(file_name: str) -> PretrainedModel | None:
    """The registry model whose torch.hub checkpoint has this file name (a folder merely called "sound" is not)."""
    return next((m for m in pretrained_models().values() if (m.ckpt_file or "").lower() == file_name.lower()), None)


def _is_repo_id(text: str) -> bool:
    parts = text.split("/")
    looks_like_file = text.endswith(_CHECKPOINT_SUFFIXES) or text.startswith((".", "~")) or "\\" in text
    return len(parts) == 2 and all(parts) and not looks_like_file


def parse_model_ref(name_or_path: str | os.PathLike[str] | ModelRef) -> ModelRef:
    """Decide what a model string names. An existing path always wins (a folder may be called like a repo id or
    a registry name); then registry names and aliases; then `user/repo`; then anything that looks like a path.
    An unknown name is a ModelNotFoundError listing what is valid."""
    if isinstance(name_or_path, ModelRef):
        return name_or_path
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise InputTypeError(
            f"a model is named by a string or a path, not {type(name_or_path).__name__}; pass a registry name "
            f"({', '.join(list_models())}), a Hugging Face repo id 'user/repo', a local folder / .ckpt, or a loaded model"
        )
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    entry = find_pretrained(text)
    if path.exists():
        return ModelRef("path", text, _published_file(path.name))
    if entry is not None:
        return ModelRef("registry", text, entry)
    if _is_repo_id(text):
        return ModelRef("hub", text)
    if os.sep in text or text.startswith((".", "~", "/")) or text.endswith(_CHECKPOINT_SUFFIXES):
        return ModelRef("path", text, _published_file(path.name))
    aliases = ", ".join(a for m in pretrained_models().values() for a in m.aliases)
    raise ModelNotFoundError(
        f"unknown model {text!r}. Choose one of {', '.join(list_models())} (or an alias: {aliases}), a Hugging Face "
        "repo id 'user/repo', or a local folder / .ckpt file."
    )


# ------------------------------------------------------------------------------------------ Hub files


@dataclass(frozen=True)
class ResolvedFiles:
    """Local files of one checkpoint from the Hub (cache), ready for `checkpoint.read_safetensors`."""

    weights: Path
    config: Path | None
    backbones: Path | None
    pretrained: PretrainedModel | None
    commit: str | None = None  # the Hub commit the files are a snapshot of


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _not_available(label: str, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"{label} is not in the local Hugging Face cache and {why}. Either download it once with network "
        f"(`denseav download {label}`, or `python -c \"import denseav; denseav.load('{label}')\"`; with "
        "HF_HUB_OFFLINE=1 set, nothing is downloaded), or pass a local folder holding config.json + "
        "model.safetensors (or a .ckpt) instead of a name (CLI: --weights)."
    )


@contextlib.contextmanager
def _quiet_hub(quiet: bool) -> Iterator[None]:
    """No progress bars and no library log lines (retry notices and the like) while `quiet`."""
    if not quiet:
        yield
        return
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars, logging

    level = logging.get_verbosity()
    disable_progress_bars()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        enable_progress_bars()


def cached_files(
    repo_id: str, revision: str | None = None, pretrained: PretrainedModel | None = None
) -> ResolvedFiles | None:
    """The checkpoint's files if the local cache holds its config and weights for `revision`, else None. No network.

    The optional backbones.json is taken from the same snapshot when there. A snapshot that `hub_files` downloaded
    is complete: it asked for backbones.json too (huggingface_hub records a missing file as missing), so nothing is
    left to ask the Hub.
    """
    from huggingface_hub import try_to_load_from_cache

    config_file = pretrained.config_file if pretrained else "config.json"
    weights_file = pretrained.weights_file if pretrained else "model.safetensors"
    config = try_to_load_from_cache(repo_id, config_file, revision=revision)
    weights = try_to_load_from_cache(repo_id, weights_file, revision=revision)
    if not (isinstance(config, str) and isinstance(weights, str)):
        return None
    backbones = try_to_load_from_cache(repo_id, BACKBONES_FILE, revision=revision)
    bb = Path(backbones) if isinstance(backbones, str) else None
    return ResolvedFiles(Path(weights), Path(config), bb, pretrained, commit=Path(weights).parent.name)


def _is_network_error(error: BaseException) -> bool:
    """The HTTP client's connection and timeout errors, which huggingface_hub lets through unwrapped."""
    return isinstance(error, OSError) or type(error).__module__.split(".")[0] in ("httpx", "httpx2", "requests")


def _check_reachable(repo_id: str, filename: str, revision: str | None, label: str) -> None:
    """One request, without retries, before downloading: with no network, fail now with what to do instead of
    after huggingface_hub's retries (5 retries with back-off: about 25 s)."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    try:
        get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision), timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except RepositoryNotFoundError as e:
        raise ModelNotFoundError(f"no Hugging Face repo {repo_id!r} (or it is private or gated): {e}") from e
    except EntryNotFoundError as e:
        raise ModelNotFoundError(f"{repo_id} has no {filename}; is it a DenseAV checkpoint?") from e
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status is not None and status >= 500:  # down or overloaded: huggingface_hub would retry for ~25 s
            raise _not_available(label, f"the Hugging Face Hub ({constants.ENDPOINT}) answered {status}") from e
        return  # the Hub answered (e.g. a gated repo): the download itself reports it in full
    except Exception as e:
        if not _is_network_error(e):
            raise
        why = f"the Hugging Face Hub ({constants.ENDPOINT}) could not be reached ({type(e).__name__})"
        raise _not_available(label, why) from e


def hub_files(
    repo_id: str, *, revision: str | None = None, pretrained: PretrainedModel | None = None, progress: bool = True
) -> ResolvedFiles:
    """A checkpoint's files from the local Hugging Face cache, or downloaded into it.

    Cache first: a model that is in the cache loads without any network round trip, so it loads the same with or
    without a network (huggingface_hub would otherwise ask the Hub for every file, and retry an unreachable Hub
    for ~25 s per file it does not hold). The price: a cached `main` is not refreshed when the repo gets a new
    commit; pass `revision=` (a commit or tag) to pin one, or delete the cached repo to fetch the newest.
    """
    label = pretrained.name if pretrained else repo_id
    revision = revision or (pretrained.revision if pretrained else None)
    cached = cached_files(repo_id, revision, pretrained)
    if cached is not None:
        return cached
    if _hub_offline():
        raise _not_available(label, "HF_HUB_OFFLINE is set")
    config_file = pretrained.config_file if pretrained else "config.json"
    with _quiet_hub(not progress):
        _check_reachable(repo_id, config_file, revision, label)
        _download(repo_id, config_file, revision)
        _download(repo_id, pretrained.weights_file if pretrained else "model.safetensors", revision)
        if pretrained is None:  # published repos have no backbones.json; other repos may
            _download(repo_id, BACKBONES_FILE, revision, optional=True)
    files = cached_files(repo_id, revision, pretrained)
    if files is None:  # cannot happen unless the cache is being deleted while we write to it
        raise ModelNotFoundError(f"{label}: downloaded, but the files are not in the Hugging Face cache afterwards")
    return files


def _download(repo_id: str, filename: str, revision: str | None, *, optional: bool = False) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    try:
        hf_hub_download(repo_id, filename, revision=revision)
    except RepositoryNotFoundError as e:
        raise ModelNotFoundError(f"no Hugging Face repo {repo_id!r} (or it is private or gated): {e}") from e
    except EntryNotFoundError as e:  # also the local "not cached" error, which subclasses it
        if not optional:
            raise ModelNotFoundError(f"{repo_id} has no {filename}; is it a DenseAV checkpoint? ({e})") from e


def is_cached(name: str, revision: str | None = None) -> bool:
    """Whether a registry model's files are already in the local Hugging Face cache."""
    m = find_pretrained(name)
    return m is not None and cached_files(m.hf_repo, revision or m.revision, m) is not None


def resolve(
    name_or_path: str | os.PathLike[str] | ModelRef, *, revision: str | None = None, progress: bool = True
) -> ResolvedFiles | Path:
    """A model string -> its Hub files (ResolvedFiles, from the cache or downloaded) or a local path (Path)."""
    ref = parse_model_ref(name_or_path)
    if ref.kind == "registry" and ref.entry is not None:
        return hub_files(ref.entry.hf_repo, revision=revision, pretrained=ref.entry, progress=progress)
    if ref.kind == "hub":
        return hub_files(ref.text, revision=revision, progress=progress)
    if not ref.path.exists():
        raise ModelNotFoundError(f"no checkpoint file or folder at {ref.text}")
    return ref.path
