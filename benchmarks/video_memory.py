"""Video memory stays bounded: peak RSS of ground_video + render_video for clips of growing length.

    python benchmarks/video_memory.py [--weights DIR] [--lengths 30,180] [--size 320x180] [--fps 25]

Each length runs in a fresh process (peak RSS from the OS, ru_maxrss). Frames are streamed and encoded in batches,
so the peak should not grow with the video's length; the defaults use a tiny fixture model so the run takes about
a minute (the model's size adds a constant, not a slope; pass --weights for a full-size checkpoint).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import resource, sys, time
sys.path.insert(0, sys.argv[4])
from denseav import ground_video, load
from denseav.render import render_video
model = load(sys.argv[1], device="cpu")
start = time.perf_counter()
vg = ground_video(sys.argv[2], model=model, progress=False)
analysed = time.perf_counter() - start
render_video(vg, sys.argv[2], sys.argv[3], progress=False)
total = time.perf_counter() - start
print(len(vg.frame_times), round(analysed, 2), round(total, 2), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    vendored = ROOT / "tests" / "fixtures" / "parity"  # tiny random-weight models shipped with the tests
    parser.add_argument("--weights", default=str(next(iter(sorted(vendored.glob("*"))), "")))
    parser.add_argument("--lengths", default="30,180")
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from _media import make_clip

    width, height = (int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (float(s) for s in args.lengths.split(",")):
            src = Path(tmp) / f"in_{seconds:g}.mp4"
            t0 = time.perf_counter()
            make_clip(src, width=width, height=height, fps=args.fps, seconds=seconds)
            made = time.perf_counter() - t0
            out = Path(tmp) / f"out_{seconds:g}.mp4"
            proc = subprocess.run(
                [sys.executable, "-c", WORKER, args.weights, str(src), str(out), str(ROOT / "src")],
                capture_output=True,
                text=True,
                check=True,
            )
            frames, analysed, total, rss_kib = proc.stdout.split()
            rows.append(
                {
                    "seconds": seconds,
                    "size": args.size,
                    "fps": args.fps,
                    "analysed_frames": int(frames),
                    "analyse_s": float(analysed),
                    "analyse_and_render_s": float(total),
                    "peak_rss_gb": round(int(rss_kib) * 1024 / 1e9, 3),
                    "generate_s": round(made, 1),
                }
            )
            print(
                f"{seconds:>6g} s {args.size} @ {args.fps} fps: {frames} frames analysed in {analysed} s, "
                f"with rendering {total} s, peak RSS {rows[-1]['peak_rss_gb']:.3f} GB"
            )
    out = ROOT / "bench_out" / "video_memory.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
