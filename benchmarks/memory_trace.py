#!/usr/bin/env python
"""Where `denseav.ground`'s peak RSS comes from, against audio length: a sampling profiler for memory.

    python benchmarks/memory_trace.py [--lengths 60,600] [--audio-layers 1] [--image-depth 1] [--weights DIR]
                                      [--src DIR] [--top 6]

Each length runs in a fresh process. A thread reads the process's resident set (/proc/self/statm) every
millisecond while one `ground` call runs and, whenever it sees a new maximum, records the main thread's Python
stack (the denseav frames of it): the printed stack is the code that was running when the process peaked.
By default the model is the published architecture at full width (code_dim 384, HuBERT width 1024, two heads)
with only `--audio-layers` HuBERT blocks and `--image-depth` ViT blocks, randomly initialised. Allocations that
grow with the audio length depend on the widths, not on the number of blocks, so this cheap model shows them in
seconds; `--weights DIR` loads a checkpoint folder instead (e.g. the full-size one of benchmarks/fullsize.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, os, resource, sys, threading, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import torch
import denseav
from bench import bench_inputs
from denseav.modeling import DenseAV, DenseAVConfig
from denseav.modeling.audio_encoder import AudioEncoderConfig
from denseav.modeling.image_encoder import ImageEncoderConfig

seconds, weights, audio_layers, image_depth = float(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
conv_dim = int(sys.argv[7])
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def denseav_stack(frame) -> list[str]:
    out = []
    while frame is not None:
        code = frame.f_code
        if "denseav" in code.co_filename:
            out.append(f"{Path(code.co_filename).name}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return out


from pathlib import Path

if weights:
    model = denseav.load(weights, device="cpu", dtype="float32")
else:
    config = DenseAVConfig(
        code_dim=384, num_heads=2, head_names=("language", "sound"),
        audio_encoder=AudioEncoderConfig(num_layers=audio_layers, conv_dim=(conv_dim,) * 7),
        image_encoder=ImageEncoderConfig(depth=image_depth),
    )
    torch.manual_seed(0)
    model = DenseAV(config)
image, audio = bench_inputs(seconds)
main_id = threading.get_ident()
state = {"peak": 0, "stack": [], "stop": False}
# per code location (the two innermost denseav frames): [first seen (s), last seen (s), max RSS there]
where: dict[str, list[float]] = {}


def sample() -> None:
    t0 = time.perf_counter()
    while not state["stop"]:
        now = rss()
        stack = denseav_stack(sys._current_frames().get(main_id))
        key = " < ".join(s.split(" ")[1] + "@" + s.split(":")[0] for s in stack[:2])
        t = time.perf_counter() - t0
        rec = where.setdefault(key, [t, t, 0])
        rec[1], rec[2] = t, max(rec[2], now)
        if now > state["peak"]:
            state["peak"], state["stack"] = now, stack
        time.sleep(0.001)


before = rss()
thread = threading.Thread(target=sample, daemon=True)
thread.start()
start = time.perf_counter()
g = denseav.ground(image, audio, model=model, sample_rate=16000)
elapsed = time.perf_counter() - start
state["stop"] = True
thread.join()
print(json.dumps({
    "seconds": seconds, "steps": int(g.heatmaps.shape[1]), "ground_s": elapsed, "rss_before_ground": before,
    "sampled_peak": state["peak"], "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "stack_at_peak": state["stack"], "src": denseav.__file__, "where": where,
}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="60,600", help="comma-separated audio seconds")
    ap.add_argument("--audio-layers", type=int, default=1)
    ap.add_argument("--image-depth", type=int, default=1)
    ap.add_argument(
        "--conv-dim",
        type=int,
        default=512,
        help="width of the conv feature encoder (chunked, so its "
        "memory does not grow with length; 64 makes the cheap model much cheaper still)",
    )
    ap.add_argument("--weights", default="", help="a checkpoint folder to load instead of the cheap model")
    ap.add_argument("--src", type=Path, default=REPO / "src", help="the source tree denseav is imported from")
    ap.add_argument("--top", type=int, default=6, help="stack frames shown per peak (innermost first)")
    ap.add_argument("--timeline", action="store_true", help="also print the max RSS seen at each code location")
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    rows = []
    for seconds in args.lengths.split(","):
        cmd = [sys.executable, "-c", WORKER, str(args.src), str(Path(__file__).parent), seconds, args.weights]
        cmd += [str(args.audio_layers), str(args.image_depth), str(args.conv_dim)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    mb = 1e6
    print(
        f"src {rows[0]['src']}; model: {args.weights or f'{args.audio_layers} audio / {args.image_depth} image blocks'}"
    )
    print("| audio | steps | RSS before ground | peak RSS (ru_maxrss) | peak - before | ground time |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seconds']:g} s | {r['steps']} | {r['rss_before_ground'] / mb:.0f} MB | {r['ru_maxrss'] / mb:.0f} MB "
            f"| {(r['ru_maxrss'] - r['rss_before_ground']) / mb:.0f} MB | {r['ground_s']:.1f} s |"
        )
    for r in rows:
        print(f"\n{r['seconds']:g} s: sampled peak {r['sampled_peak'] / mb:.0f} MB while running (innermost first):")
        for line in r["stack_at_peak"][: args.top]:
            print(f"    {line}")
        if args.timeline:
            print("  max RSS per code location (first seen, last seen):")
            for key, (t0, t1, peak) in sorted(r["where"].items(), key=lambda kv: kv[1][0]):
                print(f"    {t0:7.2f}-{t1:7.2f} s {peak / mb:6.0f} MB  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
