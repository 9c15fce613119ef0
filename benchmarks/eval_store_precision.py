#!/usr/bin/env python
"""Why `denseav eval` stores float32 features: its metrics against the original's with float16 and float32 stores.

    python benchmarks/eval_store_precision.py

For every evaluation dataset with expected numbers (found as the tests find them: tests/fixtures/eval, ../shared,
DENSEAV_EVAL_DATA), both tasks run with the fixture model of the same name, once per storage precision; printed:
the largest |ours - original| over AP / IoU / ap_dis / act_dis (the tests' tolerance: 1e-5 for AP and dis).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import denseav.evaluation.encoding as encoding
from _fixtures import EVAL_CASES
from denseav.evaluation import evaluate_retrieval, evaluate_segmentation


def deviation(expected_json: Path, model_dir: Path) -> tuple[float, str]:
    data = expected_json.parents[1]
    seg = evaluate_segmentation(data / "prompted", model=str(model_dir), prompts="both", progress=False)
    ret = evaluate_retrieval(data / "retrieval" / "pairs.csv", model=str(model_dir), progress=False)
    ours = {**seg.metrics, **ret.metrics}
    want = json.loads(expected_json.read_text())["metrics"]
    dev = {k: abs(ours[k] - v) for k, v in want.items() if not k.startswith("retrieval_") and v is not None}
    worst = max(dev, key=lambda k: dev[k])
    return dev[worst], worst


def main() -> None:
    for expected_json, model_dir in EVAL_CASES:
        for dtype in ("float32", "float16"):
            encoding.EVAL_FEATURES_DTYPE = dtype
            value, name = deviation(expected_json, model_dir)
            print(
                f"{expected_json.parents[1].name}/{model_dir.name} {dtype} store: max |ours - original| = {value:.2e} ({name})"
            )


if __name__ == "__main__":
    main()
