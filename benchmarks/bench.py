#!/usr/bin/env python
"""Speed and memory benchmark of `denseav` on the FULL-SIZE published architecture (random weights).

    python benchmarks/bench.py [--quick] [--out results.json] [--weights-dir DIR] [--keys KEYS.json]

What it does:

1. Writes, once, a local checkpoint folder (config.json + model.safetensors) with the exact keys and shapes of the
   published two-head "sound-language" model (from the key manifest in the shared fixtures), filled with seeded
   random float32 values of sensible scale. Speed does not depend on the values. The file is streamed tensor by
   tensor by a separate process, so generating it neither needs 1.4 GB at once nor pollutes any measurement.
2. Runs every measurement in a FRESH worker process (this script with `--worker`), so each peak RSS
   (`getrusage(RUSAGE_SELF).ru_maxrss`, and `/usr/bin/time -v` when present) belongs to one task only:
   import / load time, ground() latency (float32, bfloat16), peak RSS of load + one ground, encode-once
   throughput, audio length scaling, FLOPs and the machine's matmul peak, and bf16-vs-fp32 heatmap differences
   (full-size model and the tiny parity fixtures).
3. Prints Markdown tables (progress goes to stderr, tables to stdout) and writes everything to a JSON file.

The machine may be shared (tests of other sessions): before each worker the driver waits up to --quiet-wait s for
the other load to drop, every timed region records how many cores OTHER processes used meanwhile (from
/proc/stat minus the worker's own CPU time), contended ground() runs are repeated (up to --extra-runs) and the
uncontended ones are summarised separately; contended cells are flagged in the tables.

Workers run one at a time, with torch's default thread count. Each worker gets an address-space limit
(--mem-limit-gb, default min(18 GiB, 75% of RAM)) so a too-long clip fails with a clean allocation error instead of
waking the OOM killer; a worker past its timeout is killed (its own process group only).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000
IMAGE_SIZE = 224
SEED = 20240613

# The original implementation's numbers (issue author, same kind of 2-core machine, float32).
ORIGINAL = {"ground_s": 2.50, "peak_rss_gb": 2.53, "build_s": 6.0}
TARGETS = {
    "ground_s": {"float32": 0.85 * ORIGINAL["ground_s"], "bfloat16": 0.35 * ORIGINAL["ground_s"]},
    "peak_rss_gb": {"float32": 2.0, "bfloat16": 1.2},
    "load_s": 2.0,
}
DTYPES = ("float32", "bfloat16")
QUIET_OTHER_CORES = 0.3  # a timed run is "uncontended" when other processes used less CPU than this
GEN_VERSION = 1  # bump when the weight generator changes, so old folders are regenerated


# --------------------------------------------------------------------------------------------------------------
# small helpers (used by both the driver and the workers)
# --------------------------------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fixtures_root() -> Path:
    env = os.environ.get("DENSEAV_FIXTURES")
    return Path(env).expanduser().resolve() if env else (REPO / ".." / "shared" / "fixtures").resolve()


def maxrss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def current_rss_kib() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def kib_to_gb(kib: float | None) -> float | None:
    return None if kib is None else kib * 1024 / 1e9


def make_image(seed: int):
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, size=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)


def make_audio(seconds: float, seed: int):
    import numpy as np

    n = round(seconds * SAMPLE_RATE)
    return (np.random.default_rng(seed).standard_normal(n, dtype=np.float32) * 0.1).astype(np.float32)


def summary(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
        "runs": list(values),
    }


_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat_busy() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0.0)  # idle + iowait
    total = sum(parts[:8])  # guest time is already inside user
    return (total - idle) / _HZ, total / _HZ


class CpuMeter:
    """Own CPU use vs. the whole machine's over a timed region: shows when other processes competed for the cores."""

    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.own = time.process_time()
        self.sys = _proc_stat_busy()

    def stop(self) -> dict:
        wall = time.perf_counter() - self.t
        own = (time.process_time() - self.own) / wall if wall > 0 else 0.0
        out = {"wall_s": wall, "own_cores": own}
        now = _proc_stat_busy()
        if self.sys and now and wall > 0:
            busy = (now[0] - self.sys[0]) / wall
            out["machine_busy_cores"] = busy
            out["other_cores"] = max(0.0, busy - own)
        return out


def machine_busy_cores(window: float = 0.5) -> float | None:
    a = _proc_stat_busy()
    time.sleep(window)
    b = _proc_stat_busy()
    return None if a is None or b is None else (b[0] - a[0]) / window


