"""`denseav eval` end to end in subprocesses, on tiny datasets made in tmp folders, with a parity fixture model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from _eval_data import Row, make_pairs, make_prompted, write_csv
from _fixtures import MISSING, PARITY_DIRS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PARITY_DIRS, reason=MISSING),
]
BOX = (20, 16, 60, 48)


def run(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "denseav", "eval", *map(str, args), "--weights", str(PARITY_DIRS[0])]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("denseav: error: ") and "Traceback" not in proc.stderr
    return lines[0]


def test_segmentation_writes_table_json_and_example_grids(tmp_path: Path):
    rows = [Row("a.jpg", 17, {17: BOX, 770: (0, 0, 12, 12)}), Row("a.jpg", 770, {}), Row("b.jpg", 17, {17: BOX})]
    root = make_prompted(tmp_path / "data", rows)
    proc = run(
        "segmentation", root, "--prompts", "speech", "--json", "seg.json", "--examples", "grids", "-q", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "| **mean** |" in proc.stdout and "advanced AP" in proc.stdout
    report = json.loads((tmp_path / "seg.json").read_text())
    assert set(report["metrics"]) == {
        "speech_basic_ap",
        "speech_basic_iou",
        "speech_advanced_ap",
        "speech_advanced_iou",
    }
    assert report["provenance"]["weights_sha256"] and report["provenance"]["dataset_sha256"]
    assert len(report["items"]["speech"]) == 3
    grids = sorted(p.name for p in (tmp_path / "grids").iterdir())
    assert grids == ["speech_class17.png", "speech_class770.png"]
    with Image.open(tmp_path / "grids" / "speech_class17.png") as im:
        assert im.width >= 3 * 224 and im.height >= 2 * 224  # three panels, both items of the class


def test_retrieval_prints_recalls_and_writes_json(tmp_path: Path):
    pairs = make_pairs(tmp_path / "data", {"speech": 3, "sound": 3})
    proc = run("retrieval", pairs, "--json", "-", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # with --json -, stdout is pure JSON and the table goes to stderr
    assert report["metrics"]["retrieval_speech_A_r1"] is not None
    assert report["metrics"]["retrieval_sound_I_r10"] is None
    assert "| speech | 3 |" in proc.stderr


def test_a_kept_store_is_reused_and_a_bad_store_folder_refused(tmp_path: Path):
    pairs = make_pairs(tmp_path / "data", {"speech": 2})
    first = run("retrieval", pairs, "--json", "-", "--store", "features", "-q", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    shards = sorted((tmp_path / "features").rglob("*.parquet"))
    again = run("retrieval", pairs, "--json", "-", "--store", "features", "-q", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sorted((tmp_path / "features").rglob("*.parquet")) == shards  # everything was in the store
    assert json.loads(again.stdout)["metrics"] == json.loads(first.stdout)["metrics"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    refused = run("retrieval", pairs, "--store", "notes", cwd=tmp_path)
    assert refused.returncode == 2 and "--store notes exists and is not a denseav feature store" in refused.stderr
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"
    assert "--address needs --engine ray" in run("retrieval", pairs, "--address", "auto", cwd=tmp_path).stderr


def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path):
    bad = write_csv(tmp_path / "pairs.csv", [{"set": "speech", "image": "a.jpg"}])
    proc = run("retrieval", bad, "--json", "out.json", cwd=tmp_path)
    assert "missing column(s) audio" in one_error_line(proc)
    root = make_prompted(tmp_path / "data", [Row("a.jpg", 17, {17: BOX})])
    label = root / "annotations" / "a_seg.png"
    Image.open(label).convert("P").save(label)
    proc = run("segmentation", root, "--json", "out.json", "--examples", "grids", cwd=tmp_path)
    assert "a_seg.png' has one channel" in one_error_line(proc)
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "grids").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.json")]  # no temporary left behind


def test_disentangle_on_a_model_without_two_heads_is_refused(tmp_path: Path):
    pairs = make_pairs(tmp_path, {"speech": 2, "sound": 2})
    for folder in PARITY_DIRS:
        if json.loads((folder / "config.json").read_text()).get("sim_agg_heads", 1) != 2:
            env = dict(os.environ, HF_HUB_OFFLINE="1")
            cmd = [
                sys.executable,
                "-m",
                "denseav",
                "eval",
                "retrieval",
                str(pairs),
                "--disentangle",
                "--weights",
                str(folder),
            ]
            proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
            assert "needs a two-head model" in one_error_line(proc)
            return
    pytest.skip("no parity fixture model without two heads")
