"""The one pre-norm transformer block: DINO's ViT blocks, HuBERT-Large's encoder layers and the audio aligner's block.

HuBERT-Large is the "stable layer norm" variant, whose layers are pre-norm exactly like DINO's
(`x + Attn(LN(x))`, then `x + MLP(LN(x))`, biases on every projection, exact GELU, softmax scaled by head_dim^-0.5);
only widths and the LayerNorm eps differ, and those are parameters. The checkpoint conversion maps both backbones'
original key names onto the names here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .layers import Linear


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection laid out as [q | k | v], heads contiguous."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = Linear(dim, 3 * dim)
        self.proj = Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(rearrange(x, "b h n d -> b n (h d)"))


class MLP(nn.Module):
    """Linear -> exact (erf) GELU -> Linear, as the original, applied to each token on its own."""

    # The hidden activation is 4x wider than the tokens, so a 30 s audio window (1500 x 4096) or a batch of eight
    # 16:9 frames (10984 x 1536) would hold 25-67 MB of it at once. Each token is independent, so longer inputs
    # pass through in slices of this many rows: the same values (the products' reduction runs over the features,
    # not the rows), a fraction of the memory. A 224x224 image (785 tokens) and 10 s of audio (499) are one slice.
    chunk_rows = 1024

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden)
        self.fc2 = Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        if rows.shape[0] <= self.chunk_rows:
            return self._tokens(x)
        out = torch.empty(rows.shape[0], self.fc2.out_features, dtype=x.dtype, device=x.device)
        for start in range(0, rows.shape[0], self.chunk_rows):
            out[start : start + self.chunk_rows] = self._tokens(rows[start : start + self.chunk_rows])
        return out.view(*x.shape[:-1], -1)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.fc1(x)
        # In place when no gradient is wanted: the same kernel as F.gelu without a second hidden-sized buffer.
        hidden = F.gelu(hidden) if hidden.requires_grad else torch.ops.aten.gelu_(hidden)
        return self.fc2(hidden)


class Block(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x)). DenseAV uses LayerNorm eps 1e-4 in every block (DINO's own is 1e-6,
    HuBERT's 1e-5; the original overrides both)."""

    def __init__(self, dim: int, num_heads: int, *, mlp_hidden: int, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
