"""Where the shared test data lives: ../shared/fixtures beside the checkout (override: DENSEAV_FIXTURES), and the
evaluation data ../shared/eval (override: DENSEAV_EVAL_DATA)."""

from __future__ import annotations

import os
from pathlib import Path


def fixtures_root() -> Path:
    env = os.environ.get("DENSEAV_FIXTURES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def eval_root() -> Path:
    env = os.environ.get("DENSEAV_EVAL_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "eval"


def eval_cases() -> list[tuple[Path, Path]]:
    """(expected/<model>.json, the parity fixture folder <model>) for every expected file whose model exists."""
    found = sorted((eval_root() / "expected").glob("*.json"))
    return [(e, fixtures_root() / "parity" / e.stem) for e in found if (fixtures_root() / "parity" / e.stem).is_dir()]


def parity_dirs() -> list[Path]:
    """Every parity fixture folder (new ones are picked up automatically)."""
    root = fixtures_root() / "parity"
    return sorted(p for p in root.glob("*") if (p / "expected.safetensors").is_file())


def key_manifests() -> list[Path]:
    return sorted((fixtures_root() / "keys").glob("*.json"))


PARITY_DIRS = parity_dirs()
KEY_MANIFESTS = key_manifests()
EVAL_CASES = eval_cases()
