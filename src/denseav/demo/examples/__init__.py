"""Example inputs for the demo, one click each.

Shipped here (see LICENSES.md beside this file): three photos from scikit-image's bundled data (public domain /
CC0), downscaled to 480 px, and two spoken phrases made with espeak-ng. Made on first use (deterministic, from
code): a rocket-like rumble, and a short video of the rocket photo with that rumble as its sound track. They are
written to a cache folder (`cache_dir`), never next to the package, so a read-only install works.
"""

from __future__ import annotations

import math
import os
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from ...audio import SAMPLE_RATE

__all__ = ["HERE", "cache_dir", "image_examples", "video_examples"]

HERE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """$DENSEAV_DEMO_CACHE, else $XDG_CACHE_HOME/denseav/demo-examples (default ~/.cache/...)."""
    explicit = os.environ.get("DENSEAV_DEMO_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "denseav" / "demo-examples"


def _write_wav(path: Path, samples: np.ndarray) -> None:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    tmp = path.with_suffix(".part")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    tmp.replace(path)  # never leave a half-written example that a later start would take as done


def rumble(seconds: float = 3.0, seed: int = 7) -> np.ndarray:
    """A rocket-like roar: brown noise (integrated white noise) with crackle, swelling in and holding."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SAMPLE_RATE)
    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.convolve(brown, np.ones(801) / 801, mode="same")  # remove the drift, keep the low roar
    brown /= np.abs(brown).max()
    crackle = rng.standard_normal(n) * (rng.random(n) < 0.004) * 0.8
    t = np.arange(n) / SAMPLE_RATE
    envelope = np.minimum(1.0, t / 0.8) * (0.85 + 0.15 * np.sin(2 * math.pi * 3.1 * t))
    return (0.7 * brown + crackle) * envelope * 0.8


def _rumble_wav() -> Path:
    path = cache_dir() / "rumble.wav"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_wav(path, rumble())
    return path


def _rocket_video() -> Path:
    """3 s, 10 fps: a slow zoom into the rocket photo, with the rumble as its sound track."""
    from ...media import VideoWriter, array_audio_frames

    path = cache_dir() / "rocket_zoom.mp4"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    photo = Image.open(HERE / "rocket.jpg").convert("RGB")
    width, height, fps, seconds = 320, 208, 10, 3.0
    tmp = path.with_name("rocket_zoom.part.mp4")
    sound = array_audio_frames(rumble(seconds), SAMPLE_RATE)
    with VideoWriter(tmp, width, height, Fraction(fps), audio=sound) as writer:
        frames = round(seconds * fps)
        for i in range(frames):
            zoom = 1 + 0.25 * i / frames
            cw, ch = photo.width / zoom, photo.height / zoom
            box = ((photo.width - cw) / 2, (photo.height - ch) / 2, (photo.width + cw) / 2, (photo.height + ch) / 2)
            writer.write(np.asarray(photo.resize((width, height), box=box)))
    tmp.replace(path)  # never leave a half-written example that a later start would take as done
    return path


def image_examples() -> list[list[str]]:
    """[image, sound] pairs for the image + sound tab."""
    return [
        [str(HERE / "cat.jpg"), str(HERE / "cat.wav")],
        [str(HERE / "coffee.jpg"), str(HERE / "coffee.wav")],
        [str(HERE / "rocket.jpg"), str(_rumble_wav())],
    ]


def video_examples() -> list[list[str]]:
    """[video] rows for the video tab."""
    return [[str(_rocket_video())]]
