#!/usr/bin/env python
"""Speed and peak memory of `denseav.ground`, as ratios to the reference measured in the same run.

    python benchmarks/bench.py [--rounds 3] [--runs 2] [--dtypes float32,bfloat16[,float16]]
                               [--reference-python ../refvenv/bin/python] [--out bench_out/bench.json]

The reference is ../shared/bench/reference_proxy.py (transformers' HubertModel + a ViT-S/8, the two stock models
the original DenseAV spends its time in; it tracks the original's `ground` within ~5%). It runs in its own
environment, never this package's:

    python3 -m venv ../refvenv && ../refvenv/bin/pip install torch==2.13.0 "transformers==4.41.2"

Workload: one 224x224 image + 10 s of 16 kHz audio, the full-size two-head model with seeded random weights
(benchmarks/fullsize.py writes it once). Every cell runs in a FRESH process, and the cells are interleaved
(reference, float32, bfloat16, reference, float32, ...) for --rounds rounds, so a change of the machine's load hits
all of them alike. Each process makes one warm-up call and --runs timed calls. Reported: the median of all timed
calls per cell, the ratio of medians to the reference and to float32, the median of the per-round ratios, and the
median peak RSS of the cell's processes (ru_maxrss from wait4, the same for the reference and for us).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fullsize import DEFAULT_WEIGHTS_DIR, REPO, SEED, ensure_weights
from variants import load_variant

PROXY = REPO.parent / "shared" / "bench" / "reference_proxy.py"
# ../refvenv beside the checkout; for a git worktree under a folder of worktrees, also one level further up
REFERENCE_PYTHONS = [REPO.parent / "refvenv" / "bin" / "python", REPO.parent.parent / "refvenv" / "bin" / "python"]
REFERENCE_HOWTO = (
    "create the reference environment outside the project:\n"
    "    python3 -m venv ../refvenv && ../refvenv/bin/pip install torch==2.13.0 'transformers==4.41.2'\n"
    "or pass --reference-python PATH (a python that has torch and transformers 4.41.2)"
)
SAMPLE_RATE = 16_000
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def machine_info() -> dict:
    """CPU model and the flags that decide which matmul kernels torch can use; torch build; threads; load."""
    import torch

    model, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {
        "cpu": model,
        "cpu_flags": {f: f in flags for f in CPU_FLAGS},
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_build": f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only",
        "threads": torch.get_num_threads(),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
    }


def flags_text(info: dict) -> str:
    on = [f for f, v in info["cpu_flags"].items() if v]
    off = [f for f, v in info["cpu_flags"].items() if not v]
    return f"has {', '.join(on) or 'none'}; lacks {', '.join(off) or 'none'}"


# The machine's float matmul rate (benchmarks/corpus_score.py compares against it).
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


# ----------------------------------------------------------------------------------------------------------------
# the denseav worker (a fresh process per cell and round)
# ----------------------------------------------------------------------------------------------------------------


def bench_inputs(audio_seconds: float):
    import numpy as np

    rng = np.random.default_rng(SEED)
    image = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    audio = (rng.standard_normal(round(audio_seconds * SAMPLE_RATE), dtype=np.float32) * 0.1).astype(np.float32)
    return image, audio


def worker(weights: str, dtype: str, runs: int, audio_seconds: float, out: str) -> None:
    import torch

    import denseav

    image, audio = bench_inputs(audio_seconds)
    t0 = time.perf_counter()
    model = load_variant(weights, dtype)
    load_s = time.perf_counter() - t0

    def call() -> float:
        start = time.perf_counter()
        denseav.ground(image, audio, model=model, sample_rate=SAMPLE_RATE)
        return time.perf_counter() - start

    warmup = call()
    times = [call() for _ in range(runs)]
    result = {"runs_s": times, "warmup_s": warmup, "load_s": load_s, "threads": torch.get_num_threads()}
    Path(out).write_text(json.dumps(result))


# ----------------------------------------------------------------------------------------------------------------
# the driver
# ----------------------------------------------------------------------------------------------------------------


def run_process(cmd: list[str], result_path: Path, timeout: float) -> dict:
    """Run one cell in a fresh process; its JSON result plus its own peak RSS (wait4's ru_maxrss, KiB)."""
    load_before = os.getloadavg()[0]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not result_path.is_file():
        return {"ok": False, "error": stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]}
    out = json.loads(result_path.read_text())
    return {**out, "ok": True, "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9, "load_avg_1min": load_before}


def cell_command(cell: str, args: argparse.Namespace, result: Path) -> list[str]:
    if cell == "reference":
        return [str(args.reference_python), str(PROXY), "--runs", str(args.runs), "--json", str(result)]
    return [
        sys.executable,
        __file__,
        "--worker",
        cell,
        "--runs",
        str(args.runs),
        "--audio-seconds",
        str(args.audio_seconds),
        "--weights-dir",
        str(args.weights_dir),
        "--json",
        str(result),
    ]


def measure(args: argparse.Namespace) -> dict:
    """Every cell once per round, in order; the records so far are saved after each process (a run that is
    interrupted keeps what it measured, in --out with "complete": false)."""
    cells = ["reference", *args.dtypes]
    records: dict[str, list[dict]] = {c: [] for c in cells}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for cell in cells:
                result = Path(tmp) / f"{cell}_{r}.json"
                rec = run_process(cell_command(cell, args, result), result, args.timeout)
                shown = f"{statistics.median(rec['runs_s']):.2f} s" if rec["ok"] else rec["error"]
                print(f"round {r + 1}/{args.rounds} {cell}: {shown}", file=sys.stderr, flush=True)
                records[cell].append(rec)
                args.out.write_text(json.dumps({"complete": False, "records": records}))
    return records


def summarise(records: dict[str, list[dict]]) -> dict:
    ok = {c: [r for r in recs if r["ok"]] for c, recs in records.items()}
    med = {c: statistics.median(t for r in recs for t in r["runs_s"]) if recs else None for c, recs in ok.items()}
    ref, fp32 = med.get("reference"), med.get("float32")
    out = {}
    for cell, recs in ok.items():
        # per-round ratio: this cell's median over the reference's median of the same round
        paired = [
            statistics.median(a["runs_s"]) / statistics.median(b["runs_s"])
            for a, b in zip(records[cell], records["reference"])
            if a["ok"] and b["ok"]
        ]
        out[cell] = {
            "median_s": med[cell],
            "runs_s": [t for r in recs for t in r["runs_s"]],
            "vs_reference": med[cell] / ref if med[cell] and ref else None,
            "vs_reference_per_round_median": statistics.median(paired) if paired else None,
            "vs_float32": med[cell] / fp32 if med[cell] and fp32 and cell != "reference" else None,
            "peak_rss_gb": statistics.median(r["peak_rss_gb"] for r in recs) if recs else None,
            "load_avg_1min": [r["load_avg_1min"] for r in recs],
            "failed": [r["error"] for r in records[cell] if not r["ok"]],
        }
    return out


def table(summary: dict, info: dict, reference_torch: str | None, command: str, audio_seconds: float) -> str:
    def num(v: float | None, fmt: str) -> str:
        return "–" if v is None else fmt.format(v)

    lines = [
        f"`{command}` · {info['cpu']} ({flags_text(info)}) · {info['logical_cpus']} logical CPUs · "
        f"denseav on torch {info['torch']} ({info['torch_build']}, ATen CPU capability "
        f"{info['aten_cpu_capability']}), reference on torch {reference_torch or '?'} · {info['threads']} threads · "
        f"224x224 image + {audio_seconds:g} s audio, full-size two-head model (random weights)",
        "",
        "| | median `ground` | vs reference (ratio of medians) | vs reference (median of per-round ratios) "
        "| vs float32 | peak RSS (fresh process) | 1-min load average at the cell's starts |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell, s in summary.items():
        name = "reference (proxy of the original, fp32)" if cell == "reference" else f"denseav {cell}"
        loads = ", ".join(f"{v:.1f}" for v in s["load_avg_1min"])
        lines.append(
            f"| {name} | {num(s['median_s'], '{:.2f} s')} (n={len(s['runs_s'])}) | "
            f"{num(s['vs_reference'], '{:.2f}x')} | {num(s['vs_reference_per_round_median'], '{:.2f}x')} | "
            f"{num(s['vs_float32'], '{:.2f}x')} | {num(s['peak_rss_gb'], '{:.2f} GB')} | {loads} |"
        )
        if s["failed"]:
            lines.append(f"|  ↳ failed processes: {'; '.join(map(str, s['failed']))[:200]} | | | | | | |")
    lines += ["", "GB = 10^9 bytes. Ratios below 1 mean faster than the reference (or than float32)."]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (one fresh process per cell each)")
    ap.add_argument("--runs", type=int, default=2, help="timed calls per process, after one warm-up call")
    ap.add_argument(
        "--dtypes",
        default="float32,bfloat16",
        help="comma-separated: float32, bfloat16, float16, int8 (benchmarks/variants.py)",
    )
    ap.add_argument("--audio-seconds", type=float, default=10.0)
    ap.add_argument(
        "--reference-python",
        type=Path,
        default=None,
        help="default: the first of ../refvenv, ../../refvenv that exists",
    )
    ap.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds before a cell's process is killed")
    ap.add_argument("--out", type=Path, default=REPO / "bench_out" / "bench.json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(str(args.weights_dir), args.worker, args.runs, args.audio_seconds, args.json)
        return 0
    found = [p for p in REFERENCE_PYTHONS if p.is_file()]
    args.reference_python = args.reference_python or (found[0] if found else None)
    if args.reference_python is None or not Path(args.reference_python).is_file():
        where = args.reference_python or " or ".join(map(str, REFERENCE_PYTHONS))
        print(f"no reference python at {where}; {REFERENCE_HOWTO}", file=sys.stderr)
        return 2
    ensure_weights(args.weights_dir)
    command = "python benchmarks/bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    info = machine_info()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    records = measure(args)
    summary = summarise(records)
    ref_torch = next((r.get("torch") for r in records["reference"] if r["ok"]), None)
    md = table(summary, info, ref_torch, command.strip(), args.audio_seconds)
    args.out.write_text(
        json.dumps(
            {
                "complete": True,
                "started": started,
                "machine": info,
                "command": command,
                "summary": summary,
                "records": records,
            }
        )
    )
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
