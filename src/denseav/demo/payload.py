"""What the browser player needs to replay a grounding in sync with its sound, as one JSON-able dict.

The page draws every frame itself (player.js) from the audio element's clock, so nothing is recomputed while
the sound plays, the slider scrubs or the heads are toggled. The dict holds:

- the photo (JPEG data URL, at most `DISPLAY_WIDTH` wide) and the sound the model heard (16 kHz WAV data URL),
- per head: name, colour and display range from `denseav.render` (so the page colours exactly as the PNGs
  and videos do), score,
- the per-step maps, display-normalised per head over the whole clip (`render.display_range` of the smoothed
  volume, as `render.overlay` shows one step) and quantised to uint8 [K, T, h, w] (base64),
- the geometry needed to put a patch centre on a displayed pixel (`resized_size`, `patch_size`: see
  `denseav.image.maps_to_original`, whose convention the page follows),
- the activation-over-time strip: per head the largest smoothed similarity anywhere in the image at each step
  (as `render.time_strip` draws it), and a min/max envelope of the waveform.

No file paths go to the page: everything is inline, so the server never serves a file it did not write.
"""

from __future__ import annotations

import base64
import io
import wave
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..audio import SAMPLE_RATE
from ..render import DEFAULT_ALPHA, DEFAULT_THRESHOLD, display_range, head_colors
from ..render.colors import normalized
from ..result import Grounding

__all__ = ["DISPLAY_WIDTH", "ENVELOPE_COLUMNS", "MIN_DISPLAY_WIDTH", "player_payload", "quantise_maps"]

# The photo is sent scaled to a width in this range: large enough to draw smooth maps on, small on the wire.
DISPLAY_WIDTH = 720
MIN_DISPLAY_WIDTH = 480
# Waveform envelope resolution for the strip (min/max pairs); the strip is drawn at most this wide.
ENVELOPE_COLUMNS = 800


def quantise_maps(volume: torch.Tensor, rng: torch.Tensor) -> np.ndarray:
    """[K, T, h, w] raw maps and [K, 2] display ranges -> uint8 [K, T, h, w]: 255 at a head's maximum, 0 at its
    minimum, with `denseav.render`'s normalisation (clamped at 0; a flat head is all zeros)."""
    k, t, h, w = volume.shape
    v = normalized(volume.reshape(k, t * h, w), rng)  # render normalises [K, H, W]; steps stacked along H
    return (v * 255).round_().to(torch.uint8).reshape(k, t, h, w).numpy()


def _jpeg_data_url(rgb: torch.Tensor) -> str:
    """uint8 [3, H, W] -> a JPEG data URL, MIN_DISPLAY_WIDTH to DISPLAY_WIDTH wide."""
    picture = Image.fromarray(rgb.permute(1, 2, 0).contiguous().numpy(), "RGB")
    width = min(max(picture.width, MIN_DISPLAY_WIDTH), DISPLAY_WIDTH)
    if width != picture.width:
        height = max(1, round(picture.height * width / picture.width))
        picture = picture.resize((width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _wav_data_url(waveform: torch.Tensor) -> str:
    """The model's 16 kHz input (zero mean, unit variance) as a 16-bit WAV data URL, peak-scaled to 0.9."""
    x = waveform.float().numpy()
    peak = float(np.abs(x).max()) if x.size else 0.0
    pcm = (x * (0.9 / peak) * 32767).astype("<i2") if peak > 0 else np.zeros(len(x), "<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _envelope(waveform: torch.Tensor, columns: int = ENVELOPE_COLUMNS) -> list[list[float]]:
    """[columns] (min, max) pairs of the waveform scaled to [-1, 1], for the strip's audio lane."""
    x = waveform.float().numpy()
    if x.size == 0:
        return []
    columns = max(1, min(columns, x.size))
    starts = np.linspace(0, x.size, columns + 1).astype(np.int64)[:-1]
    scale = max(float(np.abs(x).max()), 1e-9)
    lows, highs = np.minimum.reduceat(x, starts) / scale, np.maximum.reduceat(x, starts) / scale
    return [[round(float(a), 3), round(float(b), 3)] for a, b in zip(lows, highs)]


def player_payload(result: Grounding) -> dict[str, Any]:
    """Everything the page's player draws from (see the module docstring). The result must carry its image and
    waveform (as `denseav.ground` results do)."""
    if result.image is None or result.waveform is None:
        raise ValueError("the player needs a Grounding with its image and waveform (as denseav.ground returns)")
    volume = result.smoothed()  # what render shows for one step by default
    rng = display_range(volume)
    strip = volume.flatten(2).amax(dim=2)  # [K, T], as render.time_strip draws it
    _, t, h, w = volume.shape
    heads = [
        {
            "name": name,
            "color": list(colour),
            "range": [float(rng[i, 0]), float(rng[i, 1])],
            "score": float(result.score_per_head[i]),
            "strip": [round(float(v), 5) for v in strip[i]],
        }
        for i, (name, colour) in enumerate(zip(result.head_names, head_colors(result.head_names)))
    ]
    g = result.geometry
    return {
        "heads": heads,
        "score": float(result.score),
        "alpha": DEFAULT_ALPHA,
        "threshold": DEFAULT_THRESHOLD,
        "times": [round(float(x), 4) for x in result.times],
        "duration": float(result.audio_duration),
        "steps": t,
        "grid": [h, w],
        "original_size": list(g.original_size),
        "resized_size": list(g.resized_size),
        "patch_size": g.patch_size,
        "maps": base64.b64encode(quantise_maps(volume, rng).tobytes()).decode("ascii"),
        "image": _jpeg_data_url(result.image),
        "audio": _wav_data_url(result.waveform),
        "envelope": _envelope(result.waveform),
    }
