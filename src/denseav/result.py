"""Result objects handed back by `ground`: the dense similarity volume plus what is needed to read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from .image import ImageGeometry, maps_to_original

TimeSelect = int | str | None


def temporal_blur(maps: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The original demo's display smoothing: a 3-tap Gaussian (taps exp(-x^2/2) at x = -2, 0, 2, normalised,
    i.e. 0.1065, 0.7870, 0.1065) along `dim`, replicate padding."""
    x = torch.linspace(-2, 2, 3, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / 2)
    kernel = kernel / kernel.sum()
    moved = maps.float().movedim(dim, -1)
    shape = moved.shape
    flat = F.pad(moved.reshape(-1, 1, shape[-1]), (1, 1), mode="replicate")
    out = F.conv1d(flat, kernel.view(1, 1, 3)).reshape(shape)
    return out.movedim(-1, dim)


@dataclass
class Grounding:
    """Where in one image the sound in one clip comes from, per head and per audio step.

    heatmaps: [heads, T, h, w] float32, the raw (unsmoothed) similarity of each audio step with each image patch
        (h, w = the model input's size / 8). Higher = more related. Units are arbitrary dot products: compare
        within a clip and head, not across models.
    head_names: e.g. ("language", "sound").
    times: [T] seconds at the centre of each audio step (0.18 s apart).
    score: the original's aggregated similarity (max over heads, max over space, mean over time).
    score_per_head: [heads] the same per head.
    """

    heatmaps: torch.Tensor
    head_names: tuple[str, ...]
    times: torch.Tensor
    score: float
    score_per_head: torch.Tensor
    geometry: ImageGeometry
    audio_duration: float
    image: torch.Tensor | None = field(default=None, repr=False)  # original RGB uint8 [3, H0, W0]
    waveform: torch.Tensor | None = field(default=None, repr=False)  # the model's 16 kHz input [N]
    mask: torch.Tensor | None = field(default=None, repr=False)  # [T] True where the step holds real audio

    def __repr__(self) -> str:
        _k, t, h, w = self.heatmaps.shape
        h0, w0 = self.geometry.original_size
        return (
            f"Grounding(heads={self.head_names}, steps={t} over {self.audio_duration:.2f} s, grid={h}x{w}, "
            f"image={w0}x{h0}, score={self.score:.4g})"
        )

    @property
    def num_heads(self) -> int:
        return self.heatmaps.shape[0]

    def head_index(self, head: int | str) -> int:
        if isinstance(head, str):
            if head not in self.head_names:
                raise KeyError(f"no head {head!r}; this model's heads are {self.head_names}")
            return self.head_names.index(head)
        if not -self.num_heads <= head < self.num_heads:
            raise IndexError(f"head {head} out of range for {self.num_heads} head(s)")
        return head % self.num_heads

    def __getitem__(self, head: int | str) -> torch.Tensor:
        """[T, h, w] maps of one head, by name or index."""
        return self.heatmaps[self.head_index(head)]

    def smoothed(self) -> torch.Tensor:
        """[heads, T, h, w] with the demo's 3-tap temporal blur (a display choice; `heatmaps` stays raw)."""
        return temporal_blur(self.heatmaps, dim=1)

    def step_at(self, seconds: float) -> int:
        """Index of the audio step whose centre is nearest to `seconds`."""
        return int(torch.argmin((self.times - seconds).abs()))

    def over_time(self, reduce: str = "mean", *, smooth: bool = False) -> torch.Tensor:
        """[heads, h, w]: each head's map summarised over the clip ("mean" over real audio steps, or "max")."""
        maps = self.smoothed() if smooth else self.heatmaps
        if self.mask is not None and not bool(self.mask.all()):
            maps = maps[:, self.mask]
        if reduce == "mean":
            return maps.mean(dim=1)
        if reduce == "max":
            return maps.amax(dim=1)
        raise ValueError(f"reduce must be 'mean' or 'max', not {reduce!r}")

    def upsampled(self, time: TimeSelect = "mean", *, smooth: bool = False, mode: str = "bilinear") -> torch.Tensor:
        """Maps on the ORIGINAL image's pixel grid (the resize and the /8 crop undone).

        time: an audio step index -> [heads, H0, W0]; "mean" / "max" over the clip -> [heads, H0, W0];
            None -> every step, [heads, T, H0, W0] (large for long clips).
        """
        if time is None:
            maps = self.smoothed() if smooth else self.heatmaps
        elif isinstance(time, str):
            maps = self.over_time(time, smooth=smooth)
        else:
            maps = (self.smoothed() if smooth else self.heatmaps)[:, time]
        return maps_to_original(maps, self.geometry, mode=mode)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary: scores, timing and per-head peak locations in original-image pixels."""
        h0, w0 = self.geometry.original_size
        peaks = {}
        summary = self.over_time("mean")
        gh, gw = summary.shape[-2:]
        rh, rw = self.geometry.resized_size
        p = self.geometry.patch_size
        for i, name in enumerate(self.head_names):
            flat = int(torch.argmax(summary[i]))
            gy, gx = divmod(flat, gw)
            peaks[name] = {
                "x": round((gx + 0.5) * p * w0 / rw, 1),
                "y": round((gy + 0.5) * p * h0 / rh, 1),
                "value": float(summary[i, gy, gx]),
            }
        per_step = self.heatmaps.flatten(2).amax(dim=2)  # [heads, T]
        return {
            "heads": list(self.head_names),
            "score": self.score,
            "score_per_head": {n: float(s) for n, s in zip(self.head_names, self.score_per_head)},
            "audio_seconds": round(self.audio_duration, 4),
            "image_size": {"width": w0, "height": h0},
            "grid": {"height": gh, "width": gw},
            "times": [round(float(t), 4) for t in self.times],
            "peak_over_time": peaks,
            "max_per_step": {n: [float(v) for v in per_step[i]] for i, n in enumerate(self.head_names)},
        }
