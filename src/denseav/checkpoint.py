"""Reading the original DenseAV checkpoints. This is the one module that knows the original's layout.

* `read_checkpoint` opens a Hugging Face `model.safetensors` + `config.json` pair or a Lightning `.ckpt`.
* `config_from_original` turns the original's constructor arguments (config.json / ckpt `hyper_parameters`)
  into a `DenseAVConfig`.
* `checkpoint_filter_fn` converts the original's state dict into this package's layout: peft LoRA merged into
  qkv, HuBERT's weight norm folded, q/k/v fused, 2-D convolutions over (1 x w) turned into linears, training-only
  tensors dropped. Both peft namings and both weight-norm namings are accepted.

Backbone sizes of non-published checkpoints (the tiny test fixtures, say) come from an optional `backbones.json`
beside the weights; the published checkpoints have none and get the published sizes (DINO ViT-S/8, HuBERT-Large).
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError
from .modeling import AudioEncoderConfig, DenseAV, DenseAVConfig, ImageEncoderConfig
from .modeling.aligners import ChannelNorm, LinearAligner, TimePool
from .modeling.layers import matmul_parameter_names

LORA_ALPHA = 32  # hard-coded in the original, not stored in any config
BACKBONES_FILE = "backbones.json"

# av_align.yaml defaults plus hubconf's overrides, for keys a config does not carry (spec 8.4).
ORIGINAL_DEFAULTS: dict[str, Any] = {
    "code_dim": 384,
    "image_model_type": "dino8",
    "image_model_token_type": "token",
    "image_aligner_type": "image_linear",
    "image_pool_width": 2,
    "image_lora": True,
    "image_lora_rank": 8,
    "audio_model_type": "hubert",
    "audio_aligner_type": "audio_sa_3_3_pool_2",
    "audio_pool_width": 1,
    "audio_lora": False,
    "learn_audio_cls": True,
    "nonneg_sim": False,
    "norm_vectors": False,
    "sim_agg_type": "misa",
    "sim_agg_heads": 1,
    "sim_use_cls": False,
    "head_agg": "max_elementwise",
    "mask_silence": True,
}
IMAGE_PATCH = {"dino8": 8, "dino16": 16}


@dataclass
class RawCheckpoint:
    """What a checkpoint file holds, before conversion."""

    hparams: dict[str, Any]
    tensors: TensorSource
    backbones: dict[str, Any] | None
    source: str


class TensorSource(Mapping[str, torch.Tensor]):
    """Lazy, read-once access to a checkpoint's tensors, so conversion never holds two full copies."""

    def __init__(self, keys: list[str], getter, shapes: dict[str, tuple[int, ...]]) -> None:
        self._keys = keys
        self._get = getter
        self.shapes = shapes

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._get(key, None)

    def read(self, key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The tensor, converted to `dtype` while reading where the source can (no full-precision temporary)."""
        return self._get(key, dtype)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"could not read the {what} {path}: {e}") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"the {what} {path} is not a JSON object")
    return data


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class SafetensorsFile:
    """A minimal safetensors reader that reads each tensor with one `readinto` into its final buffer.

    Unlike a memory map, nothing of the file stays resident once read, so loading holds one copy of the weights
    (a mapped file's touched pages count towards the process's resident memory until unmapped). The whole layout
    is validated up front, so a truncated download fails before anything is built.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        size = path.stat().st_size
        self._file = open(path, "rb")
        self._scratch: torch.Tensor | None = None
        head = self._file.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n <= 0 or n > min(size - 8, 100 << 20):
            raise ValueError("no valid safetensors header")
        try:
            header = json.loads(self._file.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"unreadable header: {e}") from e
        header.pop("__metadata__", None)
        self.base = 8 + n
        self.entries: dict[str, tuple[torch.dtype, tuple[int, ...], int, int]] = {}
        for key, info in header.items():
            dtype = _SAFETENSORS_DTYPES.get(info.get("dtype"))
            if dtype is None:
                raise ValueError(f"tensor {key!r} has unsupported dtype {info.get('dtype')!r}")
            shape = tuple(int(x) for x in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
            if end - begin != torch.Size(shape).numel() * torch.empty(0, dtype=dtype).element_size():
                raise ValueError(f"tensor {key!r}: byte range does not match its shape")
            if self.base + end > size:
                raise ValueError(f"file ends at byte {size:,} but tensor {key!r} needs bytes up to {self.base + end:,}")
            self.entries[key] = (dtype, shape, begin, end)

    def get(self, key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Read one tensor. With a different `dtype`, the bytes go through one reused scratch buffer, so
        converting a checkpoint to bfloat16 never allocates (and fragments the heap with) float32 temporaries."""
        stored, shape, begin, end = self.entries[key]
        convert = dtype is not None and dtype != stored
        if convert:
            if self._scratch is None or self._scratch.numel() < end - begin:
                self._scratch = torch.empty(max(end - begin, 16 << 20), dtype=torch.uint8)
            raw = self._scratch[: end - begin]
        else:
            tensor = torch.empty(shape, dtype=stored)
            raw = tensor.reshape(-1).view(torch.uint8)
        if end > begin:
            self._file.seek(self.base + begin)
            if self._file.readinto(memoryview(raw.numpy())) != end - begin:
                raise ValueError(f"short read of {key!r}")
        if convert:
            return raw.view(stored).reshape(shape).to(dtype)
        return tensor

    def close(self) -> None:
        self._file.close()


def read_safetensors(weights: Path, config: Path | None, backbones: Path | None = None) -> RawCheckpoint:
    if config is None or not config.is_file():
        raise CheckpointError(
            f"{weights} has no config.json beside it; DenseAV checkpoints on the Hub ship one (it says how the "
            "model was built). Put the repo's config.json in the same folder."
        )
    hparams = _read_json(config, "checkpoint config")
    try:
        reader = SafetensorsFile(weights)
    except (OSError, ValueError, KeyError, TypeError) as e:
        size = weights.stat().st_size if weights.exists() else 0
        raise CheckpointError(
            f"{weights} is not a readable safetensors file ({size:,} bytes; {e}). It is probably corrupt or a "
            "partial download: delete it and download it again."
        ) from e

    def get(key: str, dtype: torch.dtype | None) -> torch.Tensor:
        try:
            return reader.get(key, dtype)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{weights} is truncated or corrupt (reading {key!r}: {e}); download it again") from e

    bb = _read_json(backbones, "backbone sizes") if backbones is not None and backbones.is_file() else None
    shapes = {k: v[1] for k, v in reader.entries.items()}
    return RawCheckpoint(hparams, TensorSource(list(reader.entries), get, shapes), bb, str(weights))


def read_ckpt(path: Path, backbones: Path | None = None) -> RawCheckpoint:
    """A Lightning checkpoint, read with `weights_only=True`: tensors and plain values, never pickled code."""
    try:
        try:
            data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            data = torch.load(str(path), map_location="cpu", weights_only=True)  # old (non-zip) format
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path} holds Python objects beyond tensors and plain values; denseav refuses to unpickle code from "
            f"checkpoints. Re-save just its 'state_dict' and 'hyper_parameters' with torch.save. ({e})"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (corrupt or truncated?): {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), Mapping):
        raise CheckpointError(f"{path} has no 'state_dict'; expected a Lightning checkpoint of DenseAV")
    state = data["state_dict"]
    hparams = data.get("hyper_parameters") or {}
    if not isinstance(hparams, Mapping):
        raise CheckpointError(f"{path}: 'hyper_parameters' is not a dict")
    bb = _read_json(backbones, "backbone sizes") if backbones is not None and backbones.is_file() else None
    shapes = {k: tuple(v.shape) for k, v in state.items()}

    def get(key: str, dtype: torch.dtype | None) -> torch.Tensor:
        return state[key] if dtype is None else state[key].to(dtype)

    return RawCheckpoint(dict(hparams), TensorSource(list(state), get, shapes), bb, str(path))


def read_checkpoint(path: str | os.PathLike) -> RawCheckpoint:
    """A local checkpoint: a folder with config.json + model.safetensors (+ backbones.json), a .safetensors file
    with config.json beside it, or a Lightning .ckpt (backbones.json or `<name>.backbones.json` beside it)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {p}")
    if p.is_dir():
        weights = p / "model.safetensors"
        if weights.is_file():
            return read_safetensors(weights, p / "config.json", p / BACKBONES_FILE)
        ckpts = sorted(p.glob("*.ckpt"))
        if len(ckpts) == 1:
            return read_checkpoint(ckpts[0])
        raise CheckpointError(
            f"{p} holds neither model.safetensors (with config.json) nor exactly one .ckpt file; "
            f"found: {sorted(x.name for x in p.iterdir())[:20]}"
        )
    sidecar = p.with_name(p.stem + "." + BACKBONES_FILE)
    backbones = sidecar if sidecar.is_file() else p.with_name(BACKBONES_FILE)
    if p.suffix == ".safetensors":
        return read_safetensors(p, p.with_name("config.json"), backbones)
    if p.suffix in (".ckpt", ".pt", ".pth", ".bin"):
        return read_ckpt(p, backbones)
    raise CheckpointError(f"{p}: unknown checkpoint format (expected a folder, .safetensors or .ckpt)")


# ---------------------------------------------------------------------------------------------------------------
# config


def _image_encoder_config(hp: dict[str, Any], backbones: dict[str, Any] | None) -> ImageEncoderConfig:
    kind = hp["image_model_type"]
    if kind not in IMAGE_PATCH:
        raise CheckpointError(f"image_model_type {kind!r} is not supported (supported: {sorted(IMAGE_PATCH)})")
    if hp["image_model_token_type"] != "token":
        raise CheckpointError(
            f"image_model_token_type {hp['image_model_token_type']!r} is not supported: the original's inference "
            "path only works with 'token' features"
        )
    bb = (backbones or {}).get("image_backbone") or {}
    grid = bb.get("pos_embed_grid") or (28, 28)
    return ImageEncoderConfig(
        embed_dim=int(bb.get("embed_dim", 384)),
        depth=int(bb.get("depth", 12)),
        num_heads=int(bb.get("num_heads", 6)),
        patch_size=int(bb.get("patch_size", IMAGE_PATCH[kind])),
        mlp_ratio=float(bb.get("mlp_ratio", 4.0)),
        layer_norm_eps=float(bb.get("layer_norm_eps", 1e-4)),
        pos_grid=(int(grid[0]), int(grid[1])),
    )


def _audio_encoder_config(hp: dict[str, Any], backbones: dict[str, Any] | None) -> AudioEncoderConfig:
    if hp["audio_model_type"] != "hubert":
        raise CheckpointError(f"audio_model_type {hp['audio_model_type']!r} is not supported (supported: 'hubert')")
    bb = (backbones or {}).get("audio_backbone") or {}
    d = AudioEncoderConfig()
    return AudioEncoderConfig(
        hidden_size=int(bb.get("hidden_size", d.hidden_size)),
        num_layers=int(bb.get("num_hidden_layers", d.num_layers)),
        num_heads=int(bb.get("num_attention_heads", d.num_heads)),
        intermediate_size=int(bb.get("intermediate_size", d.intermediate_size)),
        conv_dim=tuple(int(x) for x in bb.get("conv_dim", d.conv_dim)),
        conv_kernel=tuple(int(x) for x in bb.get("conv_kernel", d.conv_kernel)),
        conv_stride=tuple(int(x) for x in bb.get("conv_stride", d.conv_stride)),
        pos_conv_kernel=int(bb.get("pos_conv_kernel", d.pos_conv_kernel)),
        pos_conv_groups=int(bb.get("pos_conv_groups", d.pos_conv_groups)),
        layer_norm_eps=float(bb.get("layer_norm_eps", d.layer_norm_eps)),
        conv_layer_norm_eps=float(bb.get("conv_layer_norm_eps", d.conv_layer_norm_eps)),
    )


def default_head_names(hp: dict[str, Any]) -> tuple[str, ...]:
    """Head names when neither the registry nor the checkpoint names them.

    Two heads: language (head 0), sound (head 1), as the original's disentanglement setup and its demo colours
    show. One head: "sound" for the sound recipe (cls term in the similarity), else "language".
    """
    k = int(hp["sim_agg_heads"])
    if k == 2:
        return ("language", "sound")
    if k == 1:
        return ("sound",) if hp["sim_use_cls"] else ("language",)
    return tuple(f"head{i}" for i in range(k))


def config_from_original(
    hparams: Mapping[str, Any],
    backbones: Mapping[str, Any] | None = None,
    head_names: tuple[str, ...] | None = None,
) -> DenseAVConfig:
    """The original's constructor arguments -> DenseAVConfig. Unknown keys are ignored, missing ones defaulted."""
    hp = {**ORIGINAL_DEFAULTS, **{k: v for k, v in hparams.items() if v is not None or k not in ORIGINAL_DEFAULTS}}
    if hp.get("audio_lora"):
        raise CheckpointError("audio_lora=True checkpoints are not supported (none were published)")
    names = head_names or tuple((backbones or {}).get("head_names") or ()) or default_head_names(hp)
    try:
        return DenseAVConfig(
            code_dim=int(hp["code_dim"]),
            num_heads=int(hp["sim_agg_heads"]),
            head_names=tuple(names),
            image_encoder=_image_encoder_config(hp, dict(backbones or {})),
            audio_encoder=_audio_encoder_config(hp, dict(backbones or {})),
            image_aligner=hp["image_aligner_type"],
            audio_aligner=hp["audio_aligner_type"],
            learn_audio_cls=bool(hp["learn_audio_cls"]),
            use_cls_similarity=bool(hp["sim_use_cls"]),
            nonneg_similarity=bool(hp["nonneg_sim"]),
            normalize_features=bool(hp["norm_vectors"]),
            aggregation=hp["sim_agg_type"],
            head_aggregation=hp["head_agg"],
            mask_silence=bool(hp["mask_silence"]),
            image_pool_width=int(hp["image_pool_width"]),
            audio_pool_width=int(hp["audio_pool_width"]),
        )
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"the checkpoint's config does not describe a usable DenseAV model: {e}") from e


# ---------------------------------------------------------------------------------------------------------------
# state dict conversion

_IMAGE_PREFIXES = ("image_model.base_model.model.model.", "image_model.model.")
_AUDIO_PREFIXES = ("audio_model.base_model.model.model.", "audio_model.model.")
_DROPPED = {"audio_model.model.masked_spec_embed", "sim_cal.b"}  # training-only tensors

_IMAGE_RENAMES = [(r"^patch_embed\.proj\.", "patch_embed.")]
_AUDIO_RENAMES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_encoder.layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", r"feature_encoder.layers.\1.norm."),
    (r"^feature_projection\.layer_norm\.", "projection_norm."),
    (r"^feature_projection\.projection\.", "projection."),
    (r"^encoder\.pos_conv_embed\.conv\.", "pos_conv.conv."),
    (r"^encoder\.layer_norm\.", "norm."),
    (r"^encoder\.layers\.(\d+)\.attention\.out_proj\.", r"layers.\1.attn.out."),
    (r"^encoder\.layers\.(\d+)\.attention\.([qkv])_proj\.", r"layers.\1.attn.\2_proj."),
    (r"^encoder\.layers\.(\d+)\.layer_norm\.", r"layers.\1.attn_norm."),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.", r"layers.\1.ffn_norm."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"layers.\1.ffn.fc1."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"layers.\1.ffn.fc2."),
]
_WEIGHT_NORM = {
    "weight_g": "g",
    "weight_v": "v",
    "parametrizations.weight.original0": "g",
    "parametrizations.weight.original1": "v",
}


def _rename(key: str, rules: list[tuple[str, str]]) -> str:
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return key


def _stage_key(stage: nn.Module, rest: str, tensor: torch.Tensor) -> tuple[str, torch.Tensor]:
    """Original aligner sub-key -> ours, for one stage (the original wraps LayerNorms as `.norm` and uses
    2-D convolutions where we use linears)."""
    if isinstance(stage, ChannelNorm):
        return re.sub(r"^norm\.", "", rest), tensor
    rest = re.sub(r"^norm\.norm\.", "norm.", rest)
    rest = re.sub(r"^cls_layer\.", "cls_proj.", rest)
    if rest.startswith("layer."):
        rest = "proj." + rest[len("layer.") :]
        if rest == "proj.weight" and tensor.dim() == 4:
            if isinstance(stage, TimePool):  # [out, in, 1, w] -> [out, w * in], window-major
                tensor = tensor[:, :, 0, :].permute(0, 2, 1).reshape(tensor.shape[0], -1)
            elif isinstance(stage, LinearAligner):  # 1x1 conv -> linear
                tensor = tensor.reshape(tensor.shape[0], tensor.shape[1])
    return rest, tensor


def _aligner_key(aligner: nn.Module, prefix: str, rest: str, tensor: torch.Tensor) -> tuple[str, torch.Tensor]:
    stages = list(aligner.stages.items())
    m = re.match(r"^mod_list\.(\d+)\.(.*)$", rest)
    if m:  # a Sequential2 aligner: index -> our named stage
        index = int(m.group(1))
        if index >= len(stages):
            return f"{prefix}.<unknown stage {index}>.{m.group(2)}", tensor
        name, stage = stages[index]
        sub, tensor = _stage_key(stage, m.group(2), tensor)
        return f"{prefix}.stages.{name}.{sub}", tensor
    if len(stages) == 1:  # a single-module aligner (image_linear & co): its keys sit at the top
        name, stage = stages[0]
        sub, tensor = _stage_key(stage, rest, tensor)
        return f"{prefix}.stages.{name}.{sub}", tensor
    return f"{prefix}.<unexpected>.{rest}", tensor


def checkpoint_filter_fn(
    state: Mapping[str, torch.Tensor], model: DenseAV, dtype: torch.dtype | None = None
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Original state dict -> (this package's state dict, unexpected original keys).

    Reads each tensor once; pending pieces (LoRA A/B, weight-norm g/v, q/k/v) are combined as soon as complete.
    Arithmetic (LoRA merge, weight-norm fold) runs in float32; matmul weights are then cast to `dtype` if given,
    everything else (norms, embeddings) is kept in float32 (see modeling/layers.py).
    """
    out: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    pending: dict[str, dict[str, torch.Tensor]] = {}
    origin: dict[str, str] = {}

    low_precision = matmul_parameter_names(model)  # the rest (norms, embeddings) stays float32

    def put(key: str, tensor: torch.Tensor) -> None:
        if tensor.is_floating_point():
            tensor = tensor.to(dtype if (dtype is not None and key in low_precision) else torch.float32)
        out[key] = tensor

    read = getattr(state, "read", None)

    def fetch(key: str, target: str | None = None) -> torch.Tensor:
        """Read `key`, already in `dtype` when it lands as-is in a low-precision weight (no float32 merge)."""
        if dtype is None or read is None or target is None or not _reads_directly(key, target, low_precision):
            return state[key]
        return read(key, dtype)

    for key in state:
        if key in _DROPPED:
            continue
        backbone = key.startswith(_IMAGE_PREFIXES + _AUDIO_PREFIXES)
        if backbone:
            image = key.startswith(_IMAGE_PREFIXES)
            prefix = next(p for p in _IMAGE_PREFIXES + _AUDIO_PREFIXES if key.startswith(p))
            rest = key[len(prefix) :].replace(".base_layer.", ".")
            target = ("image_encoder." if image else "audio_encoder.") + _rename(
                rest, _IMAGE_RENAMES if image else _AUDIO_RENAMES
            )
            _route(target, fetch(key, target), key, put, pending, origin)
            continue
        tensor = state[key]
        if key == "audio_cls":
            put("audio_cls", tensor)
        elif key == "sim_cal.w":
            put("similarity.calibration", tensor)
        elif key.startswith("image_aligner."):
            new, tensor = _aligner_key(model.image_aligner, "image_aligner", key[len("image_aligner.") :], tensor)
            put(new, tensor)
            origin[new] = key
        elif key.startswith("audio_aligner."):
            new, tensor = _aligner_key(model.audio_aligner, "audio_aligner", key[len("audio_aligner.") :], tensor)
            put(new, tensor)
            origin[new] = key
        else:
            unexpected.append(key)
    for target, parts in pending.items():
        unexpected.append(f"{origin.get(target, target)} (incomplete: only {sorted(parts)} of its pieces)")
    known = set(model.state_dict().keys())
    for new in list(out):
        if new not in known:
            unexpected.append(origin.get(new, new))
            del out[new]
    return out, unexpected


def _reads_directly(original: str, target: str, low_precision: set[str]) -> bool:
    """Whether a backbone tensor goes unchanged (or only concatenated) into a low-precision weight."""
    if ".lora_" in original or any(target.endswith("." + s) for s in _WEIGHT_NORM):
        return False
    if target.endswith("attn.qkv.weight") and original.startswith("image_model.base_model."):
        return False  # the LoRA base weight: merged in float32 first
    return re.sub(r"\.attn\.[qkv]_proj\.", ".attn.qkv.", target) in low_precision


def _route(target: str, tensor: torch.Tensor, original: str, put, pending, origin) -> None:
    """Place one backbone tensor, combining multi-tensor pieces (LoRA, weight norm, q/k/v) once complete."""
    m = re.match(r"^(.*)\.lora_([AB])\.default\.weight$", target)
    if m:
        _collect(m.group(1) + ".weight", "lora_" + m.group(2), tensor, original, put, pending, origin)
        return
    for suffix, part in _WEIGHT_NORM.items():
        if target.endswith("." + suffix):
            _collect(target[: -len(suffix)] + "weight", "wn_" + part, tensor, original, put, pending, origin)
            return
    m = re.match(r"^(.*)\.attn\.([qkv])_proj\.(weight|bias)$", target)
    if m:
        _collect(f"{m.group(1)}.attn.qkv.{m.group(3)}", m.group(2), tensor, original, put, pending, origin)
        return
    if target.endswith("attn.qkv.weight") and original.startswith("image_model.base_model."):
        _collect(target, "base", tensor, original, put, pending, origin)  # LoRA-wrapped: wait for A and B
        return
    put(target, tensor)
    origin[target] = original


def _collect(target: str, part: str, tensor: torch.Tensor, original: str, put, pending, origin) -> None:
    parts = pending.setdefault(target, {})
    parts[part] = tensor
    origin.setdefault(target, original)
    if {"base", "lora_A", "lora_B"} <= parts.keys():
        base, a, b = parts["base"].float(), parts["lora_A"].float(), parts["lora_B"].float()
        rank = a.shape[0]
        put(target, base + (LORA_ALPHA / rank) * (b @ a))  # W + (alpha / r) B A: LoRA merged for inference
    elif {"wn_g", "wn_v"} <= parts.keys():
        g, v = parts["wn_g"].float(), parts["wn_v"].float()
        dims = [d for d in range(v.dim()) if g.shape[d] == 1]  # g keeps the weight-norm axis (2 for HuBERT)
        put(target, v * (g / v.pow(2).sum(dim=dims, keepdim=True).sqrt()))
    elif {"q", "k", "v"} <= parts.keys():
        put(target, torch.cat([parts["q"], parts["k"], parts["v"]], dim=0))
    else:
        return
    del pending[target]