def wait_for_quiet(max_wait: float, threshold: float = 0.3) -> dict:
    """Wait (up to max_wait s) until the machine's other load is below `threshold` cores; report what was seen."""
    t0 = time.perf_counter()
    busy = machine_busy_cores()
    while busy is not None and busy > threshold and time.perf_counter() - t0 < max_wait:
        busy = machine_busy_cores(1.0)
    return {"busy_cores_before": busy, "waited_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------------------------------
# weights generation (runs in its own worker process)
# --------------------------------------------------------------------------------------------------------------


def _manifest_digest(manifest: dict) -> str:
    blob = json.dumps(
        {"config": manifest["config_json"], "keys": manifest["keys"], "gen": GEN_VERSION, "seed": SEED}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _init_kind(key: str, shape: list[int]) -> str:
    """How a tensor is filled: 'ones', 'zeros' or 'randn' (x 0.02)."""
    if key.endswith(("parametrizations.weight.original0", ".weight_g")):
        return "ones"  # HuBERT positional conv weight-norm g
    if key.endswith("bias"):
        return "zeros"
    if "norm" in key and key.endswith("weight") and len(shape) == 1:
        return "ones"  # LayerNorm gains
    if key == "sim_cal.w":
        return "zeros"  # calibration temperature exp(0) = 1
    return "randn"


def _header_for(keys: list[dict]) -> tuple[bytes, int]:
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for k in keys:
        if k["dtype"] != "F32":
            raise ValueError(f"{k['key']}: only F32 manifests are supported, got {k['dtype']}")
        nbytes = 4 * math.prod(k["shape"])
        header[k["key"]] = {"dtype": "F32", "shape": list(k["shape"]), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8 bytes
    return raw, offset


def weights_complete(weights_dir: Path, manifest: dict) -> bool:
    meta_path = weights_dir / "bench_meta.json"
    st = weights_dir / "model.safetensors"
    if not (meta_path.is_file() and st.is_file() and (weights_dir / "config.json").is_file()):
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    if meta.get("digest") != _manifest_digest(manifest):
        return False
    header, data_bytes = _header_for(manifest["keys"])
    return st.stat().st_size == 8 + len(header) + data_bytes


def generate_weights(weights_dir: Path, manifest: dict) -> dict:
    """Stream a safetensors file tensor by tensor (the format is an 8-byte header length, a JSON header, raw data)."""
    import torch

    weights_dir.mkdir(parents=True, exist_ok=True)
    (weights_dir / "bench_meta.json").unlink(missing_ok=True)
    keys = manifest["keys"]
    header, data_bytes = _header_for(keys)
    gen = torch.Generator().manual_seed(SEED)
    tmp = weights_dir / "model.safetensors.partial"
    t0 = time.perf_counter()
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        for k in keys:
            kind = _init_kind(k["key"], k["shape"])
            shape = tuple(k["shape"])
            if kind == "ones":
                t = torch.ones(shape, dtype=torch.float32)
            elif kind == "zeros":
                t = torch.zeros(shape, dtype=torch.float32)
            else:
                t = torch.randn(shape, generator=gen, dtype=torch.float32) * 0.02
            f.write(t.contiguous().numpy().tobytes())
    os.replace(tmp, weights_dir / "model.safetensors")
    (weights_dir / "config.json").write_text(json.dumps(manifest["config_json"], indent=2, sort_keys=True) + "\n")
    # check it reads back with the real safetensors reader
    from safetensors import safe_open

    with safe_open(str(weights_dir / "model.safetensors"), framework="pt", device="cpu") as h:
        got = {k: list(h.get_slice(k).get_shape()) for k in h.keys()}  # noqa: SIM118 (safe_open is not iterable)
    want = {k["key"]: list(k["shape"]) for k in keys}
    if got != want:
        raise RuntimeError("the written safetensors file does not list the manifest's keys/shapes")
    (weights_dir / "bench_meta.json").write_text(
        json.dumps(
            {
                "digest": _manifest_digest(manifest),
                "seed": SEED,
                "gen_version": GEN_VERSION,
                "tensors": len(keys),
                "bytes": (weights_dir / "model.safetensors").stat().st_size,
                "variant": manifest.get("variant"),
            },
            indent=2,
        )
        + "\n"
    )
    return {"seconds": time.perf_counter() - t0, "bytes": 8 + len(header) + data_bytes, "tensors": len(keys)}


# --------------------------------------------------------------------------------------------------------------
# workers
# --------------------------------------------------------------------------------------------------------------


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def _load(p: dict):
    import denseav

    t0 = time.perf_counter()
    m = denseav.load(p["weights_dir"], device="cpu", dtype=_dtype(p["dtype"]))
    return m, time.perf_counter() - t0


def _ground(model, image, audio):
    import denseav

    t0 = time.perf_counter()
    g = denseav.ground(image, audio, model=model, sample_rate=SAMPLE_RATE)
    return g, time.perf_counter() - t0


def w_generate(p: dict) -> dict:
    manifest = json.loads(Path(p["keys"]).read_text())
    return generate_weights(Path(p["weights_dir"]), manifest)


def w_load(p: dict) -> dict:
    """import timing, load timing, then ONE ground (224 image + 10 s audio): peak RSS of load + one ground."""
    t0 = time.perf_counter()
    import torch

    t1 = time.perf_counter()
    import denseav  # noqa: F401

    t2 = time.perf_counter()
    rss_import = maxrss_kib()
    image, audio = make_image(SEED), make_audio(10.0, SEED + 1)
    model, load_s = _load(p)
    rss_after_load = maxrss_kib()
    cur_after_load = current_rss_kib()
    g, first_s = _ground(model, image, audio)
    return {
        "import_torch_s": t1 - t0,
        "import_denseav_s": t2 - t1,
        "import_total_s": t2 - t0,
        "load_s": load_s,
        "first_ground_s": first_s,
        "maxrss_after_import_kib": rss_import,
        "maxrss_after_load_kib": rss_after_load,
        "rss_after_load_kib": cur_after_load,
        "maxrss_kib": maxrss_kib(),
        "heatmaps_shape": list(g.heatmaps.shape),
        "finite": bool(torch.isfinite(g.heatmaps).all()),
    }


def w_ground(p: dict) -> dict:
    """1 warm-up + N timed ground() calls; saves the warm-up heatmaps for the bf16-vs-fp32 comparison.

    When other processes compete for the cores during a run, up to `extra_runs` more runs are made until N runs
    were uncontended; "latency" is always the first N runs, "latency_quiet" the uncontended ones.
    """
    import torch

    image, audio = make_image(SEED), make_audio(10.0, SEED + 1)
    model, load_s = _load(p)
    g, warm_s = _ground(model, image, audio)
    if p.get("save_heatmaps"):
        torch.save({"heatmaps": g.heatmaps.float().clone(), "score": g.score}, p["save_heatmaps"])
    n, extra = p["runs"], p.get("extra_runs", 0)

    def quiet(c: dict) -> bool:
        return c.get("other_cores", 0.0) < QUIET_OTHER_CORES

    times: list[float] = []
    cpu: list[dict] = []
    while len(times) < n or (len(times) < n + extra and sum(map(quiet, cpu)) < n):
        meter = CpuMeter()
        _, dt = _ground(model, image, audio)
        cpu.append(meter.stop())
        times.append(dt)
    quiet_times = [t for t, c in zip(times, cpu) if quiet(c)]
    return {
        "load_s": load_s,
        "warmup_s": warm_s,
        "latency": summary(times[:n]) if n else None,
        "latency_quiet": summary(quiet_times) if quiet_times else None,
        "latency_all_runs": summary(times) if times else None,
        "quiet_threshold_cores": QUIET_OTHER_CORES,
        "cpu": cpu,
        "other_cores_mean": statistics.fmean(c.get("other_cores", 0.0) for c in cpu[:n]) if n else None,
        "maxrss_kib": maxrss_kib(),
        "heatmaps_shape": list(g.heatmaps.shape),
        "finite": bool(torch.isfinite(g.heatmaps).all()),
        "threads": torch.get_num_threads(),
    }


def _try_batched(fn_name: str, probe) -> tuple[bool, str]:
    """Whether a public function accepts a list (signature hint, then an actual small call)."""
    import inspect

    import denseav

    fn = getattr(denseav, fn_name)
    try:
        sig = str(inspect.signature(fn))
    except (TypeError, ValueError):
        sig = "?"
    try:
        out = probe()
    except Exception as e:
        return False, f"signature {fn_name}{sig}; list call failed: {type(e).__name__}: {str(e)[:200]}"
    if isinstance(out, (list, tuple)) and len(out) == 2:
        return True, f"signature {fn_name}{sig}; list call returned {type(out).__name__} of 2"
    return True, f"signature {fn_name}{sig}; list call returned {type(out).__name__}"


def w_encode(p: dict) -> dict:
    """Encode-once throughput: 1 image x K sounds and K images x 1 sound (loop, and batched lists if accepted).

    Every timed section carries a CpuMeter reading ("cpu") so a section disturbed by other processes shows.
    The batched path is warmed up on its own batch shape first (oneDNN builds kernels per shape).
    """
    import denseav

    k = p["count"]
    model, load_s = _load(p)
    images = [make_image(SEED + 100 + i) for i in range(k)]
    sounds = [make_audio(p["seconds"], SEED + 200 + i) for i in range(k)]
    # warm-up both encoders and the similarity
    ei = denseav.encode_image(images[0], model=model)
    ea = denseav.encode_audio(sounds[0], sample_rate=SAMPLE_RATE, model=model)
    denseav.similarity(ei, ea, model=model)
    out: dict = {"load_s": load_s, "count": k, "audio_seconds": p["seconds"]}

    # 1 image x K sounds
    meter = CpuMeter()
    t0 = time.perf_counter()
    ei = denseav.encode_image(images[0], model=model)
    t1 = time.perf_counter()
    encs = [denseav.encode_audio(s, sample_rate=SAMPLE_RATE, model=model) for s in sounds]
    t2 = time.perf_counter()
    for ea in encs:
        denseav.similarity(ei, ea, model=model)
    t3 = time.perf_counter()
    out["one_image_many_sounds"] = {
        "total_s": t3 - t0,
        "per_item_s": (t3 - t0) / k,
        "encode_image_s": t1 - t0,
        "encode_audio_total_s": t2 - t1,
        "similarity_total_s": t3 - t2,
        "cpu": meter.stop(),
    }
    # K images x 1 sound
    meter = CpuMeter()
    t0 = time.perf_counter()
    ea = denseav.encode_audio(sounds[0], sample_rate=SAMPLE_RATE, model=model)
    t1 = time.perf_counter()
    eis = [denseav.encode_image(im, model=model) for im in images]
    t2 = time.perf_counter()
    for ei_ in eis:
        denseav.similarity(ei_, ea, model=model)
    t3 = time.perf_counter()
    out["many_images_one_sound"] = {
        "total_s": t3 - t0,
        "per_item_s": (t3 - t0) / k,
        "encode_audio_s": t1 - t0,
        "encode_image_total_s": t2 - t1,
        "similarity_total_s": t3 - t2,
        "cpu": meter.stop(),
    }
    out["maxrss_loop_kib"] = maxrss_kib()

    # batched list calls, when the API takes them
    short = [make_audio(1.0, 7), make_audio(1.0, 8)]
    ok_a, note_a = _try_batched(
        "encode_audio", lambda: denseav.encode_audio(short, sample_rate=SAMPLE_RATE, model=model)
    )
    ok_i, note_i = _try_batched("encode_image", lambda: denseav.encode_image([images[0], images[1]], model=model))
    out["batched_support"] = {"encode_audio": note_a, "encode_image": note_i}
    warm_n = min(k, p.get("batch_warmup", 8))

    def sims(img_enc, aud_enc):
        """similarity for whatever the batched encoders returned: try the list form, else loop."""
        a_list = aud_enc if isinstance(aud_enc, (list, tuple)) else None
        i_list = img_enc if isinstance(img_enc, (list, tuple)) else None
        if a_list is None and i_list is None:
            return denseav.similarity(img_enc, aud_enc, model=model)
        try:
            return denseav.similarity(img_enc, aud_enc, model=model)
        except Exception:
            if a_list is not None:
                return [denseav.similarity(img_enc, a, model=model) for a in a_list]
            return [denseav.similarity(i, aud_enc, model=model) for i in i_list]

    if ok_a:
        try:
            t0 = time.perf_counter()
            sims(ei, denseav.encode_audio(sounds[:warm_n], sample_rate=SAMPLE_RATE, model=model))
            warm = time.perf_counter() - t0
            meter = CpuMeter()
            t0 = time.perf_counter()
            ei = denseav.encode_image(images[0], model=model)
            encs = denseav.encode_audio(sounds, sample_rate=SAMPLE_RATE, model=model)
            sims(ei, encs)
            t1 = time.perf_counter()
            out["one_image_many_sounds_batched"] = {
                "total_s": t1 - t0,
                "per_item_s": (t1 - t0) / k,
                "warmup_items": warm_n,
                "warmup_s": warm,
                "cpu": meter.stop(),
            }
        except Exception as e:
            out["one_image_many_sounds_batched"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    if ok_i:
        try:
            t0 = time.perf_counter()
            sims(denseav.encode_image(images[:warm_n], model=model), ea)
            warm = time.perf_counter() - t0
            meter = CpuMeter()
            t0 = time.perf_counter()
            ea = denseav.encode_audio(sounds[0], sample_rate=SAMPLE_RATE, model=model)
            eis = denseav.encode_image(images, model=model)
            sims(eis, ea)
            t1 = time.perf_counter()
            out["many_images_one_sound_batched"] = {
                "total_s": t1 - t0,
                "per_item_s": (t1 - t0) / k,
                "warmup_items": warm_n,
                "warmup_s": warm,
                "cpu": meter.stop(),
            }
        except Exception as e:
            out["many_images_one_sound_batched"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    out["maxrss_kib"] = maxrss_kib()
    return out


def w_length(p: dict) -> dict:
    """Load, warm up on 5 s, then ONE ground() on `seconds` of audio."""
    import torch

    image = make_image(SEED)
    model, load_s = _load(p)
    _, warm_s = _ground(model, image, make_audio(5.0, SEED + 2))
    rss_before = maxrss_kib()
    audio = make_audio(p["seconds"], SEED + 3)
    meter = CpuMeter()
    g, dt = _ground(model, image, audio)
    cpu = meter.stop()
    return {
        "seconds": p["seconds"],
        "load_s": load_s,
        "warmup_5s_s": warm_s,
        "ground_s": dt,
        "cpu": cpu,
        "steps": int(g.heatmaps.shape[1]),
        "heatmaps_shape": list(g.heatmaps.shape),
        "finite": bool(torch.isfinite(g.heatmaps).all()),
        "maxrss_before_kib": rss_before,
        "maxrss_kib": maxrss_kib(),
    }


def _matmul_peak(dtype, n: int, reps: int) -> dict:
    import torch

    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "n": n,
        "reps": reps,
        "median_s": med,
        "gflops": 2 * n**3 / med / 1e9,
        "best_gflops": 2 * n**3 / min(times) / 1e9,
    }


def _cpu_sdpa_mapping() -> dict:
    """torch's FlopCounterMode has no formula for the CPU SDPA kernel (attention would count as 0): add one."""
    import torch

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None:
        return {}

    def cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        b, h, s_q, d_q = query_shape
        s_k, d_v = key_shape[-2], value_shape[-1]
        return 2 * b * h * s_q * s_k * d_q + 2 * b * h * s_q * s_k * d_v  # QK^T and PV

    return {op: cpu_sdpa_flop}


def w_flops(p: dict) -> dict:
    """FLOPs of one ground call per dtype (FlopCounterMode) and this machine's large-matmul GFLOP/s."""
    import gc

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    image, audio = make_image(SEED), make_audio(10.0, SEED + 1)
    out: dict = {"flops": {}, "matmul": {}}
    for dt in p["dtypes"]:
        model, _ = _load({**p, "dtype": dt})
        _ground(model, image, audio)  # warm-up outside the counter
        try:
            counter = FlopCounterMode(display=False, custom_mapping=_cpu_sdpa_mapping())
            with counter:
                _, secs = _ground(model, image, audio)
            total = int(counter.get_total_flops())
            by_op: dict[str, int] = {}
            for mod_counts in counter.get_flop_counts().get("Global", {}).items():
                op, n = mod_counts
                by_op[str(op)] = int(n)
            out["flops"][dt] = {"total": total, "by_op": by_op, "seconds_under_counter": secs}
        except Exception as e:
            out["flops"][dt] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        del model
        gc.collect()
    for dt in p["dtypes"]:
        out["matmul"][dt] = _matmul_peak(_dtype(dt), p["matmul_n"], p["matmul_reps"])
    out["threads"] = torch.get_num_threads()
    return out


def _rel_diff(ref, other) -> dict:
    ref = ref.float()
    other = other.float()
    rng = float(ref.max() - ref.min())
    diff = (ref - other).abs()
    per_head = []
    for k in range(ref.shape[0]):
        r = float(ref[k].max() - ref[k].min())
        per_head.append(100.0 * float(diff[k].max()) / r if r > 0 else None)
    return {
        "max_abs_diff": float(diff.max()),
        "fp32_range": rng,
        "max_abs_diff_pct_of_range": 100.0 * float(diff.max()) / rng if rng > 0 else None,
        "mean_abs_diff_pct_of_range": 100.0 * float(diff.mean()) / rng if rng > 0 else None,
        "per_head_pct_of_range": per_head,
    }


def w_parity(p: dict) -> dict:
    """bf16 vs fp32 heatmaps on each tiny parity fixture folder."""
    import denseav

    out = {}
    for folder in p["folders"]:
        folder = Path(folder)
        try:
            maps = {}
            for dt in DTYPES:
                m = denseav.load(str(folder), device="cpu", dtype=_dtype(dt))
                g = denseav.ground(str(folder / "image.png"), str(folder / "audio.wav"), model=m)
                maps[dt] = g.heatmaps
            out[folder.name] = {"shape": list(maps["float32"].shape), **_rel_diff(maps["float32"], maps["bfloat16"])}
        except Exception as e:
            out[folder.name] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    return out


WORKERS = {
    "generate": w_generate,
    "load": w_load,
    "ground": w_ground,
    "encode": w_encode,
    "length": w_length,
    "flops": w_flops,
    "parity": w_parity,
}


def worker_main(task: str, params_json: str, result_path: str) -> int:
    params = json.loads(params_json)
    limit = params.get("mem_limit_bytes")
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        res = {"ok": True, "result": WORKERS[task](params)}
    except BaseException as e:
        res = {
            "ok": False,
            "error": f"{type(e).__name__}: {str(e)[:1000]}",
            "traceback": traceback.format_exc()[-4000:],
            "maxrss_kib": maxrss_kib(),
        }
    Path(result_path).write_text(json.dumps(res))
    return 0 if res["ok"] else 1


# --------------------------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------------------------

_TIME_V = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None  # for its "Maximum resident set size"


QUIET_WAIT = {"max_wait": 0.0}


def run_worker(task: str, params: dict, *, timeout: float, mem_limit: int | None, tmpdir: Path) -> dict:
    """Run one task in a fresh process; returns {ok, result | error, wall_s, maxrss_kib(, time_v_maxrss_kib)}."""
    quiet = wait_for_quiet(QUIET_WAIT["max_wait"]) if QUIET_WAIT["max_wait"] > 0 else None
    params = {**params, "mem_limit_bytes": mem_limit}
    fd, result_path = tempfile.mkstemp(prefix=f"{task}_", suffix=".json", dir=tmpdir)
    os.close(fd)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        task,
        "--params",
        json.dumps(params),
        "--result",
        result_path,
    ]
    use_time = _TIME_V is not None
    if use_time:
        cmd = [_TIME_V, "-v", *cmd]
    sys0 = _proc_stat_busy()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=str(REPO)
    )
    timed_out = False
    try:
        _stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):  # our own worker's process group (time + python)
            os.killpg(proc.pid, signal.SIGKILL)
        _stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    sys1 = _proc_stat_busy()
    rec: dict = {"wall_s": wall, "returncode": proc.returncode, "quiet_check": quiet}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr or "")
    if m:
        rec["time_v_maxrss_kib"] = int(m.group(1))
    if sys0 and sys1 and wall > 0:
        rec["machine_busy_cores_during"] = (sys1[0] - sys0[0]) / wall
    m_ = re.search(r"Percent of CPU this job got: (\d+)%", stderr or "")
    if m_ and "machine_busy_cores_during" in rec:
        rec["other_cores_during"] = max(0.0, rec["machine_busy_cores_during"] - int(m_.group(1)) / 100)
    cut = (stderr or "").find("\tCommand being timed")
    if cut >= 0:
        stderr = stderr[:cut]  # drop the /usr/bin/time report from the tail we keep
    try:
        data = json.loads(Path(result_path).read_text() or "null")
    except (OSError, ValueError):
        data = None
    Path(result_path).unlink(missing_ok=True)
    if timed_out:
        rec.update(ok=False, error=f"timed out after {timeout:.0f} s (killed)")
    elif data is None:
        sig = -proc.returncode if proc.returncode and proc.returncode < 0 else None
        tail = (stderr or "").strip().splitlines()[-5:]
        why = f"killed by signal {sig}" if sig else f"exit code {proc.returncode}"
        if use_time:
            m2 = re.search(r"Command terminated by signal (\d+)", stderr or "")
            if m2:
                why = f"killed by signal {m2.group(1)} (9 = SIGKILL, likely the OOM killer)"
        rec.update(ok=False, error=f"worker died without a result: {why}; stderr tail: {' | '.join(tail)[-600:]}")
    else:
        rec.update(data)
        if data.get("ok"):
            rec["maxrss_kib"] = data["result"].get("maxrss_kib")
    if not rec.get("ok"):
        log(f"  {task} FAILED: {rec.get('error')}")
    return rec


