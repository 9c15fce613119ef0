#!/usr/bin/env python
"""Tensor-level throughput on any device: dtypes x batch sizes x torch.compile on/off.

    python benchmarks/device_bench.py [--device cuda] [--dtypes float32,bfloat16,float16] [--batches 1,8,32]
                                      [--compile off,on] [--weights DIR] [--runs 5] [--out FILE.json]

One call = `encode_image` of B 224x224 images + `encode_audio` of B 10 s clips + the similarity volume, on the
device, timed with the device synchronised (median of --runs after --warmup calls). Default weights: the full-size
two-head model with random weights in the published layout (benchmarks/fullsize.py writes it; no network).
`--compile on` wraps both encoders in torch.compile (default mode) and reports the first call (compilation)
separately. The same code runs on CPU (`--device cpu`) as a smoke test, e.g. with a tiny fixture model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import denseav
from fullsize import REPO, ensure_weights


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one_cell(model: denseav.DenseAV, batch: int, runs: int, warmup: int, audio_seconds: float) -> dict:
    device = model.device
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn(batch, 3, 224, 224, generator=gen).to(device)
    wave = (0.1 * torch.randn(batch, round(audio_seconds * 16000), generator=gen)).to(device)

    def call() -> float:
        sync(device)
        start = time.perf_counter()
        with torch.inference_mode():
            sims = model(model.encode_image(pixels), model.encode_audio(wave))
        sync(device)
        assert torch.isfinite(sims).all()
        return time.perf_counter() - start

    first = call()
    for _ in range(max(0, warmup - 1)):
        call()
    times = [call() for _ in range(runs)]
    med = statistics.median(times)
    out = {"first_call_s": first, "median_s": med, "runs_s": times, "items_per_s": batch / med}
    if device.type == "cuda":
        out["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
        torch.cuda.reset_peak_memory_stats(device)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtypes", default="float32,bfloat16,float16")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--compile", default="off,on")
    ap.add_argument("--weights", type=Path, default=None, help="checkpoint folder (default: full-size random)")
    ap.add_argument("--audio-seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "bench_out" / "device_bench.json")
    args = ap.parse_args()
    weights = args.weights or ensure_weights()
    rows = []
    for dtype in args.dtypes.split(","):
        for compiled in args.compile.split(","):
            model = denseav.load(weights, device=args.device, dtype=dtype, progress=False)
            if compiled == "on":
                model.image_encoder = torch.compile(model.image_encoder)  # type: ignore[assignment]
                model.audio_encoder = torch.compile(model.audio_encoder)  # type: ignore[assignment]
            for batch in [int(b) for b in args.batches.split(",")]:
                try:
                    cell = one_cell(model, batch, args.runs, args.warmup, args.audio_seconds)
                except (RuntimeError, torch.OutOfMemoryError) as e:  # e.g. out of device memory: say so, go on
                    cell = {"error": str(e).splitlines()[0][:200]}
                rows.append({"dtype": dtype, "compile": compiled, "batch": batch, **cell})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            del model
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    print(f"`python benchmarks/device_bench.py {' '.join(sys.argv[1:])}` · {name} · torch {torch.__version__}")
    print("\n| dtype | torch.compile | batch | median per call | items/s | first call | vs float32 same batch |")
    print("|---|---|---|---|---|---|---|")
    base = {(r["compile"], r["batch"]): r.get("median_s") for r in rows if r["dtype"] == "float32"}
    for r in rows:
        if "error" in r:
            print(f"| {r['dtype']} | {r['compile']} | {r['batch']} | failed: {r['error']} | | | |")
            continue
        ref = base.get((r["compile"], r["batch"]))
        ratio = f"{r['median_s'] / ref:.2f}x" if ref else "–"
        print(
            f"| {r['dtype']} | {r['compile']} | {r['batch']} | {r['median_s'] * 1000:.1f} ms | "
            f"{r['items_per_s']:.2f} | {r['first_call_s']:.1f} s | {ratio} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"argv": sys.argv, "device": name, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
