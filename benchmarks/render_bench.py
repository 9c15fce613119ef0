#!/usr/bin/env python
"""Rendering at the machine's speed: this tree's colour layers, blending and map upsampling against a baseline
tree's (default: the commit before the rendering speed-up), on the same inputs, with every output compared for
equality.

    python benchmarks/render_bench.py                          # micro benchmarks + render_video, 6 s 1080p30
    python benchmarks/render_bench.py --baseline main --reps 9 --seconds 6 --e2e-reps 2
    python benchmarks/render_bench.py --baseline /path/to/old/src --sections micro

Micro (one process, old and new interleaved call by call, medians of --reps): `colour_layer` on [K, 1080, 1920]
float32 maps (K = 1, 2: uniform random values from a fixed seed, and the realistic case: the bilinear upsampling
of a random 28x49 patch grid), `blend` of each layer on a 1080x1920 frame, and the upsampling of the grid to
1080p (`maps_to_original` then; now `PixelSampler`, which keeps the sampling grid). The baseline's modules are
loaded from its tree into this package (`denseav.render._baseline_colors`, ...), so both run on the same
torch, numpy and inputs.

render_video (fresh processes, PYTHONPATH = each tree's src, old and new alternating, --e2e-reps each):
`ground_video` with a tiny fixture model (no weights to download), then `render_video` (combined layout) of a
generated 1080p H.264 + AAC clip (benchmarks/video_bench.py makes it), timed and split into decoding, layers,
painting and encoding; one more run per tree hashes every painted frame, and the hashes must match.

The machine may be shared: the table reports the 1-minute load average, and ratios (old / new) of medians
measured side by side, which hold up better than absolute times under load.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import flags_text, machine_info, run_process
from fullsize import REPO
from video_bench import Stopwatch, clip_path

FIXTURE = (REPO / ".." / "shared" / "fixtures" / "parity" / "two_head").resolve()
HEIGHT, WIDTH = 1080, 1920
GRID = (28, 49)  # the patch grid of a 16:9 frame at the published models' 224 x 392 input
SEED = 0
BEFORE_SPEEDUP = "00004b4"  # the last commit whose colour_layer made full-plane torch passes


# ------------------------------------------------------------------------------------------- the baseline


def baseline_tree(spec: str, into: Path) -> Path:
    """A `src` folder: `spec` itself when it is one, else that git ref exported into `into` (whole: src/ links
    to files beside it)."""
    path = Path(spec)
    if (path / "denseav").is_dir():
        return path.resolve()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", spec], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def load_module(name: str, path: Path) -> ModuleType:
    """The file at `path` as module `name` inside this package (its relative imports resolve to this tree)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------------- micro


def interleaved(old: Callable, new: Callable, reps: int) -> tuple[list[float], list[float], object, object]:
    """Seconds of `reps` calls each, old and new alternating (one warm-up each); the last results."""
    out_old, out_new = old(), new()
    t_old, t_new = [], []
    for _ in range(reps):
        for fn, times in ((old, t_old), (new, t_new)):
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
            if fn is old:
                out_old = result
            else:
                out_new = result
    return t_old, t_new, out_old, out_new


def row(name: str, t_old: list[float], t_new: list[float], same: bool) -> dict:
    old_ms, new_ms = 1000 * statistics.median(t_old), 1000 * statistics.median(t_new)
    return {"case": name, "old_ms": old_ms, "new_ms": new_ms, "ratio": old_ms / new_ms, "identical": same}


def same_layer(old_layer, new_layer) -> bool:
    """The baseline's layer against this tree's ColourLayer (keep and premult + 128): the baseline's is either a
    ColourLayer too (a tree after the speed-up) or the (premult [H, W, 3], keep [H, W, 1]) pair before it."""
    if hasattr(old_layer, "keep"):
        return bool(
            np.array_equal(old_layer.keep, new_layer.keep) and np.array_equal(old_layer.offset, new_layer.offset)
        )
    premult, keep = old_layer
    return bool(
        np.array_equal(np.broadcast_to(keep, new_layer.keep.shape), new_layer.keep)
        and np.array_equal(premult.astype(np.int64) + 128, new_layer.offset.astype(np.int64))
    )


