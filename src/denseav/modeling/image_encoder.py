"""Image encoder: the DINO ViT (ViT-S/8 in the published models) whose last-layer patch tokens are the image features."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .transformer import Block


@dataclass(frozen=True)
class ImageEncoderConfig:
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    patch_size: int = 8
    mlp_ratio: float = 4.0
    layer_norm_eps: float = 1e-4
    pos_grid: tuple[int, int] = (28, 28)  # the learned position grid (224 / 8)

    @property
    def training_size(self) -> int:
        """The short side (pixels) the backbone was trained at: 224 for the published models."""
        return self.pos_grid[0] * self.patch_size


class ImageEncoder(nn.Module):
    """Patchify, prepend cls, add (resized) positions, run the blocks, final LayerNorm.

    Returns patch features [B, h*w, D] (row-major) and the cls feature [B, D], both after the final norm.
    """

    def __init__(self, config: ImageEncoderConfig) -> None:
        super().__init__()
        self.config = config
        d, p = config.embed_dim, config.patch_size
        self.patch_embed = nn.Conv2d(3, d, kernel_size=p, stride=p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.pos_grid[0] * config.pos_grid[1], d))
        self.blocks = nn.ModuleList(
            Block(d, config.num_heads, mlp_hidden=int(d * config.mlp_ratio), eps=config.layer_norm_eps)
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self._pos_cache: dict[tuple, torch.Tensor] = {}

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """[1, 1 + h*w, D] positions for an h x w patch grid.

        Reproduces DINO's resize exactly: bicubic with scale factors (h + 0.1) / 28 rather than a target size,
        because PyTorch maps source coordinates through the given scale factor (sizes differ by up to 1e-1).
        """
        gh, gw = self.config.pos_grid
        if h * w == gh * gw and h == w:
            return self.pos_embed
        key = (h, w, self.pos_embed.dtype, self.pos_embed.device, self.pos_embed.data_ptr(), self.pos_embed._version)
        cached = self._pos_cache.get(key)
        if cached is not None:
            return cached
        cls_pos, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        grid = rearrange(grid, "1 (gh gw) d -> 1 d gh gw", gh=gh, gw=gw).float()
        grid = F.interpolate(grid, scale_factor=((h + 0.1) / gh, (w + 0.1) / gw), mode="bicubic", align_corners=False)
        if grid.shape[-2:] != (h, w):  # cannot happen for sane sizes; the original asserts the same
            raise RuntimeError(f"position grid resized to {tuple(grid.shape[-2:])}, expected {(h, w)}")
        grid = rearrange(grid, "1 d h w -> 1 (h w) d").to(self.pos_embed.dtype)
        pos = torch.cat([cls_pos, grid], dim=1)
        if len(self._pos_cache) > 16:
            self._pos_cache.clear()
        self._pos_cache[key] = pos
        return pos

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, height, width = pixels.shape
        p = self.config.patch_size
        if height % p or width % p:
            raise ValueError(f"image size {height}x{width} is not a multiple of the patch size {p}")
        x = rearrange(self.patch_embed(pixels.to(self.patch_embed.weight.dtype)), "b d h w -> b (h w) d").float()
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
        x = x + self.position_embedding(height // p, width // p)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, 1:], x[:, 0]
