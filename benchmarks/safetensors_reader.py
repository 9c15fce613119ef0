#!/usr/bin/env python
"""Peak RSS and time of `denseav.load` with the package's own safetensors reader vs the `safetensors` library.

    python benchmarks/safetensors_reader.py WEIGHTS_DIR [--repeats 2]

WEIGHTS_DIR is a checkpoint folder (config.json + model.safetensors), e.g. the full-size two-head folder that
`benchmarks/bench.py` writes (bench_out/weights_two_head). Every measurement runs in a fresh process (this script with
`--worker`), so `ru_maxrss` belongs to that one load. The `safe_open` variant swaps the reader class for one with the
same interface built on `safetensors.safe_open` (each tensor read with `get_tensor`, then cast to the target dtype).
Figures (minimum over the runs) are printed as a Markdown table; on a shared machine, use several repeats.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch


class SafeOpenFile:
    """The package reader's interface (`entries`, `get`, `close`) on top of `safetensors.safe_open`."""

    def __init__(self, path: Path) -> None:
        from safetensors import safe_open

        self._handle = safe_open(str(path), framework="pt", device="cpu")
        self._file = self._handle.__enter__()
        dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}
        self.entries = {}
        for key in self._file.keys():  # noqa: SIM118 (safe_open is not iterable)
            piece = self._file.get_slice(key)
            self.entries[key] = (dtypes[piece.get_dtype()], tuple(piece.get_shape()), 0, 0)

    def get(self, key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        tensor = self._file.get_tensor(key)
        return tensor if dtype is None else tensor.to(dtype)

    def close(self) -> None:
        self._handle.__exit__(None, None, None)


def worker(folder: str, reader: str, dtype: str) -> None:
    import denseav.checkpoint.readers as readers

    if reader == "safe_open":
        readers.SafetensorsFile = SafeOpenFile  # type: ignore[misc,assignment]
    import denseav

    t0 = time.perf_counter()
    model = denseav.load(folder, device="cpu", dtype=dtype, progress=False)
    load_s = time.perf_counter() - t0
    load_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # safe_open hands out tensors backed by a memory map, whose pages are read on first use: read every weight
    # once, so both readers are compared at the point where the model is ready to run.
    with torch.no_grad():
        for p in model.parameters():
            p.sum()
    ready_s = time.perf_counter() - t0
    ready_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"reader": reader, "dtype": dtype, "load_s": load_s, "load_mb": load_mb, "ready_s": ready_s}
    print(json.dumps({**row, "ready_mb": ready_mb, "dtype_ok": model.dtype == getattr(torch, dtype)}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights_dir")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--worker", nargs=2, metavar=("READER", "DTYPE"))
    args = ap.parse_args()
    if args.worker:
        worker(args.weights_dir, *args.worker)
        return 0
    rows = []
    for _ in range(args.repeats):
        for dtype in ("float32", "bfloat16"):
            for reader in ("own", "safe_open"):
                cmd = [sys.executable, __file__, args.weights_dir, "--worker", reader, dtype]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
                print(rows[-1], file=sys.stderr, flush=True)
    print("| reader | dtype | load s | peak RSS MB after load | ready s | peak RSS MB when ready | runs |")
    print("|---|---|---|---|---|---|---|")
    for dtype in ("float32", "bfloat16"):
        for reader in ("own", "safe_open"):
            mine = [r for r in rows if r["reader"] == reader and r["dtype"] == dtype]
            cells = [min(r[k] for r in mine) for k in ("load_s", "load_mb", "ready_s", "ready_mb")]
            print(
                f"| {reader} | {dtype} | {cells[0]:.2f} | {cells[1]:.0f} | {cells[2]:.2f} | {cells[3]:.0f} | {len(mine)} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
