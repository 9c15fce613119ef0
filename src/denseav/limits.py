"""Defaults and limits a user can change, in one torch-free module (the command line's --help shows them
without importing torch)."""

from __future__ import annotations

# Upper bound on the model input's longer side. The backbone's attention cost grows with the square of the
# number of patches: a 1000x40 banner resized to a 224 short side would be 224x5600 (minutes on a CPU).
# 1024 admits every common aspect ratio up to 4.5:1 (panoramas at 224: 224x1008); pass max_long_side=
# (CLI --max-long-side) to go further on purpose.
MAX_LONG_SIDE = 1024

# Video: analyse at most this many frames per second (audio steps come 5.56 per second), and at most this many
# frames in all (spread evenly over longer videos).
DEFAULT_MAX_FPS = 5.0
DEFAULT_MAX_FRAMES = 600

# The longest side a picture of a result is drawn at (save_png; bigger photos are downscaled before drawing).
# Large JPEG files are decoded reduced (Pillow's draft: DCT scaling by 1/2, 1/4 or 1/8) down to this size, or to
# the model's long-side limit if that is larger, since neither the model nor the picture needs more.
PICTURE_MAX_SIDE = 2048
