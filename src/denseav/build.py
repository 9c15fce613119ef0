"""Building a ready model: `load(name_or_path)` -> DenseAV on the requested device and dtype."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from .checkpoint import RawCheckpoint, checkpoint_filter_fn, config_from_original, read_checkpoint, read_safetensors
from .errors import CheckpointError
from .modeling import DenseAV, DenseAVConfig
from .pretrained import DEFAULT_MODEL, ResolvedFiles, find_pretrained, resolve

DTypeLike = torch.dtype | str | None
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


def resolve_dtype(dtype: DTypeLike) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ValueError(f"dtype {dtype} is not supported; use float32, bfloat16 or float16")
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of float32, bfloat16, float16")
    return _DTYPES[key]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None picks CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r}: {e}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} asked for, but this torch build sees no CUDA GPU; use the CPU (device cpu)"
        )
    return dev


def build_denseav(config: DenseAVConfig, *, device: str | torch.device = "meta") -> DenseAV:
    """An (uninitialised) DenseAV for `config`. On the meta device by default: no memory until weights arrive."""
    with torch.device(device):
        return DenseAV(config)


def model_from_checkpoint(
    raw: RawCheckpoint,
    *,
    head_names: tuple[str, ...] | None = None,
    device: str | torch.device | None = "cpu",
    dtype: DTypeLike = None,
) -> DenseAV:
    """Convert and load a read checkpoint strictly: a missing, unexpected or misshapen tensor is an error."""
    config = config_from_original(raw.hparams, raw.backbones, head_names)
    model = build_denseav(config)
    state = convert_strict(raw, model, resolve_dtype(dtype))
    model.load_state_dict(state, strict=True, assign=True)
    del state
    model.requires_grad_(False)
    model.source = raw.source  # type: ignore[attr-defined]
    _release_freed_memory()
    return model.to(resolve_device(device)).eval()


def _release_freed_memory() -> None:
    """Hand the loader's freed temporaries back to the OS (glibc keeps them in its heap otherwise, and they
    would count towards the process's resident memory for the rest of its life)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to do
        pass


def convert_strict(raw: RawCheckpoint, model: DenseAV, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """`checkpoint_filter_fn`, then insist that the result fits `model` exactly (names and shapes)."""
    _check_lora(raw)
    state, unexpected = checkpoint_filter_fn(raw.tensors, model, dtype)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    misshapen = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or misshapen:

        def head(items: list[str]) -> str:
            return "; ".join(items[:12]) + (f"; ... ({len(items)} in all)" if len(items) > 12 else "")

        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s) (package names): {head(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensor(s): {head(unexpected)}")
        if misshapen:
            parts.append(f"shape mismatch: {head(misshapen)}")
        raise CheckpointError(
            f"{raw.source} does not fit the model its config describes: "
            + " | ".join(parts)
            + ". If this is a checkpoint with non-published backbone sizes, put a backbones.json beside it "
            "(see the README, 'Custom checkpoints')."
        )
    return state


def _check_lora(raw: RawCheckpoint) -> None:
    has_lora = any(".lora_A." in k for k in raw.tensors)
    says_lora = bool(raw.hparams.get("image_lora", True))
    if has_lora != says_lora and "image_lora" in raw.hparams:
        warnings.warn(
            f"{raw.source}: config says image_lora={says_lora} but the weights {'do' if has_lora else 'do not'} "
            "contain LoRA adapters; using the weights as they are",
            stacklevel=3,
        )


def load(
    name_or_path: str | os.PathLike = DEFAULT_MODEL,
    *,
    revision: str | None = None,
    device: str | torch.device | None = None,
    dtype: DTypeLike = None,
    progress: bool = True,
) -> DenseAV:
    """Load a ready DenseAV model (eval mode, no gradients).

    name_or_path: a registry name ("sound-language", "language", "sound"), a Hugging Face repo id, a local folder
        with config.json + model.safetensors, or a Lightning .ckpt file.
    revision: Hub branch, tag or commit (registry default: main).
    device: "cpu", "cuda", ... (None: CUDA if available, else CPU).
    dtype: float32 (default), bfloat16 or float16 weights; similarity sums always run in float32.
    """
    target = resolve(name_or_path, revision=revision, progress=progress)
    if isinstance(target, ResolvedFiles):
        raw = read_safetensors(target.weights, target.config, target.backbones)
        entry = target.pretrained
    else:
        raw = read_checkpoint(target)
        entry = find_pretrained(Path(target).name)  # e.g. a downloaded denseav_2head.ckpt
    model = model_from_checkpoint(raw, head_names=entry.head_names if entry else None, device=device, dtype=dtype)
    model.name = entry.name if entry else str(name_or_path)  # type: ignore[attr-defined]
    return model