def micro(base_src: Path, reps: int) -> list[dict]:
    import torch

    from denseav.image import ImageGeometry, PixelSampler
    from denseav.render import colors

    old_colors = load_module("denseav.render._baseline_colors", base_src / "denseav" / "render" / "colors.py")
    old_image = load_module("denseav._baseline_image", base_src / "denseav" / "image.py")
    geometry = ImageGeometry(
        original_size=(HEIGHT, WIDTH), resized_size=(224, 398), input_size=(224, 392), patch_size=8
    )
    g = torch.Generator().manual_seed(SEED)
    grid = torch.randn(2, *GRID, generator=g)
    rows = []
    sampler = PixelSampler(geometry)
    t_old, t_new, up_old, up_new = interleaved(
        lambda: old_image.maps_to_original(grid, geometry), lambda: sampler(grid), reps
    )
    rows.append(row("upsample [2, 28, 49] -> [2, 1080, 1920]", t_old, t_new, torch.equal(up_old, up_new)))
    rgb = np.random.default_rng(SEED).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    inputs = {"uniform random": torch.rand(2, HEIGHT, WIDTH, generator=g), "upsampled 28x49 grid": up_new}
    for label, maps in inputs.items():
        for heads in (1, 2):
            m = maps[:heads]
            rng = colors.display_range(m)
            palette = colors.head_colors(("language", "sound")[:heads])
            t_old, t_new, lay_old, lay_new = interleaved(
                lambda m=m, rng=rng, palette=palette: old_colors.colour_layer(m, rng, palette),
                lambda m=m, rng=rng, palette=palette: colors.colour_layer(m, rng, palette),
                reps,
            )
            rows.append(row(f"colour_layer K={heads}, {label}", t_old, t_new, same_layer(lay_old, lay_new)))
            t_old, t_new, out_old, out_new = interleaved(
                lambda lay=lay_old: old_colors.blend(rgb, lay), lambda lay=lay_new: colors.blend(rgb, lay), reps
            )
            rows.append(row(f"blend K={heads}, {label}", t_old, t_new, bool(np.array_equal(out_old, out_new))))
    return rows


# --------------------------------------------------------------------------------------------- render_video


def render_worker(clip: str, out: str, hash_frames: bool) -> None:
    """ground_video with the fixture model (untimed), then render_video timed and split (this tree's code)."""
    import torch

    import denseav
    import denseav.render.video as rv
    from denseav import ground_video
    from denseav.render import render_video

    model = denseav.load(str(FIXTURE), progress=False)
    vg = ground_video(clip, model=model, progress=False)
    watch = Stopwatch()
    rv.iter_display_frames = watch.wrap_iter("decode", rv.iter_display_frames)
    rv.FramePainter.layers = watch.wrap("layers", rv.FramePainter.layers)
    rv.FramePainter.paint = watch.wrap("paint", rv.FramePainter.paint)
    digest = hashlib.sha256()
    if hash_frames:
        write = rv.VideoWriter.write

        def hashed(self, frame):
            digest.update(np.ascontiguousarray(frame).tobytes())
            return write(self, frame)

        rv.VideoWriter.write = hashed
    rv.VideoWriter.write = watch.wrap("encode", rv.VideoWriter.write)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        render_video(vg, clip, Path(tmp) / "out.mp4", progress=False)
        seconds = time.perf_counter() - t0
    result = {
        "render_s": seconds,
        "frames": vg.source.frame_count,
        "analysed": vg.num_frames,
        "parts": watch.report(),
        "threads": torch.get_num_threads(),
        "frames_sha256": digest.hexdigest() if hash_frames else None,
        "denseav": denseav.__file__,
    }
    Path(out).write_text(json.dumps(result))


