#!/usr/bin/env python
"""Video at the machine's speed: `ground_video` + `render_video` on a generated 1080p H.264 + AAC clip.

    python benchmarks/video_bench.py --seconds 60 --dtypes float32,bfloat16   # decoder, image encoder, video cells
    python benchmarks/video_bench.py --seconds 600 --dtypes float32 --sections video
    python benchmarks/video_bench.py --sections encode --dtypes float32,bfloat16

The clip (cached in bench_out/video_bench/) is 1920x1080 (16:9) H.264 (libx264 veryfast, x264's default GOP of
250 frames with B-frames) at --fps with a 48 kHz stereo AAC sound track: a textured background panning slowly, a
bright square crossing it and a disc that pulses with the sound; the sound alternates tones and noise bursts.

Sections (each cell in a FRESH process, peak RSS = its ru_maxrss from wait4):
* decode: what the decoder spends on the clip, without the model: demuxing only; decoding every frame without
  converting any; the `ground_video` path (every frame decoded, the sampled ones converted to RGB and
  preprocessed); the `render_video` path (every frame converted to RGB at full size); and, for reference, what
  FFmpeg's skip_frame modes (skip non-reference / non-key frames) would cost.
* encode: the image encoder on one 16:9 frame (224x392 model input, batch 1 and ground_video's batch of 8):
  median time against its FLOP count (torch.utils.flop_counter) over the measured float32 matmul peak.
* video: load, `ground_video` (default sampling) and `render_video` (combined layout) per --seconds x --dtypes,
  with the time split into audio encoding, frame decoding, preprocessing, the image encoder, and for the render
  into decoding, painting and encoding.

Workload: the full-size two-head model with seeded random weights (benchmarks/fullsize.py; speed does not depend
on the values). Results: bench_out/video_bench.json (merged with earlier runs per cell) and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import _matmul_peak, flags_text, machine_info, run_process
from fullsize import DEFAULT_WEIGHTS_DIR, REPO, SEED, ensure_weights

CLIP_DIR = REPO / "bench_out" / "video_bench"
WIDTH, HEIGHT = 1920, 1080
AUDIO_RATE = 48_000
SECTIONS = ("decode", "encode", "video")
GB = 1e9


# ------------------------------------------------------------------------------------------------ the clip


def _background(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V planes (twice the frame's width, so a window can pan over it) of smooth blobs plus fine grain:
    texture that motion compensation can follow, so the stream costs what camera footage costs to decode."""
    h, w = HEIGHT, 2 * WIDTH
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    luma = 110 + 40 * np.sin(xx / 97) * np.cos(yy / 61) + 25 * np.sin((xx + yy) / 23)
    luma += rng.normal(0, 6, size=(h, w)).astype(np.float32)
    u = 128 + 30 * np.sin(xx[::2, ::2] / 151)
    v = 128 + 30 * np.cos(yy[::2, ::2] / 83)
    y_plane, u_plane, v_plane = (np.clip(p, 16, 235).astype(np.uint8) for p in (luma, u, v))
    return y_plane, u_plane, v_plane


