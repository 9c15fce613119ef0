#!/usr/bin/env python
"""Where one `ground` call spends its time: per stage, ms against its FLOP count and the measured matmul peak.

    python benchmarks/stage_profile.py [--runs 3] [--rounds 2] [--compare OLD/src] [--dtype float32]

Workload: bench.py's (one 224x224 image + 10 s of audio, the full-size two-head model with seeded random weights
from benchmarks/fullsize.py). Each process loads the model, makes one warm-up call, then --runs timed calls with
forward hooks on every stage (pre-hook and hook read the clock), and one more call under
torch.utils.flop_counter.FlopCounterMode (the hooks then read the running FLOP total instead), so every stage's
time and FLOPs come from the same module boundaries. Transformer blocks are split further into their LayerNorms,
the q/k/v projection, the attention core (scaled-dot-product attention and the head reshapes: the attention
module minus its two linears), the output projection, the two MLP linears, the GELU (the MLP minus its linears)
and the residual adds (the block minus its parts). "preprocessing and glue" is the rest of `ground`: decoding the
inputs, resizing, normalising, building the result.

The matmul peak is the median rate of a float32 2048x2048x2048 matmul in the same process (bench.py's
`_matmul_peak`), measured right before the calls. --compare OLD/src runs the same profile on another source tree
(e.g. a checkout of the previous commit) in alternating fresh processes, --rounds times each, and reports the
before/after ratio of the median `ground` times and per stage.
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
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import SAMPLE_RATE, _matmul_peak, bench_inputs, flags_text, machine_info
from fullsize import DEFAULT_WEIGHTS_DIR, REPO, ensure_weights

# Stage names in data-flow order; block parts are reported under "<encoder> blocks: <part>".
STAGES = (
    "preprocessing and glue",
    "audio conv feature encoder",
    "audio projection (norm + linear)",
    "audio positional conv",
    "audio blocks",
    "audio final norm",
    "audio aligner",
    "image patch embed",
    "image blocks",
    "image positions, cls, final norm",
    "image aligner",
    "similarity and score",
)
BLOCK_PARTS = (
    "layer norms",
    "qkv linear",
    "attention core",
    "out projection",
    "mlp fc1",
    "gelu",
    "mlp fc2",
    "residual",
)


def flop_counter():
    """torch's FlopCounterMode, also counting the CPU flash-attention kernel that scaled_dot_product_attention
    runs on CPUs (torch 2.13 counts only the CUDA attention kernels): 4 * B * heads * N_q * N_k * head_dim."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_flash(query_shape, key_shape, value_shape, *_args, out_shape=None, **_kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    return FlopCounterMode(display=False, custom_mapping={op: cpu_flash})


