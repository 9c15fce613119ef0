#!/usr/bin/env python
"""score_matrix speed (pairs/s, % of the measured matmul peak) and search latency over a 10,000-frame store.

    python benchmarks/corpus_score.py [--images 256] [--clips 16] [--frames 10000] [--fixture two_head]
        [--profile] [--baseline OTHER_SRC]

--baseline runs the same measurements twice in fresh processes, first with OTHER_SRC (another checkout's src/,
e.g. `git archive main src | tar -x -C /tmp/main`) on the path, then with this checkout's, and prints the
after/before ratios of the one run. --profile adds a torch profile of one score_matrix call (where time goes).

score_matrix: random features of the published sizes (C = 384 channels, 28x28 = 784 patches for a 224 image,
55 steps for a 10 s window), scored through a two-head model's similarity (it has no weights; only the head
count matters). FLOPs per pair = 2 * T * N * C (the per-head dot products); the matmul peak is torch's float32
n x n matmul measured here (benchmarks/bench.py's `_matmul_peak`).
search: a store of `--frames` synthetic frames with the fixture model's feature size (its code_dim) written
directly (no encoding), then `FeatureStore.search` with a pre-encoded 10 s query; latency = the median of 3.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench import _matmul_peak

C, N, T = 384, 28 * 28, 55


def bench_score_matrix(model, images: int, clips: int, profile: bool) -> dict:
    from denseav.corpus.score import _Features, score_features

    g = torch.Generator().manual_seed(0)
    imgs = [_Features(torch.randn(N, C, generator=g).half(), None, (28, 28)) for _ in range(images)]
    auds = [
        _Features(torch.randn(T, C, generator=g).half(), None, mask=torch.ones(T, dtype=torch.bool))
        for _ in range(clips)
    ]
    score_features(model, imgs[:8], auds[:1])  # warm-up
    t0 = time.perf_counter()
    score_features(model, imgs, auds)
    seconds = time.perf_counter() - t0
    pairs = images * clips
    gflops = 2 * T * N * C * pairs / seconds / 1e9
    peak = _matmul_peak(torch.float32, 2048, 5)["best_gflops"]
    print(
        f"score_matrix {clips} clips x {images} images: {pairs / seconds:,.0f} pairs/s ({seconds:.2f} s), "
        f"{gflops:.1f} GFLOP/s = {100 * gflops / peak:.0f}% of the measured float32 matmul peak ({peak:.1f} GFLOP/s)",
        flush=True,
    )
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            score_features(model, imgs, auds)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8), flush=True)
    return {"pairs_per_s": pairs / seconds, "gflops": gflops, "peak_gflops": peak}


def bench_search(model, frames: int, root: Path) -> dict:
    import denseav
    from denseav.audio import SAMPLE_RATE
    from denseav.corpus import FeatureStore, IndexOptions
    from denseav.corpus.encode import _image_rows
    from denseav.corpus.provenance import ModelIdentity
    from denseav.corpus.schema import TENSOR_DTYPE
    from denseav.corpus.sources import PreparedItem
    from denseav.image import preprocess_image

    identity = ModelIdentity.of(model)
    store = FeatureStore.create_or_open(root / "store", identity, IndexOptions())
    pixels, geometry = preprocess_image(torch.randint(0, 255, (3, 224, 224), dtype=torch.uint8), patch_size=8)
    item = PreparedItem("f", "image", "video", "synthetic.mp4", 0.0, 0.0, "0" * 64, pixels=pixels, geometry=geometry)
    template = _image_rows(model, [item], identity, TENSOR_DTYPE)[0]
    g = torch.Generator().manual_seed(1)
    t0 = time.perf_counter()
    with store.writer(512) as writer:
        for i in range(frames):
            feats = torch.randn(N, model.config.code_dim, generator=g).half()
            writer.add(
                [
                    {
                        **template,
                        "id": f"synthetic.mp4#t={i:.3f}",
                        "start": float(i),
                        "end": float(i),
                        "features": feats.numpy().tobytes(),
                    }
                ],
                [],
            )
    size = sum(f.stat().st_size for f in (root / "store" / "items").glob("*.parquet"))
    print(
        f"wrote {frames} frames in {time.perf_counter() - t0:.1f} s: {size / 1e6:.0f} MB "
        f"({size / frames / 1e3:.1f} kB/frame at code_dim {model.config.code_dim})"
    )
    wave = torch.randn(10 * SAMPLE_RATE, generator=g).numpy()
    query = denseav.encode_audio(wave, model=model, sample_rate=SAMPLE_RATE)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        hits = store.search(audio=query, k=10, model=model)
        times.append(time.perf_counter() - t0)
    print(
        f"search over {frames} frames, k=10: median {statistics.median(times):.2f} s "
        f"({frames / statistics.median(times):,.0f} frames/s); runs {', '.join(f'{t:.2f}' for t in times)}; "
        f"best {hits[0].id} score {hits[0].score:.3f}",
        flush=True,
    )
    return {"search_s": statistics.median(times), "best": hits[0].id}


def compare(baseline_src: str, argv: list[str]) -> int:
    """The measurements with `baseline_src` then this checkout's src/ on the path, each in a fresh process."""
    results = {}
    here = str(Path(__file__).resolve().parents[1] / "src")
    for name, src in (("before", baseline_src), ("after", here)):
        print(f"--- {name}: {src}", flush=True)
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            env = {**os.environ, "PYTHONPATH": src, "HF_HUB_OFFLINE": "1"}
            subprocess.run([sys.executable, __file__, *argv, "--json", out.name], env=env, check=True)
            results[name] = json.loads(Path(out.name).read_text())
    before, after = results["before"], results["after"]
    line = f"after/before: score_matrix x{after['pairs_per_s'] / before['pairs_per_s']:.2f} pairs/s"
    if "search_s" in after:
        same = "same" if after["best"] == before["best"] else "DIFFERENT"
        line += f", search x{before['search_s'] / after['search_s']:.2f} faster ({same} best hit)"
    print(line)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=10_000, help="0 skips the search measurement")
    parser.add_argument("--fixture", default="two_head")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--baseline", metavar="OTHER_SRC")
    parser.add_argument("--json", help=argparse.SUPPRESS)  # where a --baseline child writes its figures
    args = parser.parse_args()
    if args.baseline:
        argv = [a for a in sys.argv[1:] if a not in ("--baseline", args.baseline)]
        return compare(args.baseline, argv)
    import denseav
    from _fixtures import fixtures_root

    print(f"denseav from {Path(denseav.__file__).parent}")
    fixture = fixtures_root() / "parity" / args.fixture
    model = denseav.load(fixture, device="cpu", progress=False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if model.config.num_heads != 2:
        print(f"note: {args.fixture} has {model.config.num_heads} head(s); the published models have 2")
    results = bench_score_matrix(model, args.images, args.clips, args.profile)
    if args.frames:
        with tempfile.TemporaryDirectory(prefix="denseav_search_bench_") as tmp:
            results |= bench_search(model, args.frames, Path(tmp))
    if args.json:
        Path(args.json).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
