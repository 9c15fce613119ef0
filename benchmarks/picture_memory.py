"""Pictures of big photos: time and peak RSS of `denseav ground PHOTO SOUND [-o out.png]` for growing photos.

    python benchmarks/picture_memory.py [--weights DIR] [--sizes 6000x4000,12000x12000] [--src SRC]

Each run is a fresh process (peak RSS from the OS, ru_maxrss). The photo is a generated JPEG (a gradient with
noise, quality 90); the sound is the fixture's. With and without `-o`: the difference is what drawing the picture
costs, which should not grow with the photo (it is drawn at display size). --src picks the source tree to time
(e.g. an older checkout's src/ for a before/after comparison); the default is this checkout's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI in-process and reports this process's peak RSS (KiB on Linux) on stderr's last line.
WORKER = r"""
import resource, sys
from denseav.cli import main
code = main(sys.argv[1:])
print("maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def make_photo(path: Path, width: int, height: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for y0 in range(0, height, 1000):  # in bands, so generating does not need the whole float image
        yy, xx = np.mgrid[y0 : min(height, y0 + 1000), 0:width]
        band = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 127 // (width + height)], -1)
        rows.append((band + rng.integers(0, 20, band.shape)).clip(0, 255).astype(np.uint8))
    Image.fromarray(np.concatenate(rows)).save(path, quality=90)


def run(src: Path, args: list[str], cwd: Path) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=str(src), HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WORKER, *args], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    kib = int(proc.stderr.strip().splitlines()[-1].split()[1])
    return seconds, kib * 1024 / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    vendored = ROOT / "tests" / "fixtures" / "parity"  # tiny random-weight models shipped with the tests
    parser.add_argument("--weights", default=str(next(iter(sorted(vendored.glob("*"))), "")))
    parser.add_argument("--sizes", default="6000x4000,12000x12000")
    parser.add_argument("--src", default=str(ROOT / "src"))
    args = parser.parse_args()
    sound = Path(args.weights) / "audio.wav"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            photo = Path(tmp) / f"photo_{size}.jpg"
            make_photo(photo, width, height)
            base = ["ground", str(photo), str(sound), "--weights", args.weights, "-q"]
            plain = run(Path(args.src), base, Path(tmp))
            drawn = run(Path(args.src), [*base, "-o", "out.png"], Path(tmp))
            rows.append(
                {"size": size, "ground_s": plain[0], "ground_gb": plain[1], "png_s": drawn[0], "png_gb": drawn[1]}
            )
            print(
                f"{size}: without -o {plain[0]:.1f} s, {plain[1]:.2f} GB peak; "
                f"with -o out.png {drawn[0]:.1f} s, {drawn[1]:.2f} GB peak"
            )
    out = ROOT / "bench_out" / "picture_memory.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
