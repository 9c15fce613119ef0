#!/usr/bin/env python
"""Peak RSS and time of `denseav.ground` against audio length: memory should stay flat, time linear.

    python benchmarks/memory_length.py [--lengths 60,600] [--dtypes float32,bfloat16] [--input array|file]
                                       [--src DIR] [--out bench_out/memory_length.json]

Each (dtype, length) runs in a fresh process: load the full-size two-head model (random weights, written once by
benchmarks/fullsize.py), ground one 224x224 image against a clip of that length, report the process's peak RSS
(ru_maxrss from wait4) and the time of the ground call. `--src` imports denseav from another source tree (e.g. an
older checkout's src/) so a before/after comparison uses one script in one run.

`--input array` (default) passes the clip as a float32 16 kHz mono array, which the caller's process holds too;
`--input file` passes the path of a 48 kHz stereo AAC file of that length (how recordings usually arrive), written
once into bench_out/memory_length/, so decoding, mixing and resampling are part of the peak.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fullsize import DEFAULT_WEIGHTS_DIR, REPO, ensure_weights

WORKER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import denseav
from bench import bench_inputs
image, audio = bench_inputs(float(sys.argv[5]))
rate = 16000
if sys.argv[6]:
    audio, rate = sys.argv[6], None
model = denseav.load(sys.argv[3], device="cpu", dtype=sys.argv[4])
start = time.perf_counter()
g = denseav.ground(image, audio, model=model, sample_rate=rate)
print(json.dumps({"ground_s": time.perf_counter() - start, "steps": int(g.heatmaps.shape[1]), "src": denseav.__file__}))
"""


def stereo_aac(seconds: float, folder: Path) -> Path:
    """A 48 kHz stereo AAC file of noise, `seconds` long (cached)."""
    import av
    import numpy as np

    path = folder / f"noise_{seconds:g}s_48k_stereo.m4a"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    rate, total, rng = 48_000, round(seconds * 48_000), np.random.default_rng(0)
    partial = path.with_suffix(".partial.m4a")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout="stereo")
        for start in range(0, total, rate):
            block = (rng.standard_normal((2, min(rate, total - start))) * 0.1).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    partial.rename(path)
    return path


def run(src: Path, weights: Path, dtype: str, seconds: float, audio_file: Path | None) -> dict:
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile() as out:
        cmd = [sys.executable, "-c", WORKER, str(src), str(Path(__file__).parent), str(weights), dtype, str(seconds)]
        cmd.append(str(audio_file) if audio_file else "")
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if proc.returncode:
        return {"ok": False, "error": err.strip().splitlines()[-1:], "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9}
    return {**json.loads(text), "ok": True, "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9, "load_avg_1min": load}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="60,600", help="comma-separated audio seconds")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--src", type=Path, default=REPO / "src", help="the source tree denseav is imported from")
    ap.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR)
    ap.add_argument("--input", choices=("array", "file"), default="array", help="how the clip is passed (above)")
    ap.add_argument("--out", type=Path, default=REPO / "bench_out" / "memory_length.json")
    args = ap.parse_args()
    ensure_weights(args.weights_dir)
    rows = []
    for dtype in args.dtypes.split(","):
        for seconds in [float(s) for s in args.lengths.split(",")]:
            audio_file = stereo_aac(seconds, REPO / "bench_out" / "memory_length") if args.input == "file" else None
            rec = {"dtype": dtype, "seconds": seconds, "input": args.input}
            rec.update(run(args.src, args.weights_dir, dtype, seconds, audio_file))
            rows.append(rec)
            print(json.dumps(rec), file=sys.stderr, flush=True)
    print(f"`python benchmarks/memory_length.py {' '.join(sys.argv[1:])}` · src {args.src} · {time.strftime('%F %T')}")
    print("\n| dtype | audio | input | peak RSS | ground time | time per audio second | 1-min load avg at start |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        head = f"| {r['dtype']} | {r['seconds']:g} s | {r['input']} |"
        if r["ok"]:
            print(
                f"{head} {r['peak_rss_gb']:.3f} GB | {r['ground_s']:.1f} s | "
                f"{r['ground_s'] / r['seconds']:.3f} s | {r['load_avg_1min']:.1f} |"
            )
        else:
            print(f"{head} failed ({r['error']}) | – | – | – |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"src": str(args.src), "argv": sys.argv, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
