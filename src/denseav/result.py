"""Result objects handed back by `ground`: the dense similarity volume plus what is needed to read it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from .errors import InputError, InputTypeError
from .image import ImageGeometry, maps_to_original

if TYPE_CHECKING:
    from .modeling import DenseAV

Summary = Literal["mean", "max"]
HeadSelect = int | str | Sequence[int | str] | None

# A time this close outside the clip (in seconds) still counts as inside: float rounding of the clip's end.
_TIME_SLACK = 1e-6


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


def head_indices(names: Sequence[str], heads: HeadSelect = None) -> list[int]:
    """Indices of the selected heads: None = all; a name, an index, or a list of them (negative indices count
    from the end). Unknown names and out-of-range indices are InputErrors that list the model's heads."""
    if heads is None:
        return list(range(len(names)))
    chosen = [heads] if isinstance(heads, (str, int)) else list(heads)
    if not chosen:
        raise InputError("no head selected; pass None for all heads, or at least one head name or index")
    out = []
    for head in chosen:
        if isinstance(head, str):
            if head not in names:
                raise InputError(f"no head {head!r}; this model's heads are {tuple(names)}")
            out.append(list(names).index(head))
        elif isinstance(head, int) and not isinstance(head, bool):
            if not -len(names) <= head < len(names):
                raise InputError(f"head {head} out of range for {len(names)} head(s) {tuple(names)}")
            out.append(head % len(names))
        else:
            raise InputTypeError(f"a head is a name {tuple(names)} or an index, not {head!r}")
    return out


