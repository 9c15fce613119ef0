"""The full-size published architecture with seeded random weights, written once for the benchmarks.

A local checkpoint folder (config.json + model.safetensors) with the exact keys and shapes of a published model
(from the key manifests in the shared fixtures: the two-head "sound-language" model by default), filled with seeded
random float32 values of sensible scale. Speed does not depend on the values. The file is streamed tensor by tensor,
so writing it never needs the 1.4 GB at once. `ensure_weights` regenerates only when the manifest or the generator
changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS_DIR = REPO / "bench_out" / "weights_two_head"
SEED = 20240613
GEN_VERSION = 1  # bump when the weight generator changes, so old folders are regenerated


def fixtures_root() -> Path:
    env = os.environ.get("DENSEAV_FIXTURES")
    return Path(env).expanduser().resolve() if env else (REPO / ".." / "shared" / "fixtures").resolve()


def default_manifest() -> Path:
    for root in (fixtures_root(), REPO / "tests" / "fixtures"):
        path = root / "keys" / "sound_language_two_head.json"
        if path.is_file():
            return path
    raise FileNotFoundError("no keys/sound_language_two_head.json in ../shared/fixtures or tests/fixtures")


def ensure_weights(weights_dir: Path = DEFAULT_WEIGHTS_DIR, manifest_path: Path | None = None) -> Path:
    """The full-size random-weight checkpoint folder, generated if missing or stale. A folder holding a checkpoint
    that this module did not write (no bench_meta.json) is returned as it is."""
    if (weights_dir / "model.safetensors").exists() and not (weights_dir / "bench_meta.json").exists():
        return weights_dir  # a real checkpoint folder (not one this module wrote): use it, never overwrite it
    manifest = json.loads((manifest_path or default_manifest()).read_text())
    if not weights_complete(weights_dir, manifest):
        print(f"writing full-size random weights to {weights_dir} (once, ~1.4 GB)", flush=True)
        generate_weights(weights_dir, manifest)
    return weights_dir


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