class StageClock:
    """Forward hooks that add each module's inclusive time (or FLOPs, with a counter) to a named bucket."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.counter = None  # a FlopCounterMode while counting FLOPs
        self._handles: list = []

    def now(self) -> float:
        if self.counter is None:
            return time.perf_counter()
        return float(sum(self.counter.flop_counts["Global"].values()))

    def attach(self, name: str, module, sign: float = 1.0) -> None:
        """Add (sign = 1) or subtract (sign = -1: a part already counted elsewhere) the module's cost to `name`."""
        starts: list[float] = []

        def pre(_m, _args):
            starts.append(self.now())

        def post(_m, _args, _out):
            self.totals[name] += sign * (self.now() - starts.pop())

        self._handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    def attach_blocks(self, prefix: str, blocks) -> None:
        for block in blocks:
            self.attach(f"{prefix}: residual", block)
            for norm in (block.norm1, block.norm2):
                self.attach(f"{prefix}: layer norms", norm)
                self.attach(f"{prefix}: residual", norm, -1)
            self.attach(f"{prefix}: attention core", block.attn)
            self.attach(f"{prefix}: residual", block.attn, -1)
            for part, linear in (("qkv linear", block.attn.qkv), ("out projection", block.attn.proj)):
                self.attach(f"{prefix}: {part}", linear)
                self.attach(f"{prefix}: attention core", linear, -1)
            self.attach(f"{prefix}: gelu", block.mlp)
            self.attach(f"{prefix}: residual", block.mlp, -1)
            for part, linear in (("mlp fc1", block.mlp.fc1), ("mlp fc2", block.mlp.fc2)):
                self.attach(f"{prefix}: {part}", linear)
                self.attach(f"{prefix}: gelu", linear, -1)

    def attach_model(self, model) -> None:
        a, i = model.audio_encoder, model.image_encoder
        self.attach("audio conv feature encoder", a.feature_encoder)
        self.attach("audio projection (norm + linear)", a.projection_norm)
        self.attach("audio projection (norm + linear)", a.projection)
        self.attach("audio positional conv", a.pos_conv)
        self.attach_blocks("audio blocks", a.blocks)
        self.attach("audio final norm", a.norm)
        self.attach("audio aligner", model.audio_aligner)
        self.attach("image patch embed", i.patch_embed)
        self.attach("image positions, cls, final norm", i)  # the whole encoder minus the parts below
        self.attach("image positions, cls, final norm", i.patch_embed, -1)
        for block in i.blocks:
            self.attach("image positions, cls, final norm", block, -1)
        self.attach_blocks("image blocks", i.blocks)
        self.attach("image aligner", model.image_aligner)
        self.attach("similarity and score", model.similarity)
        score = model.similarity.score

        def timed_score(*args, **kwargs):
            start = self.now()
            try:
                return score(*args, **kwargs)
            finally:
                self.totals["similarity and score"] += self.now() - start

        model.similarity.score = timed_score

    def take(self) -> dict[str, float]:
        out, self.totals = dict(self.totals), defaultdict(float)
        return out


def _stage_totals(parts: dict[str, float], total: float) -> dict[str, float]:
    """Per top-level stage: the block parts summed into their encoder's row, the rest of `total` as glue."""
    stages = {s: 0.0 for s in STAGES}
    for name, v in parts.items():
        stages[name.split(":")[0]] += v
    stages["preprocessing and glue"] = total - sum(stages.values())
    return stages


def worker(weights: str, dtype: str, runs: int, out: str) -> None:
    import torch

    import denseav
    from variants import load_variant

    image, audio = bench_inputs(10.0)
    model = load_variant(weights, dtype)
    peak = _matmul_peak(torch.float32, 2048, 5)
    clock = StageClock()
    clock.attach_model(model)

    def call() -> float:
        start = clock.now()
        denseav.ground(image, audio, model=model, sample_rate=SAMPLE_RATE)
        return clock.now() - start

    call()  # warm-up
    clock.take()
    calls = []
    for _ in range(runs):
        total = call()
        calls.append({"total": total, "parts": clock.take()})
    with torch.inference_mode(), flop_counter() as counter:
        clock.counter = counter
        flop_total = call()
    flops = {"total": flop_total, "parts": clock.take()}
    record = {"peak": peak, "calls": calls, "flops": flops, "src": denseav.__file__}
    Path(out).write_text(json.dumps(record))


