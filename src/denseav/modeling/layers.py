"""Precision policy for bfloat16 / float16 models: matmuls in the weights' low precision, the rest in float32.

Linear and convolution weights may be stored in bfloat16 or float16 (half the memory, several times the matmul
speed on CPUs with AMX/AVX512-BF16 and on GPUs), while residual streams, LayerNorms, attention (q, k, v and
softmax), position embeddings and the similarity stay float32. Rounding every residual add to 8 mantissa bits is
what makes a naive all-bfloat16 model drift (1.4% of the heatmaps' range on the test fixtures); this policy keeps
bfloat16 heatmaps within 0.9% and float16 within 0.11%. With float32 weights every cast is a no-op.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Linear(nn.Linear):
    """nn.Linear computed in the weight's dtype, returned in the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(self.weight.dtype), self.weight, self.bias).to(x.dtype)


# Kept float32 whatever the model's dtype: the aligners (about 1% of parameters and work) make the features whose
# dot products are the heatmaps, and the first audio convolution reads the raw waveform, whose 8-bit-mantissa
# rounding alone moved bfloat16 heatmaps by ~0.2% of their range on the test fixtures.
KEEP_FLOAT32 = ("image_aligner.", "audio_aligner.", "audio_encoder.feature_encoder.layers.0.")


def matmul_parameter_names(model: nn.Module, *, keep_float32: tuple[str, ...] = KEEP_FLOAT32) -> set[str]:
    """State-dict names of the weights and biases that may be stored in low precision."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        if (prefix + ".").startswith(keep_float32):
            continue
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            names.update(f"{prefix}.{p}" for p, _ in module.named_parameters(recurse=False))
    return names
