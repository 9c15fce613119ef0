"""The model variants the benchmarks compare: the package's dtypes, plus int8 dynamic quantisation (not shipped).

"int8" is torch's maintained dynamic quantisation (torch.ao.quantization.quantize_dynamic) of every linear layer of
the float32 model but those KEEP_FLOAT32 names (the aligners, the audio conv encoder and projection): weights
stored as int8, activations quantised per call; the conv feature encoder (whose
convolutions run as plain F.linear calls on float32 weights) and the attention stay float32. It is measured here to
decide whether `dtype="int8"` is worth shipping (see the README, Performance, item 4).
"""

from __future__ import annotations

import torch
from torch import nn

import denseav
from denseav.modeling.layers import KEEP_FLOAT32, Linear

VARIANTS = ("float32", "bfloat16", "float16", "int8")


def load_variant(folder, variant: str) -> denseav.DenseAV:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    if variant != "int8":
        return denseav.load(folder, device="cpu", dtype=variant, progress=False)
    model = denseav.load(folder, device="cpu", progress=False)
    _as_plain_linears(model)
    return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)


def _as_plain_linears(module: nn.Module, prefix: str = "") -> None:
    """Our Linear only adds dtype casts (no-ops in float32); the quantiser maps exact nn.Linear types. The stages
    the precision policy keeps float32 (KEEP_FLOAT32) stay our Linear, so the quantiser leaves them alone."""
    for name, child in module.named_children():
        path = f"{prefix}{name}."
        if path.startswith(KEEP_FLOAT32):
            continue
        if type(child) is Linear:
            plain = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
            plain.weight, plain.bias = child.weight, child.bias
            setattr(module, name, plain)
        else:
            _as_plain_linears(child, path)
