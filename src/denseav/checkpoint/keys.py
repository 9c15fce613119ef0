"""The original's state dict -> this package's: the one module that knows the original's key names.

peft LoRA is merged into qkv, HuBERT's positional-conv weight norm folded, HuBERT's q/k/v fused, both backbones'
layers mapped onto the shared `transformer.Block`, the aligners' 2-D (1 x w) convolutions turned into linears, and
training-only tensors dropped. Both peft namings (`qkv.weight`, `qkv.base_layer.weight`) and both weight-norm
namings (`weight_g`/`weight_v`, `parametrizations.weight.original0/1`) are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from ..heap import release_free_memory
from ..modeling import DenseAV
from ..modeling.aligners import Aligner, ChannelNorm, LinearAligner, TimePool
from ..modeling.layers import matmul_parameter_names
from .readers import TensorSource

LORA_ALPHA = 32  # hard-coded in the original, not stored in any config

_IMAGE_PREFIXES = ("image_model.base_model.model.model.", "image_model.model.")
_AUDIO_PREFIXES = ("audio_model.base_model.model.model.", "audio_model.model.")
_DROPPED = {"audio_model.model.masked_spec_embed", "sim_cal.b"}  # training-only tensors

# Backbone key renames (after the prefix): first matching rule wins.
_IMAGE_RENAMES = [(r"^patch_embed\.proj\.", "patch_embed.")]  # DINO's blocks already have the shared names
_AUDIO_RENAMES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_encoder.layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", r"feature_encoder.layers.\1.norm."),
    (r"^feature_projection\.layer_norm\.", "projection_norm."),
    (r"^feature_projection\.projection\.", "projection."),
    (r"^encoder\.pos_conv_embed\.conv\.", "pos_conv.conv."),
    (r"^encoder\.layer_norm\.", "norm."),
    # HuBERT's "stable layer norm" encoder layers -> the shared pre-norm Block (q/k/v are fused below).
    (r"^encoder\.layers\.(\d+)\.layer_norm\.", r"blocks.\1.norm1."),
    (r"^encoder\.layers\.(\d+)\.attention\.([qkv])_proj\.", r"blocks.\1.attn.\2_proj."),
    (r"^encoder\.layers\.(\d+)\.attention\.out_proj\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.", r"blocks.\1.norm2."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"blocks.\1.mlp.fc1."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"blocks.\1.mlp.fc2."),
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
    rest = re.sub(r"^norm\.norm\.", "norm.", rest)  # LinearAligner's norm, wrapped once more in the original
    rest = re.sub(r"^cls_layer\.", "cls_proj.", rest)
    if rest.startswith("layer."):
        rest = "proj." + rest[len("layer.") :]
        if rest == "proj.weight" and tensor.dim() == 4:
            if isinstance(stage, TimePool):  # [out, in, 1, w] -> [out, w * in], window-major
                tensor = tensor[:, :, 0, :].permute(0, 2, 1).reshape(tensor.shape[0], -1)
            elif isinstance(stage, LinearAligner):  # 1x1 conv -> linear
                tensor = tensor.reshape(tensor.shape[0], tensor.shape[1])
    return rest, tensor


def _aligner_key(aligner: Aligner, prefix: str, rest: str, tensor: torch.Tensor) -> tuple[str, torch.Tensor]:
    stages = list(aligner.stages.items())
    m = re.match(r"^mod_list\.(\d+)\.(.*)$", rest)
    if m:  # a Sequential2 aligner: index -> our named stage
        index = int(m.group(1))
        if index >= len(stages):
            return f"{prefix}.<unknown stage {index}>.{m.group(2)}", tensor
        name, stage = stages[index]
        sub, tensor = _stage_key(stage, m.group(2), tensor)
        return f"{prefix}.stages.{name}.{sub}", tensor
    if len(stages) == 1:  # a single-module aligner (image_linear): its keys sit at the top
        name, stage = stages[0]
        sub, tensor = _stage_key(stage, rest, tensor)
        return f"{prefix}.stages.{name}.{sub}", tensor
    return f"{prefix}.<unexpected>.{rest}", tensor


class KeyConverter:
    """Converts one original state dict for one model: `KeyConverter(model, dtype).convert(tensors)`.

    Reads each tensor once; multi-tensor pieces (LoRA base/A/B, weight-norm g/v, q/k/v) wait in `pending` until
    complete and are combined then. Arithmetic (LoRA merge, weight-norm fold) runs in float32; matmul weights are
    then cast to `dtype` if given, everything else (norms, embeddings) kept in float32 (see modeling/layers.py).
    """

    def __init__(self, model: DenseAV, dtype: torch.dtype | None = None) -> None:
        self.model = model
        self.dtype = dtype
        self.low_precision = matmul_parameter_names(model)  # the rest (norms, embeddings) stays float32
        self.out: dict[str, torch.Tensor] = {}
        self.unexpected: list[str] = []
        self.pending: dict[str, dict[str, torch.Tensor]] = {}
        self.origin: dict[str, str] = {}  # our key -> the original key it came from (for error messages)

    def convert(self, state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """-> (this package's state dict, original keys that found no place)."""
        for key in state:
            if key in _DROPPED:
                continue
            if key.startswith(_IMAGE_PREFIXES + _AUDIO_PREFIXES):
                self._backbone(state, key)
            else:
                self._head(key, state[key])
        return self._finish()

    def _put(self, key: str, tensor: torch.Tensor, original: str) -> None:
        if tensor.is_floating_point():
            tensor = tensor.to(self.dtype if self.dtype is not None and key in self.low_precision else torch.float32)
        self.out[key] = tensor
        self.origin.setdefault(key, original)

    def _head(self, key: str, tensor: torch.Tensor) -> None:
        """The tensors outside the backbones: aligners, the audio cls, the similarity's calibration."""
        if key == "audio_cls":
            self._put("audio_cls", tensor, key)
        elif key == "sim_cal.w":
            self._put("similarity.calibration", tensor, key)
        elif key.startswith(("image_aligner.", "audio_aligner.")):
            prefix, rest = key.split(".", 1)
            aligner = self.model.image_aligner if prefix == "image_aligner" else self.model.audio_aligner
            new, tensor = _aligner_key(aligner, prefix, rest, tensor)
            self._put(new, tensor, key)
        else:
            self.unexpected.append(key)

    def _backbone(self, state: Mapping[str, torch.Tensor], key: str) -> None:
        image = key.startswith(_IMAGE_PREFIXES)
        prefix = next(p for p in _IMAGE_PREFIXES + _AUDIO_PREFIXES if key.startswith(p))
        rest = key[len(prefix) :].replace(".base_layer.", ".")
        target = ("image_encoder." if image else "audio_encoder.") + _rename(
            rest, _IMAGE_RENAMES if image else _AUDIO_RENAMES
        )
        if isinstance(state, TensorSource) and self.dtype is not None and self._reads_directly(key, target):
            tensor = state.read(key, self.dtype)  # already in the target dtype: no float32 copy of it ever exists
        else:
            tensor = state[key]
        self._route(target, tensor, key)

    def _reads_directly(self, original: str, target: str) -> bool:
        """Whether a backbone tensor goes unchanged (or only concatenated) into a low-precision weight."""
        if ".lora_" in original or any(target.endswith("." + s) for s in _WEIGHT_NORM):
            return False
        if target.endswith("attn.qkv.weight") and original.startswith("image_model.base_model."):
            return False  # the LoRA base weight: merged in float32 first
        return re.sub(r"\.attn\.[qkv]_proj\.", ".attn.qkv.", target) in self.low_precision

    def _route(self, target: str, tensor: torch.Tensor, original: str) -> None:
        """Place one backbone tensor, or park it as a piece of a combined one (LoRA, weight norm, q/k/v)."""
        m = re.match(r"^(.*)\.lora_([AB])\.default\.weight$", target)
        if m:
            return self._collect(m.group(1) + ".weight", "lora_" + m.group(2), tensor, original)
        for suffix, part in _WEIGHT_NORM.items():
            if target.endswith("." + suffix):
                return self._collect(target[: -len(suffix)] + "weight", "wn_" + part, tensor, original)
        m = re.match(r"^(.*)\.attn\.([qkv])_proj\.(weight|bias)$", target)
        if m:
            return self._collect(f"{m.group(1)}.attn.qkv.{m.group(3)}", m.group(2), tensor, original)
        if target.endswith("attn.qkv.weight") and original.startswith("image_model.base_model."):
            return self._collect(target, "base", tensor, original)  # LoRA-wrapped: wait for A and B
        self._put(target, tensor, original)

    def _collect(self, target: str, part: str, tensor: torch.Tensor, original: str) -> None:
        parts = self.pending.setdefault(target, {})
        parts[part] = tensor
        self.origin.setdefault(target, original)
        combined = _combine(parts)
        if combined is not None:
            del self.pending[target], parts
            self._put(target, combined, original)
            # The pieces just freed sit between kept tensors in glibc's heap; left there, they added up to ~190 MB
            # of peak RSS while loading the full-size model (1.79 GB vs 1.61 GB after it).
            release_free_memory()

    def _finish(self) -> tuple[dict[str, torch.Tensor], list[str]]:
        for target, parts in self.pending.items():
            self.unexpected.append(
                f"{self.origin.get(target, target)} (incomplete: only {sorted(parts)} of its pieces)"
            )
        known = set(self.model.state_dict().keys())
        for new in [k for k in self.out if k not in known]:
            self.unexpected.append(self.origin.get(new, new))
            del self.out[new]
        return self.out, self.unexpected


def _combine(parts: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The combined tensor once all of its pieces are there, else None."""
    if {"base", "lora_A", "lora_B"} <= parts.keys():
        base, a, b = parts["base"].float(), parts["lora_A"].float(), parts["lora_B"].float()
        rank = a.shape[0]
        return base + (LORA_ALPHA / rank) * (b @ a)  # W + (alpha / r) B A: LoRA merged for inference
    if {"wn_g", "wn_v"} <= parts.keys():
        g, v = parts["wn_g"].float(), parts["wn_v"].float()
        dims = [d for d in range(v.dim()) if g.shape[d] == 1]  # g keeps the weight-norm axis (2 for HuBERT)
        return v * (g / v.pow(2).sum(dim=dims, keepdim=True).sqrt())
    if {"q", "k", "v"} <= parts.keys():
        return torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return None


def checkpoint_filter_fn(
    state: Mapping[str, torch.Tensor], model: DenseAV, dtype: torch.dtype | None = None
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Original state dict -> (this package's state dict, unexpected original keys), as timm names this step."""
    return KeyConverter(model, dtype).convert(state)