def run_cell(src: Path, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "r.json"
        cmd = [sys.executable, __file__, "--worker", "--runs", str(args.runs), "--dtype", args.dtype]
        cmd += ["--weights-dir", str(args.weights_dir), "--json", str(result)]
        env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1"}
        load = os.getloadavg()[0]
        subprocess.run(cmd, env=env, check=True)
        return {**json.loads(result.read_text()), "load_avg_1min": load}


def summarise(records: list[dict]) -> dict:
    """Medians over every timed call of every process; FLOPs from the first process (they do not vary)."""
    calls = [c for r in records for c in r["calls"]]
    names = sorted({n for c in calls for n in c["parts"]})
    med_parts = {n: statistics.median(c["parts"].get(n, 0.0) for c in calls) for n in names}
    med_total = statistics.median(c["total"] for c in calls)
    flops = records[0]["flops"]
    return {
        "total_s": med_total,
        "total_flops": flops["total"],
        "stages_s": _stage_totals(med_parts, med_total),
        "stages_flops": _stage_totals(flops["parts"], flops["total"]),
        "parts_s": med_parts,
        "parts_flops": flops["parts"],
        "peak_gflops": statistics.median(r["peak"]["gflops"] for r in records),
        "calls": len(calls),
        "load_avg_1min": [r["load_avg_1min"] for r in records],
    }


def _row(name: str, seconds: float, flops: float, peak: float, total: float, before: float | None) -> str:
    rate = flops / seconds / 1e9 if seconds > 0 else 0.0
    cells = [
        name,
        f"{1000 * seconds:.0f}",
        f"{100 * seconds / total:.1f} %",
        f"{flops / 1e9:.1f}" if flops else "–",
        f"{rate:.1f}" if flops else "–",
        f"{100 * rate / peak:.0f} %" if flops else "–",
    ]
    if before is not None:
        cells.append(f"{seconds / before:.2f}x" if before > 0 else "–")
    return "| " + " | ".join(cells) + " |"


def table(s: dict, before: dict | None = None) -> str:
    head = "| stage | ms | share | GFLOP | GFLOP/s | % of matmul peak |" + (" after / before |" if before else "")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    peak, total = s["peak_gflops"], s["total_s"]
    for name in STAGES:
        b = before["stages_s"][name] if before else None
        lines.append(_row(name, s["stages_s"][name], s["stages_flops"][name], peak, total, b))
        if name.endswith("blocks"):
            for part in BLOCK_PARTS:
                key = f"{name}: {part}"
                bp = before["parts_s"].get(key) if before else None
                row = _row(f"  ↳ {part}", s["parts_s"].get(key, 0.0), s["parts_flops"].get(key, 0.0), peak, total, bp)
                lines.append(row)
    lines.append(
        _row("**`ground` total**", total, s["total_flops"], peak, total, before["total_s"] if before else None)
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="timed calls per process, after one warm-up call")
    ap.add_argument("--rounds", type=int, default=1, help="processes per source tree (alternating with --compare)")
    ap.add_argument("--compare", type=Path, help="another source tree (its src/ folder): the 'before' side")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR)
    ap.add_argument("--out", type=Path, default=REPO / "bench_out" / "stage_profile.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(str(args.weights_dir), args.dtype, args.runs, args.json)
        return 0
    ensure_weights(args.weights_dir)
    trees = {"after": REPO / "src"} | ({"before": args.compare.resolve()} if args.compare else {})
    records: dict[str, list[dict]] = {k: [] for k in trees}
    for r in range(args.rounds):
        for side in list(trees) if r % 2 == 0 else list(reversed(trees)):  # ABBA: neither side always first
            records[side].append(run_cell(trees[side], args))
            totals = ", ".join(f"{c['total']:.2f} s" for c in records[side][-1]["calls"])
            print(f"round {r + 1} {side}: {totals}", file=sys.stderr, flush=True)
    summary = {side: summarise(recs) for side, recs in records.items()}
    info = machine_info()
    command = "python benchmarks/stage_profile.py " + " ".join(argv if argv is not None else sys.argv[1:])
    s = summary["after"]
    print(
        f"`{command.strip()}` · {info['cpu']} ({flags_text(info)}) · {info['logical_cpus']} logical CPUs · torch "
        f"{info['torch']} ({info['torch_build']}, {info['aten_cpu_capability']}) · {info['threads']} threads · "
        f"{args.dtype}, 224x224 image + 10 s audio · matmul peak {s['peak_gflops']:.1f} GFLOP/s (median) · "
        f"{s['calls']} timed calls, medians · 1-min load {', '.join(f'{v:.1f}' for v in s['load_avg_1min'])}\n"
    )
    print(table(s, summary.get("before")))
    if "before" in summary:
        b = summary["before"]
        print(
            f"\nbefore ({args.compare}): median `ground` {b['total_s']:.2f} s, after {s['total_s']:.2f} s: "
            f"{s['total_s'] / b['total_s']:.3f}x"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": command, "machine": info, "summary": summary, "records": records}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
