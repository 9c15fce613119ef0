#!/usr/bin/env python
"""Where low-precision error enters: per-stage deviation of a bfloat16 / float16 model from float32.

    python benchmarks/precision_stages.py [--dtypes bfloat16,float16] [--models fixtures,full] [--out FILE.json]

For every parity fixture (tests/_fixtures.py finds them) and the full-size two-head model with random weights
(benchmarks/fullsize.py; a random 224x224 image + 10 s of noise), the same `ground` call runs once in float32 and
once per low dtype, with forward hooks on every stage: the audio conv feature encoder, each audio and image
transformer block, the final norms, both aligners and the similarity (the heatmaps). Each cell is the stage's
max |low - float32| as a percentage of the float32 output's range (max - min), so stages of any scale compare;
the heatmaps row is the figure tests/test_precision.py bounds. Also prints each model's `ground` time per dtype
(one call after a warm-up, same process: a rough cost, not the benchmark).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import denseav
from _fixtures import PARITY_DIRS
from bench import SAMPLE_RATE, bench_inputs
from fullsize import REPO, ensure_weights
from variants import load_variant


def stage_modules(model: denseav.DenseAV) -> dict[str, torch.nn.Module]:
    """The stages whose outputs are compared, in the order data flows through them."""
    stages: dict[str, torch.nn.Module] = {"audio conv features": model.audio_encoder.feature_encoder}
    stages["audio pos conv"] = model.audio_encoder.pos_conv
    for i, block in enumerate(model.audio_encoder.blocks):
        stages[f"audio block {i}"] = block
    stages["audio final norm"] = model.audio_encoder.norm
    stages["audio aligner"] = model.audio_aligner
    stages["image patch embed"] = model.image_encoder.patch_embed
    for i, block in enumerate(model.image_encoder.blocks):
        stages[f"image block {i}"] = block
    stages["image final norm"] = model.image_encoder.norm
    stages["image aligner"] = model.image_aligner
    return stages


def run_with_hooks(model: denseav.DenseAV, image, audio, rate: int | None) -> tuple[dict[str, torch.Tensor], float]:
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in stage_modules(model).items():

        def hook(_m, _i, out, name=name):
            first = out[0] if isinstance(out, tuple) else out
            outputs[name] = first.detach().float().clone()

        handles.append(module.register_forward_hook(hook))
    denseav.ground(image, audio, model=model, sample_rate=rate)  # warm-up (and the hooked outputs)
    for h in handles:
        h.remove()
    start = time.perf_counter()
    g = denseav.ground(image, audio, model=model, sample_rate=rate)
    seconds = time.perf_counter() - start
    outputs["heatmaps (similarity)"] = g.heatmaps.float()
    return outputs, seconds


def deviation_pct(ref: torch.Tensor, low: torch.Tensor) -> float:
    span = float(ref.max() - ref.min())
    return 100.0 * float((low - ref).abs().max()) / span if span > 0 else 0.0


def compare(folder: Path, image, audio, rate: int | None, dtypes: list[str]) -> dict:
    ref, ref_s = run_with_hooks(load_variant(folder, "float32"), image, audio, rate)
    out: dict = {"ground_s": {"float32": ref_s}, "stages": {}}
    for dtype in dtypes:
        low, low_s = run_with_hooks(load_variant(folder, dtype), image, audio, rate)
        out["ground_s"][dtype] = low_s
        out["stages"][dtype] = {name: deviation_pct(ref[name], low[name]) for name in ref}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtypes", default="bfloat16,float16", help="also int8 (benchmarks/variants.py)")
    ap.add_argument("--models", default="fixtures,full", help="fixtures (every parity fixture), full (full size)")
    ap.add_argument("--out", type=Path, default=REPO / "bench_out" / "precision_stages.json")
    args = ap.parse_args()
    dtypes = args.dtypes.split(",")
    results: dict[str, dict] = {}
    models = args.models.split(",")
    for folder in PARITY_DIRS if "fixtures" in models else []:
        results[folder.name] = compare(folder, folder / "image.png", folder / "audio.wav", None, dtypes)
        print(f"{folder.name}: done", file=sys.stderr, flush=True)
    if "full" in models:
        image, audio = bench_inputs(10.0)
        results["full size (random weights)"] = compare(ensure_weights(), image, audio, SAMPLE_RATE, dtypes)
    for dtype in dtypes:
        names = list(results)
        print(f"\n#### {dtype} vs float32: max abs deviation, % of the float32 stage output's range\n")
        print("| stage | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for stage in next(iter(results.values()))["stages"][dtype]:
            cells = [results[n]["stages"][dtype].get(stage) for n in names]
            print(f"| {stage} | " + " | ".join("–" if c is None else f"{c:.3f} %" for c in cells) + " |")
        times = [f"{results[n]['ground_s'][dtype] / results[n]['ground_s']['float32']:.2f}x" for n in names]
        print("| `ground` time vs float32 (one call, same process) | " + " | ".join(times) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"dtypes": dtypes, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
