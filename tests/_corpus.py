"""A small mixed corpus for the corpus tests: images, sound files, a video with sound, and bad items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from _media import make_clip, write_wav

# What `make_corpus` holds, for assertions: good items and the ids that must fail.
IMAGES = ("img0.png", "img1.png", "sub/img2.jpg")
TONE_SECONDS = 12.0  # with 10 s windows and a 5 s hop: windows 0-10 and 5-12
CLIP_SECONDS = 3.0  # at 1 fps: frames at 0, 1, 2 s; one sound window 0-3 s
BAD_IDS = ("broken.png", "silent.wav#t=0.000-2.000")


def make_corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "sub").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(IMAGES):
        pixels = rng.integers(0, 255, (56 + 16 * i, 72 + 8 * i, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / name)
    write_wav(root / "tone.wav", TONE_SECONDS, channels=2)
    write_wav(root / "silent.wav", 2.0, silent=True)
    (root / "broken.png").write_bytes(b"this is not a png")
    make_clip(root / "clip.mp4", seconds=CLIP_SECONDS)
    return root


def expected_ids() -> set[str]:
    frames = {f"clip.mp4#t={t:.3f}" for t in (0.0, 1.0, 2.0)}
    windows = {"tone.wav#t=0.000-10.000", "tone.wav#t=5.000-12.000"}
    return set(IMAGES) | frames | windows  # + the clip's sound window, whose end depends on the AAC padding
