"""Aligners: small heads that map backbone features into the shared audio-visual space (code_dim channels).

Everything here works channels-last: image tokens [B, N, D], audio frames [B, T, D], plus a cls vector [B, D]
(or None) that travels alongside. The original's 2-D convolutions over (freq=1, time) become linears: a 1x1 conv
is a linear over channels, a (1 x w, stride w) conv is a linear over windows of w frames.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Linear
from .transformer import Block

Cls = torch.Tensor | None

# LayerNorm eps of every aligner norm (a hard-coded constant of the original, not stored in any config).
ALIGNER_EPS = 1e-4
# Heads of the self-attention aligner (hard-coded in the original).
ALIGNER_HEADS = 6


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over channels, applied to the features and to the cls vector alike."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim, eps=ALIGNER_EPS)

    def forward(self, x: torch.Tensor, cls: Cls = None) -> tuple[torch.Tensor, Cls]:  # type: ignore[override]
        return super().forward(x), None if cls is None else super().forward(cls)


class LinearAligner(nn.Module):
    """LayerNorm, then a per-position linear. The cls goes through its own linear *un-normalised*
    (the original normalises it and throws the result away; reproduced on purpose)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim_in, eps=ALIGNER_EPS)
        self.proj = Linear(dim_in, dim_out)
        self.cls_proj = Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor, cls: Cls = None) -> tuple[torch.Tensor, Cls]:
        return self.proj(self.norm(x)), None if cls is None else self.cls_proj(cls)


class TimePool(nn.Module):
    """Learned temporal pooling: a linear over non-overlapping windows of `width` frames (a strided conv).

    `cls_proj=True` maps the cls with its own linear (the first pool of `audio_sa_3_3_pool_2`); otherwise the cls
    passes unchanged. Trailing frames that do not fill a window are dropped, as the convolution does.
    """

    def __init__(self, dim_in: int, dim_out: int, width: int, *, cls_proj: bool = False) -> None:
        super().__init__()
        self.width = width
        self.proj = Linear(width * dim_in, dim_out)  # input index = k * dim_in + channel
        self.cls_proj = Linear(dim_in, dim_out) if cls_proj else None

    def forward(self, x: torch.Tensor, cls: Cls = None) -> tuple[torch.Tensor, Cls]:
        b, t, d = x.shape
        steps = t // self.width
        x = self.proj(x[:, : steps * self.width].reshape(b, steps, self.width * d))
        if self.cls_proj is not None and cls is not None:
            cls = self.cls_proj(cls)
        return x, cls


