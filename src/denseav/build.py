"""Building a ready model: `load(name_or_path)` -> DenseAV on the requested device and dtype."""

from __future__ import annotations

import functools
import os
import warnings

import torch

from .checkpoint import RawCheckpoint, checkpoint_filter_fn, config_from_original, read_checkpoint, read_safetensors
from .errors import CheckpointError, InputError, InputTypeError
from .heap import release_free_memory
from .modeling import DenseAV, DenseAVConfig
from .pretrained import DEFAULT_MODEL, ResolvedFiles, parse_model_ref, resolve
from .provenance import ModelProvenance

DTypeLike = torch.dtype | str | None
DeviceLike = torch.device | str | None
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
_DTYPE_HELP = "float32 (default), bfloat16, float16 or auto (also fp32, bf16, fp16, half, or the torch dtypes)"
# x86 CPU flags of native bfloat16 matmuls. Without them torch emulates bfloat16, which measured slower than float32
# (README, Performance: 4.4-4.9x the float32 time on an AVX2 EPYC), so "auto" keeps float32 there.
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 matmuls natively (x86 AVX512-BF16 or AMX; read from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:  # not Linux: no way to tell, so the safe choice
        return False
    return any(flag in flags for flag in _NATIVE_BF16_FLAGS)


def auto_dtype(device: torch.device) -> torch.dtype:
    """What `dtype="auto"` means on `device`: the fastest dtype whose heatmaps stay within 0.7% of float32's.

    bfloat16 on CUDA and on CPUs with native bfloat16 matmuls; float32 everywhere else (emulated bfloat16 is slower
    than float32, and float16 matmuls on CPUs are emulated too).
    """
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bfloat16()):
        return torch.bfloat16
    return torch.float32


def resolve_dtype(dtype: DTypeLike, device: DeviceLike = None) -> torch.dtype:
    """None -> float32; "auto" -> `auto_dtype` of `device` (resolved as `load` does); a name or torch dtype -> the
    torch dtype. Anything else is an InputError naming the choices."""
    if isinstance(dtype, str) and dtype.strip().lower() == "auto":
        return auto_dtype(resolve_device(device))
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise InputError(f"dtype {dtype} is not supported; use {_DTYPE_HELP}")
        return dtype
    if not isinstance(dtype, str):
        raise InputTypeError(f"dtype must be a string or a torch.dtype, not {type(dtype).__name__}; use {_DTYPE_HELP}")
    key = dtype.strip().lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; use {_DTYPE_HELP}")
    return _DTYPES[key]


def resolve_device(device: DeviceLike) -> torch.device:
    """None picks CUDA when available, else the CPU. A device this machine lacks is an InputError saying so."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise InputTypeError(
            f"device must be a string or a torch.device, not {type(device).__name__}; use 'cpu', 'cuda', 'cuda:N' "
            "or None (CUDA when available, else the CPU)"
        )
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise InputError(
            f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N', 'mps' or None (CUDA when available, else the "
            f"CPU) ({e})"
        ) from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"device {device!r} asked for, but this torch build sees no CUDA GPU; use device 'cpu' (or None, which "
            "picks CUDA only when there is one)"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r} asked for, but this machine has no usable Apple GPU; use device 'cpu'")
    return dev


def build_denseav(
    config: DenseAVConfig, *, provenance: ModelProvenance | None = None, device: str | torch.device = "meta"
) -> DenseAV:
    """An (uninitialised) DenseAV for `config`. On the meta device by default: no memory until weights arrive."""
    with torch.device(device):
        return DenseAV(config, provenance=provenance)


def model_from_checkpoint(
    raw: RawCheckpoint,
    *,
    head_names: tuple[str, ...] | None = None,
    device: DeviceLike = "cpu",
    dtype: DTypeLike = None,
    provenance: ModelProvenance | None = None,
) -> DenseAV:
    """Convert and load a read checkpoint strictly: a missing, unexpected or misshapen tensor is an error."""
    config = config_from_original(raw.hparams, raw.backbones, head_names)
    model = build_denseav(config, provenance=provenance)
    state = convert_strict(raw, model, resolve_dtype(dtype, device))
    model.load_state_dict(state, strict=True, assign=True)
    del state
    model.requires_grad_(False)
    release_free_memory()  # the loader's temporaries, so they do not stay resident for the process's life
    return model.to(resolve_device(device)).eval()


def _listed(items: list[str], limit: int = 5) -> str:
    """A few names and a count: enough to recognise the problem without a wall of keys."""
    shown = "; ".join(items[:limit])
    return shown + (f"; ... ({len(items)} in all)" if len(items) > limit else "")


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
    if not (missing or unexpected or misshapen):
        return state
    if misshapen and raw.backbones is None:
        hint = (
            "Its tensors are not the published backbone sizes: a checkpoint with other sizes needs its "
            "backbones.json beside it (see the README, 'Custom checkpoints')."
        )
    else:
        hint = "Is it a DenseAV checkpoint as the original code saves it (config.json + model.safetensors, or .ckpt)?"
    parts = [f"shape mismatch: {_listed(misshapen)}"] if misshapen else []
    if missing:
        parts.append(f"missing {len(missing)} tensor(s) (package names): {_listed(missing)}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} tensor(s): {_listed(unexpected)}")
    raise CheckpointError(f"{raw.source} does not fit the model its config describes. {hint} " + " | ".join(parts))


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
    name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    revision: str | None = None,
    device: DeviceLike = None,
    dtype: DTypeLike = None,
    progress: bool = True,
) -> DenseAV:
    """Load a ready DenseAV model (eval mode, no gradients).

    name_or_path: a registry name ("sound-language", "language", "sound"), a Hugging Face repo id, a local folder
        with config.json + model.safetensors, or a Lightning .ckpt file.
    revision: Hub branch, tag or commit (registry default: main).
    device: "cpu", "cuda", ... (None: CUDA if available, else CPU).
    dtype: float32 (default), bfloat16 or float16 weights, or "auto": bfloat16 on CUDA and on CPUs with native
        bfloat16 matmuls (AVX512-BF16 / AMX), else float32 (see `auto_dtype`). Similarity sums always run in float32.
    """
    # Bad options fail before anything is read or downloaded.
    resolve_dtype(dtype, device)
    resolve_device(device)
    ref = parse_model_ref(name_or_path)
    target = resolve(ref, revision=revision, progress=progress)
    if isinstance(target, ResolvedFiles):
        raw = read_safetensors(target.weights, target.config, target.backbones)
        entry, commit = target.pretrained, target.commit
    else:
        raw = read_checkpoint(target)
        entry, commit = ref.entry, None  # a local copy of a registry file (e.g. denseav_2head.ckpt) keeps its heads
    name = entry.name if entry is not None and ref.kind != "path" else ref.text
    provenance = ModelProvenance(name=name, revision=commit or revision, source=raw.source)
    with raw:
        return model_from_checkpoint(
            raw, head_names=entry.head_names if entry else None, device=device, dtype=dtype, provenance=provenance
        )
