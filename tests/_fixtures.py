"""Where the test data lives, and one clear skip reason when it is missing.

Fixture folders (tiny random-weight models made by running the original, with their inputs and every
intermediate output) come from, in increasing priority:
  1. tests/fixtures/ in this repository (vendored, so a plain clone can run the suite);
  2. ../shared/fixtures beside the checkout, when it exists (new fixture folders may appear there);
  3. DENSEAV_FIXTURES, one or more folders separated by os.pathsep, each laid out like tests/fixtures.
A folder of the same name in a later source replaces the earlier one; new names are added.

Evaluation data (small datasets in the original's layouts + the numbers the original produced on them with the
parity models, see ../shared/eval/README.md): ../shared/eval beside the checkout, or DENSEAV_EVAL_DATA.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENDORED = REPO / "tests" / "fixtures"
SHARED = REPO.parent / "shared"


def fixture_roots() -> list[Path]:
    roots = [VENDORED, SHARED / "fixtures"]
    roots += [Path(p) for p in os.environ.get("DENSEAV_FIXTURES", "").split(os.pathsep) if p]
    return [r for r in roots if r.is_dir()]


def _discover(sub: str, pattern: str, keep: str | None = None) -> list[Path]:
    found: dict[str, Path] = {}
    for root in fixture_roots():
        for path in sorted((root / sub).glob(pattern)):
            if keep is None or (path / keep).is_file():
                found[path.name] = path
    return [found[name] for name in sorted(found)]


def parity_dirs() -> list[Path]:
    """Every parity fixture folder (a folder with expected.safetensors), new ones picked up automatically."""
    return _discover("parity", "*", keep="expected.safetensors")


def key_manifests() -> list[Path]:
    return _discover("keys", "*.json")


def eval_datasets() -> list[Path]:
    """Every evaluation dataset: a folder with expected/*.json beside its data (prompted/, retrieval/), from
    tests/fixtures/eval, any such folder in ../shared, and DENSEAV_EVAL_DATA (os.pathsep-separated); a later
    folder of the same name replaces an earlier one."""
    candidates = [VENDORED / "eval", *sorted(SHARED.glob("*"))]
    candidates += [Path(p) for p in os.environ.get("DENSEAV_EVAL_DATA", "").split(os.pathsep) if p]
    found = {d.name: d for d in candidates if (d / "expected").is_dir()}
    return [found[name] for name in sorted(found)]


def eval_cases() -> list[tuple[Path, Path]]:
    """(<dataset>/expected/<model>.json, the parity fixture folder named <model>) for every expected file whose
    model exists."""
    models = {p.name: p for p in parity_dirs()}
    found = [e for root in eval_datasets() for e in sorted((root / "expected").glob("*.json"))]
    return [(e, models[e.stem]) for e in found if e.stem in models]


PARITY_DIRS = parity_dirs()
KEY_MANIFESTS = key_manifests()
EVAL_CASES = eval_cases()
MISSING = (
    "no test fixtures found: tests/fixtures is missing from this checkout and neither ../shared/fixtures nor "
    "DENSEAV_FIXTURES provides any"
)


def first_parity_dir() -> Path:
    """Any fixture model folder, or a skip that says why there is none."""
    if not PARITY_DIRS:
        pytest.skip(MISSING)
    return PARITY_DIRS[0]


def fixtures_root() -> Path:
    """The first place fixtures are looked for (for messages)."""
    return VENDORED