class SelfAttentionAligner(nn.Module):
    """One transformer block over the time steps, with the cls (if any) as an extra leading token.

    The original zero-pads channels at the front up to a multiple of its 6 heads and drops them afterwards.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pad = (ALIGNER_HEADS - dim % ALIGNER_HEADS) % ALIGNER_HEADS
        self.block = Block(dim + self.pad, ALIGNER_HEADS, mlp_hidden=4 * (dim + self.pad), eps=ALIGNER_EPS)

    def forward(self, x: torch.Tensor, cls: Cls = None) -> tuple[torch.Tensor, Cls]:
        tokens = x if cls is None else torch.cat([cls[:, None], x], dim=1)
        tokens = self.block(F.pad(tokens, (self.pad, 0)))[..., self.pad :]
        if cls is None:
            return tokens, None
        return tokens[:, 1:], tokens[:, 0]


class Identity(nn.Module):
    """A stage with no effect. Stands for the original's frequency average, an identity on HuBERT's 1-row
    features, so that stage indices stay aligned with the original layouts."""

    def forward(self, x: torch.Tensor, cls: Cls = None) -> tuple[torch.Tensor, Cls]:
        return x, cls


class Aligner(nn.Module):
    """An ordered chain of named stages, each mapping (features, cls) -> (features, cls)."""

    # Sequences longer than this run their leading position-local stages (norms, linears, time pools) in chunks:
    # ten minutes of HuBERT frames would otherwise be normalised in one 123 MB copy. Same results.
    chunk_steps = 4500

    def __init__(self, stages: list[tuple[str, nn.Module]]) -> None:
        super().__init__()
        self.stages = nn.ModuleDict(dict(stages))

    def forward(self, x: torch.Tensor, cls: Cls = None) -> tuple[torch.Tensor, Cls]:
        if x.shape[1] > self.chunk_steps and self.num_local_stages:
            size = max(
                self.time_reduction_local, self.chunk_steps // self.time_reduction_local * self.time_reduction_local
            )
            return self.forward_stream(x.split(size, dim=1), cls)
        for stage in self.stages.values():
            x, cls = stage(x, cls)
        return x, cls

    def forward_stream(self, pieces: Iterable[torch.Tensor], cls: Cls = None) -> tuple[torch.Tensor, Cls]:
        """`forward` of the concatenation of `pieces` (consecutive [B, t, D] slices of one sequence), holding only
        their reduced features: the leading position-local stages (norms, linears, time pools) run piece by piece,
        the rest (attention) once on the joined result. Same results as `forward` on the whole sequence."""
        stages = list(self.stages.values())
        local, factor = stages[: self.num_local_stages], self.time_reduction_local
        reduced, carry, local_cls = [], None, cls
        for piece in pieces:
            x = piece if carry is None else torch.cat([carry, piece], dim=1)
            usable = x.shape[1] // factor * factor  # frames that fill whole pool windows; the rest waits
            if usable:
                y, local_cls = self._run(local, x[:, :usable], cls)
                reduced.append(y)
            # Copied out (fewer than `factor` frames) and the piece dropped, so no piece-sized buffer is held
            # while the source produces the next one (see AudioEncoder.stream).
            carry = x[:, usable:].clone()
            del piece, x
        if not reduced:  # too short for one step: an empty sequence, and the cls through the local stages
            if carry is None:
                raise ValueError("forward_stream needs at least one piece")
            y, local_cls = self._run(local, carry[:, :0], cls)
            reduced.append(y)
        # frames left in `carry` do not fill a pool window: the pools drop them, as the convolution does
        return self._run(stages[len(local) :], torch.cat(reduced, dim=1), local_cls)

    @staticmethod
    def _run(stages: list[nn.Module], x: torch.Tensor, cls: Cls) -> tuple[torch.Tensor, Cls]:
        for stage in stages:
            x, cls = stage(x, cls)
        return x, cls

    @property
    def num_local_stages(self) -> int:
        """How many leading stages treat each position (or pool window) on its own (all before the attention)."""
        stages = list(self.stages.values())
        return next((i for i, s in enumerate(stages) if isinstance(s, SelfAttentionAligner)), len(stages))

    @property
    def time_reduction_local(self) -> int:
        """Input steps per output step of the leading position-local stages."""
        factor = 1
        for stage in list(self.stages.values())[: self.num_local_stages]:
            factor *= stage.width if isinstance(stage, TimePool) else 1
        return factor

    @property
    def time_reduction(self) -> int:
        """How many input steps make one output step."""
        factor = 1
        for stage in self.stages.values():
            if isinstance(stage, TimePool):
                factor *= stage.width
        return factor


def build_image_aligner(dim_in: int, code_dim: int) -> Aligner:
    """The original's `image_linear` aligner (the only image aligner of the published checkpoints)."""
    return Aligner([("linear", LinearAligner(dim_in, code_dim))])


def build_audio_aligner(dim_in: int, code_dim: int) -> Aligner:
    """The original's `audio_sa_3_3_pool_2` aligner (the only audio aligner of the published checkpoints).

    Stage order = the original's `mod_list` order, which is how the checkpoint conversion finds each stage.
    """
    return Aligner(
        [
            ("freq_avg", Identity()),
            ("norm", ChannelNorm(dim_in)),
            ("pool1", TimePool(dim_in, code_dim, 3, cls_proj=True)),
            ("pool2", TimePool(code_dim, code_dim, 3)),
            ("attention", SelfAttentionAligner(code_dim)),
        ]
    )
