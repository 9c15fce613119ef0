"""Small synthetic media for the video / CLI tests, written with PyAV (no fixtures on disk needed)."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from denseav.image import preprocess_image
from denseav.result import Grounding


def make_clip(
    path: Path,
    *,
    width: int = 96,
    height: int = 72,
    fps: int = 10,
    seconds: float = 3.0,
    audio: bool = True,
    audio_rate: int = 16_000,
    audio_seconds: float | None = None,
    audio_start: float = 0.0,
    codec: str = "libx264",
) -> Path:
    """An MP4 with a white square sliding over a dark gradient and (optionally) an AAC 440 Hz tone lasting
    `audio_seconds` (default: as long as the video) that starts `audio_start` seconds after the video."""
    n_frames = round(seconds * fps)
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            vs.options = {"preset": "ultrafast"}
        if audio:
            aus = out.add_stream("aac", rate=audio_rate, layout="mono")
        yy, xx = np.mgrid[0:height, 0:width]
        background = np.stack([xx * 60 // max(1, width), yy * 60 // max(1, height), np.full_like(xx, 40)], -1)
        side = max(4, min(width, height) // 4)
        for i in range(n_frames):
            img = background.astype(np.uint8).copy()
            x0 = int((width - side) * i / max(1, n_frames - 1))
            y0 = (height - side) // 2
            img[y0 : y0 + side, x0 : x0 + side] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if audio:
            total = round((seconds if audio_seconds is None else audio_seconds) * audio_rate)
            t = np.arange(total, dtype=np.float64) / audio_rate
            wave = (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
            block = 1024
            for start in range(0, total, block):
                chunk = wave[start : start + block][None]
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate = audio_rate
                frame.pts = start + round(audio_start * audio_rate)
                frame.time_base = Fraction(1, audio_rate)
                for packet in aus.encode(frame):
                    out.mux(packet)
            for packet in aus.encode():
                out.mux(packet)
    return path


def probe(path: Path) -> dict:
    """Decode a file fully: video frame count, rate, size, duration; audio duration from decoded samples."""
    info: dict = {}
    with av.open(str(path)) as c:
        if c.streams.video:
            vs = c.streams.video[0]
            times = [f.time for f in c.decode(vs)]
            info.update(
                frames=len(times),
                fps=float(vs.average_rate) if vs.average_rate else None,
                width=vs.codec_context.width,
                height=vs.codec_context.height,
                codec=vs.codec_context.name,
                video_seconds=(times[-1] - times[0] + 1 / float(vs.average_rate)) if times else 0.0,
            )
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            n, rate = 0, a.rate
            for f in c.decode(a):
                n += f.samples
            info.update(audio_seconds=n / rate, audio_rate=rate, audio_codec=a.codec_context.name)
    return info


GREY = 128
PATCH = 8  # the ViT patch of the published models and of the fixtures


def synthetic_grounding(
    width: int,
    height: int,
    peaks: list[tuple[int, int]],
    *,
    steps: int = 6,
    names: tuple[str, ...] = ("language", "sound"),
    image: torch.Tensor | None = None,
) -> Grounding:
    """A Grounding on a flat grey image whose head k has one hot patch at grid cell peaks[k] = (gy, gx)."""
    rgb = image if image is not None else torch.full((3, height, width), GREY, dtype=torch.uint8)
    _, geometry = preprocess_image(rgb, patch_size=PATCH)
    h, w = geometry.grid_size
    maps = torch.full((len(peaks), steps, h, w), -1.0)
    for k, (gy, gx) in enumerate(peaks):
        maps[k, :, gy, gx] = 5.0 + torch.arange(steps, dtype=torch.float32)  # louder over time
    times = (torch.arange(steps) * 2880 + 1480) / 16000
    n = int(steps * 2880 + 80)
    wave = torch.sin(torch.arange(n) / 16000 * 2 * math.pi * 330)
    return Grounding(
        heatmaps=maps,
        head_names=names[: len(peaks)],
        times=times.float(),
        score=1.0,
        score_per_head=torch.ones(len(peaks)),
        geometry=geometry,
        audio_duration=n / 16000,
        image=rgb,
        waveform=wave,
        mask=torch.ones(steps, dtype=torch.bool),
    )


def write_wav(path: Path, seconds: float, *, rate: int = 16_000, channels: int = 1, silent: bool = False) -> Path:
    """A 16-bit PCM WAV: a 440 Hz tone with a little deterministic noise (or digital silence)."""
    n = round(seconds * rate)
    t = np.arange(n, dtype=np.float64) / rate
    rng = np.random.default_rng(n)
    mono = np.zeros(n) if silent else 0.3 * np.sin(2 * math.pi * 440 * t) + 0.05 * rng.standard_normal(n)
    samples = (np.tile(mono, (channels, 1)) * 32767).astype(np.int16)
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(samples.T.reshape(1, -1).copy(), format="s16", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