def env_info() -> dict:
    import torch

    cpu, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu is None:
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    mem_total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    except OSError:
        pass
    git = {}
    try:
        git["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        st = (
            subprocess.run(
                ["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True, text=True, timeout=10
            )
            .stdout.strip()
            .splitlines()
        )
        git["dirty_src_files"] = st
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import denseav

        version = getattr(denseav, "__version__", None)
    except Exception as e:
        version = f"import failed: {e}"
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "denseav": version,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "amx_tile": "amx_tile" in flags,
        "avx512f": "avx512f" in flags,
        "mem_total_bytes": mem_total,
        "loadavg_at_start": os.getloadavg(),
        "git": git,
    }


def _gb(kib):
    v = kib_to_gb(kib)
    return None if v is None else round(v, 3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer runs and lengths (about 4 minutes)")
    ap.add_argument("--out", type=Path, default=None, help="JSON results (default bench_out/results[_quick].json)")
    ap.add_argument("--weights-dir", type=Path, default=REPO / "bench_out" / "weights_two_head")
    ap.add_argument(
        "--keys",
        type=Path,
        default=None,
        help="key manifest (default: <fixtures>/keys/sound_language_two_head.json; fixtures root = "
        "$DENSEAV_FIXTURES or ../shared/fixtures from the repo root)",
    )
    ap.add_argument("--runs", type=int, default=None, help="timed ground() runs per dtype (default 5, quick 3)")
    ap.add_argument("--load-repeats", type=int, default=3, help="fresh processes for load / peak RSS per dtype")
    ap.add_argument("--lengths", type=str, default=None, help="comma-separated audio seconds for length scaling")
    ap.add_argument("--bf16-max-length", type=float, default=None, help="longest bf16 length (quick: 60)")
    ap.add_argument("--length-timeout", type=float, default=300.0, help="seconds before a length worker is killed")
    ap.add_argument(
        "--extra-runs",
        type=int,
        default=None,
        help="more ground() runs allowed while other processes disturb the timed ones (default: --runs)",
    )
    ap.add_argument("--encode-count", type=int, default=None, help="items per encode-once test (16; quick 8)")
    ap.add_argument(
        "--mem-limit-gb",
        type=float,
        default=None,
        help="address-space limit per worker in GiB (default min(18, 75%% of RAM); 0 = none)",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="before each worker, wait up to this many seconds for other processes to go idle (0: never)",
    )
    ap.add_argument(
        "--skip",
        type=str,
        default="",
        help="comma-separated sections to skip: load,ground,encode,scaling,flops,compare",
    )
    ap.add_argument(
        "--compare-fixtures",
        action="store_true",
        help="only the bf16-vs-fp32 heatmap comparison (full-size model + parity fixtures)",
    )
    ap.add_argument("--worker", type=str, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--params", type=str, default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        return worker_main(args.worker, args.params, args.result)

    quick = args.quick
    runs = args.runs or (3 if quick else 5)
    extra_runs = runs if args.extra_runs is None else args.extra_runs
    if args.encode_count is None:
        args.encode_count = 8 if quick else 16
    if args.lengths:
        lengths = [float(x) for x in args.lengths.split(",") if x.strip()]
    else:
        lengths = [5, 10, 30, 60] if quick else [5, 10, 30, 60, 120, 300, 600]
    bf16_max = args.bf16_max_length if args.bf16_max_length is not None else (60 if quick else math.inf)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.compare_fixtures:
        skip |= {"load", "encode", "scaling", "flops"}
    out_path = args.out or (REPO / "bench_out" / ("results_quick.json" if quick else "results.json"))
    keys_path = args.keys or (fixtures_root() / "keys" / "sound_language_two_head.json")
    weights_dir = args.weights_dir.resolve()
    mem_total = None
    with contextlib.suppress(ValueError, OSError):
        mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if args.mem_limit_gb is None:
        mem_limit = int(min(18 * 2**30, 0.75 * mem_total)) if mem_total else None
    else:
        mem_limit = int(args.mem_limit_gb * 2**30) or None

    QUIET_WAIT["max_wait"] = args.quiet_wait
    t_start = time.perf_counter()
    results: dict = {
        "env": env_info(),
        "settings": {
            "quick": quick,
            "runs": runs,
            "extra_runs": extra_runs,
            "load_repeats": args.load_repeats,
            "lengths": lengths,
            "bf16_max_length": None if math.isinf(bf16_max) else bf16_max,
            "length_timeout_s": args.length_timeout,
            "quiet_wait_s": args.quiet_wait,
            "encode_count": args.encode_count,
            "mem_limit_bytes": mem_limit,
            "weights_dir": str(weights_dir),
            "keys": str(keys_path),
            "image": f"{IMAGE_SIZE}x{IMAGE_SIZE} RGB uint8 (random)",
            "audio": "random float32 at 16 kHz",
            "skip": sorted(skip),
        },
        "original": ORIGINAL,
        "targets": TARGETS,
    }
    log(f"torch {results['env']['torch']}, {results['env']['threads']} threads, {results['env']['cpu_model']}")

    tmpdir = Path(tempfile.mkdtemp(prefix="denseav_bench_"))

    def W(task: str, params: dict, timeout: float = 900.0) -> dict:
        return run_worker(task, params, timeout=timeout, mem_limit=mem_limit, tmpdir=tmpdir)

    try:
        # ---- weights
        manifest = json.loads(keys_path.read_text())
        if weights_complete(weights_dir, manifest):
            log(f"weights present: {weights_dir}")
            results["weights"] = {"dir": str(weights_dir), "generated": False}
        else:
            log(f"writing random full-size weights to {weights_dir} (once; about 1.37 GB)")
            rec = W("generate", {"keys": str(keys_path), "weights_dir": str(weights_dir)}, timeout=1200)
            if not rec.get("ok"):
                raise SystemExit(f"weight generation failed: {rec.get('error')}")
            results["weights"] = {
                "dir": str(weights_dir),
                "generated": True,
                **rec["result"],
                "maxrss_kib": rec.get("maxrss_kib"),
            }
        results["weights"]["param_count"] = sum(math.prod(k["shape"]) for k in manifest["keys"])
        base = {"weights_dir": str(weights_dir)}

        # ---- import / load / peak RSS of load + one ground
        if "load" not in skip:
            results["load"] = {}
            for dt in DTYPES:
                recs = []
                for i in range(args.load_repeats):
                    log(f"load + one ground, {dt}, process {i + 1}/{args.load_repeats}")
                    recs.append(W("load", {**base, "dtype": dt}))
                good = [r["result"] for r in recs if r.get("ok")]
                entry: dict = {"processes": recs}
                if good:
                    for key in ("import_torch_s", "import_denseav_s", "import_total_s", "load_s", "first_ground_s"):
                        entry[key] = summary([g[key] for g in good])
                    entry["peak_rss_kib"] = summary([g["maxrss_kib"] for g in good])
                    tv = [r["time_v_maxrss_kib"] for r in recs if r.get("ok") and "time_v_maxrss_kib" in r]
                    if tv:
                        entry["time_v_peak_rss_kib"] = summary(tv)
                    entry["maxrss_after_load_kib"] = summary([g["maxrss_after_load_kib"] for g in good])
                    entry["maxrss_after_import_kib"] = summary([g["maxrss_after_import_kib"] for g in good])
                results["load"][dt] = entry

        # ---- ground latency
        heat_paths = {dt: tmpdir / f"heatmaps_{dt}.pt" for dt in DTYPES}
        if "ground" not in skip or "compare" not in skip:
            results["ground"] = {}
            for dt in DTYPES:
                n = runs if "ground" not in skip else 0
                log(f"ground() latency, {dt}: 1 warm-up + {n} runs")
                results["ground"][dt] = W(
                    "ground",
                    {
                        **base,
                        "dtype": dt,
                        "runs": n,
                        "extra_runs": extra_runs if n else 0,
                        "save_heatmaps": str(heat_paths[dt]),
                    },
                )

        # ---- bf16 vs fp32 heatmaps (full-size random model and the tiny parity fixtures)
        if "compare" not in skip:
            comp: dict = {}
            if all(p.exists() for p in heat_paths.values()):
                import torch

                ref = torch.load(heat_paths["float32"])["heatmaps"]
                oth = torch.load(heat_paths["bfloat16"])["heatmaps"]
                comp["full_size_random"] = {"shape": list(ref.shape), **_rel_diff(ref, oth)}
            else:
                comp["full_size_random"] = {"error": "a ground worker failed; no heatmaps to compare"}
            folders = sorted(str(p) for p in (fixtures_root() / "parity").glob("*/") if (p / "config.json").exists())
            log(f"bf16 vs fp32 on parity fixtures: {[Path(f).name for f in folders]}")
            rec = W("parity", {"folders": folders}, timeout=600)
            comp["parity_fixtures"] = rec["result"] if rec.get("ok") else {"error": rec.get("error")}
            results["compare"] = comp

        # ---- encode-once throughput
        if "encode" not in skip:
            results["encode"] = {}
            enc_dtypes = ("bfloat16",) if quick else DTYPES
            for dt in enc_dtypes:
                log(
                    f"encode-once throughput, {dt}: 1 image x {args.encode_count} sounds, "
                    f"{args.encode_count} images x 1 sound"
                )
                results["encode"][dt] = W(
                    "encode", {**base, "dtype": dt, "count": args.encode_count, "seconds": 10.0}, timeout=1200
                )

        # ---- FLOPs and matmul peak
        if "flops" not in skip:
            log("FLOPs of one ground() and the machine's matmul peak")
            results["flops"] = W(
                "flops",
                {**base, "dtypes": list(DTYPES), "matmul_n": 2048, "matmul_reps": 5 if quick else 10},
                timeout=900,
            )

        # ---- audio length scaling
        if "scaling" not in skip:
            results["scaling"] = {}
            for dt in DTYPES:
                rows = []
                stop_reason = None
                for sec in lengths:
                    if dt == "bfloat16" and sec > bf16_max:
                        continue
                    if stop_reason:
                        rows.append({"seconds": sec, "ok": False, "error": f"skipped: {stop_reason}"})
                        continue
                    log(f"length scaling, {dt}: {sec:g} s")
                    rec = W("length", {**base, "dtype": dt, "seconds": sec}, timeout=args.length_timeout)
                    rows.append({"seconds": sec, **rec})
                    if not rec.get("ok") and "timed out" in str(rec.get("error")):
                        stop_reason = f"the {sec:g} s run timed out"
                results["scaling"][dt] = rows
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

    results["total_wall_s"] = time.perf_counter() - t_start
    md = render(results)
    results["markdown"] = md
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(md)
    log(f"wrote {out_path} ({results['total_wall_s']:.0f} s in all)")
    return 0


# --------------------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------------------


def _get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _f(v, fmt="{:.3f}", unit=""):
    return "–" if v is None else fmt.format(v) + unit


def _check(v, target):
    if v is None or target is None:
        return ""
    return " ✅" if v <= target else " ❌"


def _all_other_cores(r: dict):
    """other_cores_during of every worker record in the results."""

    def walk(x):
        if isinstance(x, dict):
            if "other_cores_during" in x:
                yield x["other_cores_during"]
            for v in x.values():
                yield from walk(v)
        elif isinstance(x, list):
            for v in x:
                yield from walk(v)

    return list(walk({k: v for k, v in r.items() if k not in ("env", "settings")}))


def render(r: dict) -> str:
    env = r["env"]
    lines = []
    lines.append(
        f"### denseav benchmark — full-size two-head model (random weights), "
        f"{IMAGE_SIZE}x{IMAGE_SIZE} image + 10 s audio"
    )
    lines.append("")
    lines.append(
        f"{env['date']} · torch {env['torch']} · {env['threads']} threads · {env['cpu_model']} "
        f"(avx512_bf16: {'yes' if env['avx512_bf16'] else 'no'}, amx: "
        f"{'yes' if env['amx_bf16'] else 'no'}) · git {env.get('git', {}).get('commit', '?')}"
        f"{' (+uncommitted src changes)' if env.get('git', {}).get('dirty_src_files') else ''}"
        f"{' · --quick' if r['settings']['quick'] else ''}"
    )
    lines.append("")
    lines.append(
        "| metric | float32 | bfloat16 | original (fp32) | fp32 / orig | bf16 / orig | target fp32 | target bf16 |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")

    def ratio(v, ref):
        return "–" if v is None or not ref else f"{v / ref:.2f}x"

    # ground latency
    lat = {dt: _get(r, "ground", dt, "result", "latency") for dt in DTYPES}
    med = {dt: (lat[dt] or {}).get("median") for dt in DTYPES}
    cells = []
    for dt in DTYPES:
        if lat[dt] and lat[dt]["runs"]:
            cells.append(
                f"{lat[dt]['median']:.3f} s ({lat[dt]['min']:.2f}–{lat[dt]['max']:.2f})"
                f"{_check(lat[dt]['median'], TARGETS['ground_s'][dt])}"
            )
        else:
            err = _get(r, "ground", dt, "error")
            cells.append("error" if err else "–")
    lines.append(
        f"| ground() median (min–max), n={r['settings']['runs']} | {cells[0]} | {cells[1]} | "
        f"{ORIGINAL['ground_s']:.2f} s | {ratio(med['float32'], ORIGINAL['ground_s'])} | "
        f"{ratio(med['bfloat16'], ORIGINAL['ground_s'])} | ≤ {TARGETS['ground_s']['float32']:.3f} s | "
        f"≤ {TARGETS['ground_s']['bfloat16']:.3f} s |"
    )
    lq = {dt: _get(r, "ground", dt, "result", "latency_quiet") for dt in DTYPES}
    if any(lq.values()):
        qcells = []
        for dt in DTYPES:
            q = lq[dt]
            qcells.append(
                "no quiet run"
                if not q
                else f"{q['median']:.3f} s ({q['min']:.2f}–{q['max']:.2f}), n={len(q['runs'])}"
                f"{_check(q['median'], TARGETS['ground_s'][dt])}"
            )
        qm = {dt: (lq[dt] or {}).get("median") for dt in DTYPES}
        lines.append(
            f"| ground() median, uncontended runs only (others < {QUIET_OTHER_CORES} cores) | {qcells[0]} | "
            f"{qcells[1]} | {ORIGINAL['ground_s']:.2f} s | {ratio(qm['float32'], ORIGINAL['ground_s'])} | "
            f"{ratio(qm['bfloat16'], ORIGINAL['ground_s'])} | ≤ {TARGETS['ground_s']['float32']:.3f} s | "
            f"≤ {TARGETS['ground_s']['bfloat16']:.3f} s |"
        )
    first = {dt: _get(r, "load", dt, "first_ground_s", "median") for dt in DTYPES}
    lines.append(
        f"| first ground() after load (cold) | {_f(first['float32'], unit=' s')} | "
        f"{_f(first['bfloat16'], unit=' s')} | – | – | – | – | – |"
    )
    # peak RSS
    rss = {dt: kib_to_gb(_get(r, "load", dt, "peak_rss_kib", "median")) for dt in DTYPES}
    gib = {dt: None if rss[dt] is None else rss[dt] * 1e9 / 2**30 for dt in DTYPES}
    lines.append(
        f"| peak RSS, fresh process: load + 1 ground | "
        f"{_f(rss['float32'], '{:.2f}', ' GB')} ({_f(gib['float32'], '{:.2f}', ' GiB')})"
        f"{_check(rss['float32'], TARGETS['peak_rss_gb']['float32'])} | "
        f"{_f(rss['bfloat16'], '{:.2f}', ' GB')} ({_f(gib['bfloat16'], '{:.2f}', ' GiB')})"
        f"{_check(rss['bfloat16'], TARGETS['peak_rss_gb']['bfloat16'])} | "
        f"{ORIGINAL['peak_rss_gb']:.2f} GB | {ratio(rss['float32'], ORIGINAL['peak_rss_gb'])} | "
        f"{ratio(rss['bfloat16'], ORIGINAL['peak_rss_gb'])} | ≤ {TARGETS['peak_rss_gb']['float32']:.1f} GB | "
        f"≤ {TARGETS['peak_rss_gb']['bfloat16']:.1f} GB |"
    )
    rss_load = {dt: kib_to_gb(_get(r, "load", dt, "maxrss_after_load_kib", "median")) for dt in DTYPES}
    lines.append(
        f"| peak RSS after load only | {_f(rss_load['float32'], '{:.2f}', ' GB')} | "
        f"{_f(rss_load['bfloat16'], '{:.2f}', ' GB')} | – | – | – | – | – |"
    )
    # load / import
    ld = {dt: _get(r, "load", dt, "load_s", "median") for dt in DTYPES}
    lines.append(
        f"| load(local dir) median of {r['settings']['load_repeats']} fresh processes | "
        f"{_f(ld['float32'], unit=' s')}{_check(ld['float32'], TARGETS['load_s'])} | "
        f"{_f(ld['bfloat16'], unit=' s')}{_check(ld['bfloat16'], TARGETS['load_s'])} | "
        f"~{ORIGINAL['build_s']:.0f} s build + read | {ratio(ld['float32'], ORIGINAL['build_s'])} | "
        f"{ratio(ld['bfloat16'], ORIGINAL['build_s'])} | ≤ {TARGETS['load_s']:.0f} s | ≤ {TARGETS['load_s']:.0f} s |"
    )
    imp = [_get(r, "load", dt, "import_total_s", "median") for dt in DTYPES]
    impd = [_get(r, "load", dt, "import_denseav_s", "median") for dt in DTYPES]
    lines.append(
        f"| `import denseav` (incl. torch) / denseav alone | "
        f"{_f(imp[0], '{:.2f}')} / {_f(impd[0], '{:.2f}')} s | {_f(imp[1], '{:.2f}')} / {_f(impd[1], '{:.2f}')} s "
        f"| – | – | – | – | – |"
    )
    # encode-once
    for key, label in (
        ("one_image_many_sounds", "1 image x {k} sounds (10 s)"),
        ("many_images_one_sound", "{k} images x 1 sound"),
    ):
        k = r["settings"]["encode_count"]
        vals = []
        for dt in DTYPES:
            e = _get(r, "encode", dt, "result", key)
            b = _get(r, "encode", dt, "result", key + "_batched")
            if e is None:
                vals.append("error" if _get(r, "encode", dt, "error") else "–")
                continue

            def busy(x):
                return " ⚠️" if (x.get("cpu") or {}).get("other_cores", 0.0) >= QUIET_OTHER_CORES else ""

            s = f"{e['total_s']:.2f} s ({e['per_item_s']:.3f} s/item){busy(e)}"
            if b and "total_s" in b:
                s += f"; batched {b['total_s']:.2f} s ({b['per_item_s']:.3f}/item){busy(b)}"
            elif b and "error" in b:
                s += "; batched: error"
            vals.append(s)
        lines.append(
            f"| encode once: {label.format(k=k)}, total (per item) | {vals[0]} | {vals[1]} | "
            f"{k} x ground = {k * ORIGINAL['ground_s']:.1f} s | – | – | – | – |"
        )
    # FLOPs
    fl = _get(r, "flops", "result")
    if fl:
        gfl = {dt: (_get(fl, "flops", dt, "total") or 0) / 1e9 or None for dt in DTYPES}
        peak = {dt: _get(fl, "matmul", dt, "gflops") for dt in DTYPES}
        best = {dt: (lq[dt] or {}).get("median") or med[dt] for dt in DTYPES}  # uncontended median if any
        ach = {dt: (gfl[dt] / best[dt]) if gfl[dt] and best[dt] else None for dt in DTYPES}
        frac = {dt: (ach[dt] / peak[dt]) if ach[dt] and peak[dt] else None for dt in DTYPES}
        lines.append(
            f"| FLOPs of one ground() (FlopCounterMode) | {_f(gfl['float32'], '{:.1f}', ' GFLOP')} | "
            f"{_f(gfl['bfloat16'], '{:.1f}', ' GFLOP')} | – | – | – | – | – |"
        )
        lines.append(
            f"| achieved GFLOP/s (FLOPs / median latency, uncontended if any) | {_f(ach['float32'], '{:.0f}')} | "
            f"{_f(ach['bfloat16'], '{:.0f}')} | – | – | – | – | – |"
        )
        n = _get(fl, "matmul", "float32", "n") or 2048
        lines.append(
            f"| matmul peak, {n}x{n} median GFLOP/s | {_f(peak['float32'], '{:.0f}')} | "
            f"{_f(peak['bfloat16'], '{:.0f}')} | – | – | – | – | – |"
        )
        lines.append(
            f"| achieved / matmul peak | {_f(None if frac['float32'] is None else 100 * frac['float32'], '{:.0f}', ' %')} | "
            f"{_f(None if frac['bfloat16'] is None else 100 * frac['bfloat16'], '{:.0f}', ' %')} | – | – | – | – | – |"
        )
    # compare
    cmp_ = r.get("compare")
    if cmp_:
        full = cmp_.get("full_size_random", {})
        pct = full.get("max_abs_diff_pct_of_range")
        lines.append(
            f"| bf16 vs fp32 heatmaps, max abs diff / fp32 range (full size) | reference | "
            f"{_f(pct, '{:.2f}', ' %')} | – | – | – | – | – |"
        )
        for name, d in sorted((cmp_.get("parity_fixtures") or {}).items()):
            if not isinstance(d, dict):
                continue
            v = d.get("max_abs_diff_pct_of_range")
            lines.append(
                f"| bf16 vs fp32 heatmaps, parity fixture `{name}` | reference | "
                f"{_f(v, '{:.2f}', ' %') if 'error' not in d else 'error: ' + d['error'][:80]} | – | – | – | – | – |"
            )
    lines.append("")
    lines.append(
        "GB = 10^9 bytes (ru_maxrss KiB x 1024). Ratios are ours / original; ✅/❌ against the target; "
        "⚠️ = other processes used the CPU during that measurement. Each cell is measured in fresh "
        "processes, one at a time."
    )
    other = {dt: _get(r, "ground", dt, "result", "other_cores_mean") for dt in DTYPES}
    busy = [v for v in _all_other_cores(r) if v is not None]
    if any(v is not None for v in other.values()) or busy:
        worst = max(busy) if busy else None
        flag = (worst is not None and worst > 0.3) or any(v is not None and v > 0.3 for v in other.values())
        lines.append(
            f"Other processes' CPU use during the timed ground() runs: fp32 {_f(other['float32'], '{:.2f}')}, "
            f"bf16 {_f(other['bfloat16'], '{:.2f}')} cores on average; worst over any worker "
            f"{_f(worst, '{:.2f}')} cores"
            + (" — ⚠️ the machine was shared, timings are inflated." if flag else " (quiet machine).")
        )

    fails = []
    for dt in DTYPES:
        for i, rec in enumerate(_get(r, "load", dt, "processes") or []):
            if not rec.get("ok"):
                fails.append(f"load + 1 ground, {dt}, process {i + 1}: {rec.get('error')}")
        for sec in ("ground", "encode"):
            rec = _get(r, sec, dt)
            if isinstance(rec, dict) and rec.get("ok") is False:
                fails.append(f"{sec}, {dt}: {rec.get('error')}")
    if isinstance(r.get("flops"), dict) and r["flops"].get("ok") is False:
        fails.append(f"flops: {r['flops'].get('error')}")
    if fails:
        lines.append("")
        lines.append("Failed workers (their cells use the remaining processes, or show –):")
        lines += [f"- {f[:300]}" for f in fails]

    # scaling table
    sc = r.get("scaling")
    if sc:
        lines.append("")
        lines.append("#### ground() vs audio length (one fresh process per length: load, warm-up on 5 s, one run)")
        lines.append("")
        lines.append("| audio | float32 time | float32 peak RSS | bfloat16 time | bfloat16 peak RSS |")
        lines.append("|---|---|---|---|---|")
        secs = sorted({row["seconds"] for dt in sc for row in sc[dt]})
        for s in secs:
            cells = []
            for dt in DTYPES:
                row = next((x for x in sc.get(dt, []) if x["seconds"] == s), None)
                if row is None:
                    cells += ["not run", "–"]
                elif row.get("ok"):
                    res = row["result"]
                    busy = (res.get("cpu") or {}).get("other_cores", 0.0) >= QUIET_OTHER_CORES
                    cells += [
                        f"{res['ground_s']:.2f} s ({res['ground_s'] / s:.3f} s per audio s)"
                        + (" ⚠️ shared CPU" if busy else ""),
                        f"{kib_to_gb(res['maxrss_kib']):.2f} GB",
                    ]
                else:
                    err = str(row.get("error", "error"))
                    cells += [
                        "failed: " + err.split(";")[0][:90].replace("|", "/"),
                        _f(kib_to_gb(row.get("maxrss_kib")), "{:.2f}", " GB"),
                    ]
            lines.append(f"| {s:g} s | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
