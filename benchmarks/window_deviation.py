"""How far windowed long-audio encoding moves the results, against whole-clip encoding (the original's way).

Clips up to `DenseAV.audio_window_seconds` (30 s) are always encoded whole; this script forces smaller windows on
a 30 s clip to measure what windowing costs in accuracy:

    python benchmarks/window_deviation.py [--weights DIR ...] [--seconds 30]

Reports, per model and window setting, the max |difference| of the aligned audio features and of the heatmaps,
relative to the whole-clip heatmaps' range (max - min), plus the share of time steps whose heatmaps moved by
more than 1% of that range.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import denseav  # noqa: E402


def speech_like(seconds: float, seed: int = 0, rate: int = 16000) -> np.ndarray:
    """Noise bursts with a slowly varying envelope: structured enough that long-range context matters."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t) * np.sin(2 * np.pi * 0.13 * t + 1.0)
    tone = np.sin(2 * np.pi * (220 + 80 * np.sin(2 * np.pi * 0.2 * t)) * t)
    return ((rng.standard_normal(n) * 0.3 + tone) * envelope).astype(np.float32)


def measure(model: denseav.DenseAV, clip: np.ndarray, image: np.ndarray, window: float, overlap: float) -> dict:
    saved = (model.audio_window_seconds, model.audio_window_overlap_seconds)
    try:
        model.audio_window_seconds = None
        whole = denseav.ground(image, clip, sample_rate=16000, model=model)
        whole_feats = denseav.encode_audio(clip, sample_rate=16000, model=model).features.features
        model.audio_window_seconds, model.audio_window_overlap_seconds = window, overlap
        win = denseav.ground(image, clip, sample_rate=16000, model=model)
        win_feats = denseav.encode_audio(clip, sample_rate=16000, model=model).features.features
    finally:
        model.audio_window_seconds, model.audio_window_overlap_seconds = saved
    span = float(whole.heatmaps.max() - whole.heatmaps.min())
    diff = (whole.heatmaps - win.heatmaps).abs()
    per_step = diff.flatten(2).amax(dim=2).amax(dim=0)  # [T]
    feat_span = float(whole_feats.max() - whole_feats.min())
    return {
        "window_s": window,
        "overlap_s": overlap,
        "heatmap_max_abs_diff_pct_of_range": round(100 * float(diff.max()) / span, 3),
        "heatmap_mean_abs_diff_pct_of_range": round(100 * float(diff.mean()) / span, 4),
        "steps_moved_over_1pct": round(float((per_step > 0.01 * span).float().mean()), 4),
        "audio_feature_max_abs_diff_pct_of_range": round(
            100 * float((whole_feats - win_feats).abs().max()) / feat_span, 3
        ),
        "score_whole": whole.score,
        "score_windowed": win.score,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--weights",
        nargs="*",
        help="checkpoint folders (default: the benchmark's full-size "
        "random model if present, and every parity fixture)",
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "window_deviation.json")
    args = parser.parse_args()
    if args.weights:
        folders = [Path(w) for w in args.weights]
    else:
        folders = [ROOT / "bench_out" / "weights_two_head"]
        fixtures = Path(__import__("os").environ.get("DENSEAV_FIXTURES", ROOT.parent / "shared" / "fixtures"))
        folders += sorted(p for p in (fixtures / "parity").glob("*") if (p / "config.json").exists())
        folders = [f for f in folders if f.exists()]
    clip = speech_like(args.seconds)
    image = np.random.default_rng(1).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    results = {}
    for folder in folders:
        model = denseav.load(folder, device="cpu")
        rows = [measure(model, clip, image, w, o) for w, o in ((10.0, 2.5), (15.0, 5.0), (20.0, 5.0))]
        results[folder.name] = rows
        for r in rows:
            print(
                f"{folder.name:24s} window {r['window_s']:>4} s overlap {r['overlap_s']:>3} s: heatmap max "
                f"{r['heatmap_max_abs_diff_pct_of_range']:.3f}% / mean {r['heatmap_mean_abs_diff_pct_of_range']:.4f}% "
                f"of range; steps moved >1%: {100 * r['steps_moved_over_1pct']:.1f}%; score "
                f"{r['score_whole']:.4f} -> {r['score_windowed']:.4f}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"clip_seconds": args.seconds, "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