def render_cell(src: Path, clip: Path, hash_frames: bool, timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "cell.json"
        cmd = [sys.executable, __file__, "--worker", "--clip", str(clip), "--json", str(result)]
        if hash_frames:
            cmd.append("--hash-frames")
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(src)
        try:
            return run_process(cmd, result, timeout)
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved


def end_to_end(base_src: Path, clip: Path, reps: int, timeout: float) -> dict:
    trees = {"old": base_src, "new": REPO / "src"}
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for _ in range(reps):
        for name, src in trees.items():
            rec = render_cell(src, clip, False, timeout)
            if not rec.get("ok"):
                raise RuntimeError(f"{name} render_video failed: {rec.get('error')}")
            runs[name].append(rec)
    hashes = {name: render_cell(src, clip, True, timeout).get("frames_sha256") for name, src in trees.items()}
    return {"runs": runs, "hashes": hashes, "identical": hashes["old"] is not None and hashes["old"] == hashes["new"]}


# ------------------------------------------------------------------------------------------------- report


def _median_part(runs: list[dict], part: str) -> float:
    return statistics.median(r["parts"].get(part, {}).get("s", 0.0) for r in runs)


def report(info: dict, command: str, base: str, rows: list[dict], e2e: dict | None, clip: Path | None) -> str:
    lines = [
        f"`{command}` · baseline {base} · {info['cpu']} ({flags_text(info)}) · {info['logical_cpus']} logical CPUs"
        f" · torch {info['torch']} ({info['aten_cpu_capability']}) · numpy {np.__version__} · {info['threads']} "
        f"threads · 1-min load {os.getloadavg()[0]:.1f} at the end",
        "",
    ]
    if rows:
        lines += ["| case (1080x1920) | old median | new median | old / new | identical |", "|---|---|---|---|---|"]
        lines += [
            f"| {r['case']} | {r['old_ms']:.1f} ms | {r['new_ms']:.1f} ms | {r['ratio']:.1f}x | {r['identical']} |"
            for r in rows
        ]
        lines.append("")
    if e2e:
        old, new = e2e["runs"]["old"], e2e["runs"]["new"]
        frames, analysed = old[0]["frames"], old[0]["analysed"]
        loads = ", ".join(f"{r['load_avg_1min']:.1f}" for r in old + new)
        lines += [
            f"render_video, {clip.name if clip else ''} ({frames} frames, {analysed} analysed), combined layout, "
            f"medians of {len(old)} runs each (1-min load at the runs: "
            f"{loads}); painted frames identical: "
            f"{e2e['identical']}",
            "",
            "| tree | render_video | frames/s | decode | layers | paint (blend + legend) | encode |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, runs in (("old", old), ("new", new)):
            total = statistics.median(r["render_s"] for r in runs)
            parts = " | ".join(f"{_median_part(runs, p):.1f} s" for p in ("decode", "layers", "paint", "encode"))
            lines.append(f"| {name} | {total:.1f} s | {frames / total:.1f} | {parts} |")
        t_old = statistics.median(r["render_s"] for r in old)
        t_new = statistics.median(r["render_s"] for r in new)
        lines.append(f"| old / new | {t_old / t_new:.2f}x | | | | | |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--baseline",
        default=BEFORE_SPEEDUP,
        help="a git ref of this repository, or an older src/ folder (default: the commit before the speed-up)",
    )
    ap.add_argument("--sections", default="micro,video", help="comma-separated of micro, video")
    ap.add_argument("--reps", type=int, default=7, help="timed calls per micro case and tree")
    ap.add_argument("--seconds", type=float, default=6.0, help="length of the generated 1080p clip")
    ap.add_argument("--fps", type=int, default=30, help="the generated clip's frame rate")
    ap.add_argument("--e2e-reps", type=int, default=2, help="render_video runs per tree")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds before a render process is killed")
    ap.add_argument("--out", type=Path, default=REPO / "bench_out" / "render_bench.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--clip", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    ap.add_argument("--hash-frames", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        render_worker(args.clip, args.json, args.hash_frames)
        return 0
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    command = "python benchmarks/render_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        base_src = baseline_tree(args.baseline, Path(tmp))
        rows = micro(base_src, args.reps) if "micro" in sections else []
        clip = clip_path(args.seconds, args.fps) if "video" in sections else None
        e2e = end_to_end(base_src, clip, args.e2e_reps, args.timeout) if clip else None
    text = report(machine_info(), command.strip(), args.baseline, rows, e2e, clip)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"micro": rows, "render_video": e2e, "table": text}, indent=1))
    print(text)
    return 0 if all(r["identical"] for r in rows) and (e2e is None or e2e["identical"]) else 1


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