@dataclass(repr=False)
class Grounding:
    """Where in one image the sound in one clip comes from, per head and per audio step.

    heatmaps: [heads, T, h, w] float32, the raw (unsmoothed) similarity of each audio step with each image patch
        (h, w = the model input's size / patch size). Higher = more related. Units are arbitrary dot products:
        compare within a clip and head, not across models.
    head_names: e.g. ("language", "sound").
    times: [T] seconds at the centre of each audio step (0.18 s apart).
    score: the original's aggregated similarity (max over heads, max over space, mean over time).
    score_per_head: [heads] the same per head.
    model: the model that made it (None for results rebuilt from stored numbers).

    Time is given in seconds everywhere (`time=1.2`); `step=` picks an audio step by index instead.
    """

    heatmaps: torch.Tensor
    head_names: tuple[str, ...]
    times: torch.Tensor
    score: float
    score_per_head: torch.Tensor
    geometry: ImageGeometry
    audio_duration: float
    image: torch.Tensor | None = None  # original RGB uint8 [3, H0, W0]
    waveform: torch.Tensor | None = None  # the model's 16 kHz input [N]
    mask: torch.Tensor | None = None  # [T] True where the step holds real audio
    model: DenseAV | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        _, t, h, w = self.heatmaps.shape
        h0, w0 = self.geometry.original_size
        return (
            f"Grounding(heads={self.head_names}, steps={t} over {self.audio_duration:.2f} s, grid={h}x{w}, "
            f"image={w0}x{h0}, score={self.score:.4g})"
        )

    @property
    def num_heads(self) -> int:
        return int(self.heatmaps.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.heatmaps.shape[1])

    def head_index(self, head: int | str) -> int:
        return head_indices(self.head_names, head)[0]

    def __getitem__(self, head: int | str) -> torch.Tensor:
        """[T, h, w] maps of one head, by name or index (a KeyError for an unknown one, as mappings do)."""
        try:
            return self.heatmaps[self.head_index(head)]
        except InputError as e:
            raise KeyError(str(e)) from None

    def smoothed(self) -> torch.Tensor:
        """[heads, T, h, w] with the demo's 3-tap temporal blur (a display choice; `heatmaps` stays raw)."""
        return temporal_blur(self.heatmaps, dim=1)

    def step_at(self, seconds: float) -> int:
        """Index of the audio step whose centre is nearest to `seconds` (0 <= seconds <= the clip's length)."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise InputTypeError(f"time is given in seconds (a number), not {seconds!r}; use step= for an index")
        if not math.isfinite(seconds) or not -_TIME_SLACK <= seconds <= self.audio_duration + _TIME_SLACK:
            raise InputError(
                f"time {seconds} s is outside the clip (0 to {self.audio_duration:.3f} s); pass seconds within it"
            )
        return int(torch.argmin((self.times - seconds).abs()))

    def step_index(self, time: float | None = None, step: int | None = None) -> int:
        """One audio step, named by `time` (seconds) or `step` (an index; negative counts from the end)."""
        if time is not None and step is not None:
            raise InputError("pass time= (seconds) or step= (an index), not both")
        if step is None:
            if time is None:
                raise InputError("pass time= (seconds) or step= (an audio step index)")
            return self.step_at(time)
        if isinstance(step, bool) or not isinstance(step, int):
            raise InputTypeError(f"step is an audio step index (an int), not {step!r}; use time= for seconds")
        if not -self.num_steps <= step < self.num_steps:
            raise InputError(f"step {step} out of range: this clip has {self.num_steps} audio steps")
        return step % self.num_steps

    def over_time(self, reduce: Summary = "mean", *, smooth: bool = False) -> torch.Tensor:
        """[heads, h, w]: each head's map summarised over the clip ("mean" over real audio steps, or "max")."""
        maps = self.smoothed() if smooth else self.heatmaps
        if self.mask is not None and not bool(self.mask.all()):
            maps = maps[:, self.mask]
        if reduce == "mean":
            return maps.mean(dim=1)
        if reduce == "max":
            return maps.amax(dim=1)
        raise InputError(f"reduce must be 'mean' or 'max', not {reduce!r}")

    def maps(
        self, time: float | Summary | None = "mean", *, step: int | None = None, smooth: bool = False
    ) -> torch.Tensor:
        """Maps on the patch grid: at `time` seconds or `step` -> [heads, h, w]; "mean" / "max" over the clip ->
        [heads, h, w]; time=None (and no step) -> every step, [heads, T, h, w]."""
        if step is not None or isinstance(time, (int, float)):
            index = self.step_index(None if isinstance(time, str) else time, step)
            return (self.smoothed() if smooth else self.heatmaps)[:, index]
        if time is None:
            return self.smoothed() if smooth else self.heatmaps
        if time in ("mean", "max"):
            return self.over_time(time, smooth=smooth)
        raise InputError(f"time must be seconds, 'mean', 'max' or None (every step), not {time!r}")

    def upsampled(
        self,
        time: float | Summary | None = "mean",
        *,
        step: int | None = None,
        smooth: bool = False,
        mode: str = "bilinear",
    ) -> torch.Tensor:
        """`maps(...)` on the ORIGINAL image's pixel grid (the resize and the crop undone): [heads, (T,) H0, W0]."""
        return maps_to_original(self.maps(time, step=step, smooth=smooth), self.geometry, mode=mode)

    def peaks(self, maps: torch.Tensor | None = None) -> dict[str, dict[str, float]]:
        """Per head, the peak of `maps` ([heads, h, w]; default: the mean over the clip) in original pixels."""
        summary = self.over_time("mean") if maps is None else maps
        return peak_locations(summary, self.head_names, self.geometry)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary: scores, timing and per-head peak locations in original-image pixels."""
        h0, w0 = self.geometry.original_size
        gh, gw = self.heatmaps.shape[-2:]
        per_step = self.heatmaps.flatten(2).amax(dim=2)  # [heads, T]
        return {
            "heads": list(self.head_names),
            "score": self.score,
            "score_per_head": {n: float(s) for n, s in zip(self.head_names, self.score_per_head)},
            "audio_seconds": round(self.audio_duration, 4),
            "image_size": {"width": w0, "height": h0},
            "grid": {"height": gh, "width": gw},
            "times": [round(float(t), 4) for t in self.times],
            "peak_over_time": self.peaks(),
            "max_per_step": {n: [float(v) for v in per_step[i]] for i, n in enumerate(self.head_names)},
        }


def peak_locations(
    maps: torch.Tensor, head_names: Sequence[str], geometry: ImageGeometry
) -> dict[str, dict[str, float]]:
    """{head: {x, y, value}}: the argmax of each head's [h, w] map, as a patch centre in original pixels."""
    width = maps.shape[-1]
    out = {}
    for i, name in enumerate(head_names):
        flat = int(torch.argmax(maps[i]))
        gy, gx = divmod(flat, width)
        x, y = geometry.grid_to_pixel(gy, gx)
        out[name] = {"x": round(x, 1), "y": round(y, 1), "value": float(maps[i, gy, gx])}
    return out