def _frame_yuv(planes: tuple[np.ndarray, np.ndarray, np.ndarray], i: int, fps: int, level: float) -> np.ndarray:
    """One yuv420p frame as FFmpeg's packed [H * 3 / 2, W] array: the background panned by i pixels, a white
    square sliding across, a disc whose brightness follows the sound's loudness."""
    y_full, u_full, v_full = planes
    x0 = (2 * i) % WIDTH
    y = y_full[:, x0 : x0 + WIDTH].copy()
    u = u_full[:, x0 // 2 : x0 // 2 + WIDTH // 2].copy()
    v = v_full[:, x0 // 2 : x0 // 2 + WIDTH // 2].copy()
    side = 160
    sx = int((WIDTH - side) * ((i / (fps * 8)) % 1.0))
    y[400 : 400 + side, sx : sx + side] = 235
    cy, cx, r = 700, 1400, 120
    yy, xx = np.ogrid[-r:r, -r:r]
    disc = yy**2 + xx**2 < r**2
    y[cy - r : cy + r, cx - r : cx + r][disc] = int(60 + 175 * level)
    return np.concatenate([y, u.reshape(-1, WIDTH), v.reshape(-1, WIDTH)], axis=0)


def _sound(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """[2, N] float32 at 48 kHz: each second a 0.4 s tone (220-880 Hz), a 0.3 s noise burst, then quiet."""
    n = round(seconds * AUDIO_RATE)
    t = np.arange(n) / AUDIO_RATE
    phase = t % 1.0
    freq = 220 * 2 ** (np.floor(t) % 3)
    tone = 0.4 * np.sin(2 * math.pi * freq * t) * (phase < 0.4)
    noise = 0.25 * rng.standard_normal(n) * ((phase >= 0.5) & (phase < 0.8))
    mono = (tone + noise).astype(np.float32)
    return np.stack([mono, 0.8 * mono])


def make_clip(path: Path, seconds: float, fps: int) -> Path:
    """Write the benchmark clip (see the module docstring)."""
    import av

    rng = np.random.default_rng(SEED)
    planes = _background(rng)
    sound = _sound(seconds, rng)
    level = np.abs(sound[0]).reshape(-1, AUDIO_RATE // fps).max(axis=1) if fps and AUDIO_RATE % fps == 0 else None
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        vs.options = {"preset": "veryfast", "crf": "23"}
        aus = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        aus.bit_rate = 128_000
        block = 1024
        written = 0
        for i in range(round(seconds * fps)):
            lv = float(level[i]) if level is not None and i < len(level) else 0.5
            frame = av.VideoFrame.from_ndarray(_frame_yuv(planes, i, fps, min(1.0, lv / 0.4)), format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(vs.encode(frame))
            # the sound in step with the picture, so the muxer interleaves them as a camera file would
            while written < min(sound.shape[1], (i + 1) * AUDIO_RATE // fps):
                chunk = np.ascontiguousarray(sound[:, written : written + block])
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                af.sample_rate, af.pts, af.time_base = AUDIO_RATE, written, Fraction(1, AUDIO_RATE)
                out.mux(aus.encode(af))
                written += chunk.shape[1]
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))
    tmp.rename(path)
    return path


def clip_path(seconds: float, fps: int) -> Path:
    """The cached clip for these settings, generated on first use."""
    path = CLIP_DIR / f"clip_{seconds:g}s_{WIDTH}x{HEIGHT}_{fps}fps.mp4"
    if not path.is_file():
        CLIP_DIR.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        make_clip(path, seconds, fps)
        print(f"generated {path.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return path


# ------------------------------------------------------------------------------------------- instrumentation


class Stopwatch:
    """Seconds and calls per named part of a run, collected by wrapping the functions the pipeline calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t0
                self.calls[name] += 1

        return timed

    def wrap_iter(self, name: str, fn: Callable[..., Iterator]) -> Callable[..., Iterator]:
        """For a generator function: the time spent producing each item (here: decoding and converting)."""

        def timed(*args, **kwargs):
            items = fn(*args, **kwargs)
            try:
                while True:
                    t0 = time.perf_counter()
                    try:
                        item = next(items)
                    except StopIteration:
                        return
                    finally:
                        self.seconds[name] += time.perf_counter() - t0
                    self.calls[name] += 1
                    yield item
            finally:
                items.close()

        return timed

    def report(self) -> dict:
        return {k: {"s": round(v, 3), "calls": self.calls[k]} for k, v in self.seconds.items()}


def _instrument(watch: Stopwatch, model) -> None:
    """Wrap what ground_video and render_video call, in their own modules' namespaces (benchmark only)."""
    import denseav.render.video as rv
    import denseav.video as gv

    gv.encode_audio = watch.wrap("ground.audio_encoding", gv.encode_audio)
    gv.iter_display_frames = watch.wrap_iter("ground.decode", gv.iter_display_frames)
    gv.preprocess_image = watch.wrap("ground.preprocess", gv.preprocess_image)
    model.encode_image = watch.wrap("ground.image_encoder", model.encode_image)
    rv.iter_display_frames = watch.wrap_iter("render.decode", rv.iter_display_frames)
    rv.FramePainter.paint = watch.wrap("render.paint", rv.FramePainter.paint)
    rv.FramePainter.layers = watch.wrap("render.layers", rv.FramePainter.layers)
    rv.VideoWriter.write = watch.wrap("render.encode_and_mux", rv.VideoWriter.write)


# ------------------------------------------------------------------------------------------------- workers


def video_worker(clip: str, weights: str, dtype: str, out: str) -> None:
    """load + ground_video + render_video on one clip, timed and split."""
    import torch

    from denseav import ground_video
    from denseav.render import render_video
    from variants import load_variant

    t0 = time.perf_counter()
    model = load_variant(weights, dtype)
    load_s = time.perf_counter() - t0
    watch = Stopwatch()
    _instrument(watch, model)
    t1 = time.perf_counter()
    vg = ground_video(clip, model=model, progress=False)
    ground_s = time.perf_counter() - t1
    with tempfile.TemporaryDirectory() as tmp:
        t2 = time.perf_counter()
        render_video(vg, clip, Path(tmp) / "out.mp4", progress=False)
        render_s = time.perf_counter() - t2
        out_mb = (Path(tmp) / "out.mp4").stat().st_size / 1e6
    result = {
        "load_s": load_s,
        "ground_s": ground_s,
        "render_s": render_s,
        "total_s": load_s + ground_s + render_s,
        "analysed_frames": vg.num_frames,
        "source_frames": vg.source.frame_count,
        "source_fps": vg.source.fps,
        "sampled_fps": vg.fps,
        "output_mb": out_mb,
        "parts": watch.report(),
        "threads": torch.get_num_threads(),
    }
    Path(out).write_text(json.dumps(result))


def _decode_pass(clip: str, mode: str) -> dict:
    """One pass over the clip's video frames; mode says what is done with each (see decode_worker)."""
    import av

    from denseav.image import preprocess_image
    from denseav.limits import DEFAULT_MAX_FRAMES
    from denseav.media import iter_display_frames, probe_media
    from denseav.video import FrameSampler, _sampling_rate

    t0 = time.perf_counter()
    frames = converted = 0
    if mode in ("demux", "decode_only", "skip_nonref", "skip_nonkey"):
        with av.open(clip) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"  # as denseav.media reads
            if mode == "demux":
                frames = sum(1 for p in c.demux(s) if p.size)
            else:
                s.codec_context.skip_frame = {"skip_nonref": "NONREF", "skip_nonkey": "NONKEY"}.get(mode, "DEFAULT")
                frames = sum(1 for _ in c.decode(s))
    else:
        info = probe_media(clip)
        rate = _sampling_rate(None, info.fps, info.duration, DEFAULT_MAX_FRAMES)
        want = FrameSampler(rate, info.fps, DEFAULT_MAX_FRAMES) if mode == "ground_path" else None
        for frame in iter_display_frames(clip, want=want):
            frames += 1
            if frame.rgb is not None:
                converted += 1
                if mode == "ground_path":
                    preprocess_image(frame.rgb, image_size=224, patch_size=8)
    return {"mode": mode, "s": time.perf_counter() - t0, "frames": frames, "converted": converted}


DECODE_MODES = ("demux", "decode_only", "ground_path", "render_path", "skip_nonref", "skip_nonkey")


def decode_worker(clip: str, out: str) -> None:
    passes = [_decode_pass(clip, mode) for mode in DECODE_MODES]
    Path(out).write_text(json.dumps({"passes": passes}))


def _image_encoder_flops(model, pixels) -> float:
    import torch

    from stage_profile import flop_counter

    with torch.inference_mode(), flop_counter() as counter:
        model.encode_image(pixels)
    return float(counter.get_total_flops())


def encode_worker(weights: str, dtype: str, out: str, reps: int) -> None:
    """The image encoder on 224x392 input: median time vs FLOPs over the float32 matmul peak."""
    import torch

    from variants import load_variant

    model = load_variant(weights, dtype)
    # The float32 peak for every dtype: on CPUs without native bfloat16 (AVX2 only) a bfloat16 `a @ b` is emulated
    # at under 1 GFLOP/s (measured here), far below what the model's bfloat16 linears reach, so it is no yardstick.
    peak = _matmul_peak(torch.float32, 2048, 5)
    rows = []
    for batch in (1, 8):
        pixels = torch.randn(batch, 3, 224, 392, generator=torch.Generator().manual_seed(SEED))
        flops = _image_encoder_flops(model, pixels)
        times = []
        with torch.inference_mode():
            model.encode_image(pixels)  # warm-up
            for _ in range(reps):
                t0 = time.perf_counter()
                model.encode_image(pixels)
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        ideal = flops / (peak["gflops"] * 1e9)
        rows.append({"batch": batch, "gflop": flops / 1e9, "median_s": med, "times_s": times, "ideal_s": ideal})
    Path(out).write_text(json.dumps({"dtype": dtype, "peak": peak, "rows": rows}))


# -------------------------------------------------------------------------------------------------- driver


def _cell(cmd_args: list[str], timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "cell.json"
        cmd = [sys.executable, __file__, *cmd_args, "--json", str(result)]
        return run_process(cmd, result, timeout)


def _log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _decode_table(rec: dict, seconds: float) -> list[str]:
    lines = [
        f"Decoder, {seconds:g} s clip (fresh process, no model; peak RSS {rec['peak_rss_gb']:.2f} GB, "
        f"load {rec['load_avg_1min']:.1f}):",
        "",
        "| pass | frames out | converted to RGB | seconds | frames/s | ms per frame |",
        "|---|---|---|---|---|---|",
    ]
    for p in rec["passes"]:
        fps = p["frames"] / p["s"] if p["s"] else 0.0
        lines.append(
            f"| {p['mode']} | {p['frames']} | {p['converted']} | {p['s']:.1f} | {fps:.0f} | "
            f"{1000 * p['s'] / max(1, p['frames']):.2f} |"
        )
    return lines


def _encode_table(rec: dict) -> list[str]:
    peak = rec["peak"]
    lines = [
        f"Image encoder, {rec['dtype']}, 224x392 input (matmul peak {peak['gflops']:.0f} GFLOP/s at n={peak['n']}; "
        f"load {rec['load_avg_1min']:.1f}):",
        "",
        "| batch | GFLOP | median | FLOPs / peak | ratio (target <= 1.5x) | GFLOP/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rec["rows"]:
        lines.append(
            f"| {r['batch']} | {r['gflop']:.1f} | {r['median_s']:.3f} s | {r['ideal_s']:.3f} s | "
            f"{r['median_s'] / r['ideal_s']:.2f}x | {r['gflop'] / r['median_s']:.0f} |"
        )
    return lines


def _video_row(key: str, rec: dict) -> str:
    if not rec.get("ok"):
        return f"| {key} | failed: {rec.get('error')} | | | | | | |"
    parts = {k: v["s"] for k, v in rec["parts"].items()}
    frames_s = parts.get("ground.decode", 0) + parts.get("ground.preprocess", 0) + parts.get("ground.image_encoder", 0)
    decode_fps = rec["source_frames"] / parts["ground.decode"] if parts.get("ground.decode") else 0.0
    return (
        f"| {key} | {rec['total_s']:.0f} s (load {rec['load_s']:.0f}, ground {rec['ground_s']:.0f}, render "
        f"{rec['render_s']:.0f}) | {parts.get('ground.audio_encoding', 0):.0f} s | {rec['analysed_frames']} in "
        f"{frames_s:.0f} s: {rec['analysed_frames'] / frames_s:.2f}/s (encoder "
        f"{parts.get('ground.image_encoder', 0):.0f} s, preprocess {parts.get('ground.preprocess', 0):.0f} s) | "
        f"{decode_fps:.0f} fps ({parts.get('ground.decode', 0):.0f} s) | {rec['source_frames'] / rec['render_s']:.1f} "
        f"fps (decode {parts.get('render.decode', 0):.0f} s, paint {parts.get('render.paint', 0):.0f} s, encode "
        f"{parts.get('render.encode_and_mux', 0):.0f} s) | {rec['peak_rss_gb']:.2f} GB | {rec['load_avg_1min']:.1f} |"
    )


def report(results: dict, info: dict, command: str) -> str:
    lines = [
        f"`{command}` · {info['cpu']} ({flags_text(info)}) · {info['logical_cpus']} logical CPUs · torch "
        f"{info['torch']} ({info['torch_build']}, {info['aten_cpu_capability']}) · {info['threads']} threads",
        "",
    ]
    for key, rec in results.items():
        if key.startswith("decode") and rec.get("ok"):
            lines += [*_decode_table(rec, rec["seconds"]), ""]
        if key.startswith("encode") and rec.get("ok"):
            lines += [*_encode_table(rec), ""]
    videos = {k: v for k, v in results.items() if k.startswith("video")}
    if videos:
        lines += [
            "| cell | total (load, ground_video, render_video) | audio encoding | analysed frames/s | decode fps "
            "(ground_video pass) | render fps | peak RSS | 1-min load |",
            "|---|---|---|---|---|---|---|---|",
            *(_video_row(k, v) for k, v in videos.items()),
        ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", default="60", help="comma-separated clip lengths")
    ap.add_argument("--fps", type=int, default=30, help="the generated clip's frame rate")
    ap.add_argument("--dtypes", default="float32", help="comma-separated: float32, bfloat16, float16")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated of {', '.join(SECTIONS)}")
    ap.add_argument("--reps", type=int, default=5, help="timed image-encoder calls per batch size")
    ap.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR)
    ap.add_argument("--timeout", type=float, default=7200.0, help="seconds before a cell's process is killed")
    ap.add_argument("--out", type=Path, default=REPO / "bench_out" / "video_bench.json")
    ap.add_argument("--worker", choices=SECTIONS, help=argparse.SUPPRESS)
    ap.add_argument("--clip", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.seconds = [float(s) for s in args.seconds.split(",") if s.strip()]
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    return args


def run_worker(args: argparse.Namespace) -> None:
    if args.worker == "video":
        video_worker(args.clip, str(args.weights_dir), args.dtypes[0], args.json)
    elif args.worker == "decode":
        decode_worker(args.clip, args.json)
    else:
        encode_worker(str(args.weights_dir), args.dtypes[0], args.json, args.reps)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    ensure_weights(args.weights_dir)
    command = "python benchmarks/video_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}  # earlier cells are kept
    common = ["--weights-dir", str(args.weights_dir)]
    jobs: list[tuple[str, list[str], dict]] = []
    if "encode" in args.sections:
        for d in args.dtypes:
            jobs.append((f"encode {d}", ["--worker", "encode", "--dtypes", d, "--reps", str(args.reps)], {}))
    for seconds in args.seconds:
        clip = str(clip_path(seconds, args.fps))
        if "decode" in args.sections:
            jobs.append((f"decode {seconds:g} s", ["--worker", "decode", "--clip", clip], {"seconds": seconds}))
        if "video" in args.sections:
            for d in args.dtypes:
                cmd = ["--worker", "video", "--clip", clip, "--dtypes", d]
                jobs.append((f"video {seconds:g} s {d}", cmd, {"seconds": seconds, "dtype": d}))
    for key, cmd, extra in jobs:
        _log(f"{key} ...")
        rec = {**_cell([*cmd, *common], args.timeout), **extra, "at": time.strftime("%Y-%m-%d %H:%M")}
        _log(f"{key}: {'ok' if rec['ok'] else rec['error']}")
        results[key] = rec
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    print(report(results, machine_info(), command.strip()))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
