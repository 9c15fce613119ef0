"""Checkpoint files: a Hugging Face `model.safetensors` + `config.json` (+ optional `backbones.json`) or a Lightning
`.ckpt`, opened into a `RawCheckpoint` whose tensors are read one at a time, on demand."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from ..errors import CheckpointError
from ..pretrained import BACKBONES_FILE

Reader = Callable[[str, "torch.dtype | None"], torch.Tensor]


class TensorSource(Mapping[str, torch.Tensor]):
    """Lazy, read-once access to a checkpoint's tensors, so conversion never holds two full copies.

    `shapes` lists every tensor's name and shape without reading it; `read(key, dtype)` reads one tensor, converted
    to `dtype` while reading where the file format allows (no full-precision temporary). `close()` (or leaving a
    `with` block) releases the file.
    """

    def __init__(
        self, shapes: dict[str, tuple[int, ...]], reader: Reader, close: Callable[[], None] | None = None
    ) -> None:
        self.shapes = shapes
        self._read = reader
        self._close = close

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._read(key, None)

    def read(self, key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        return self._read(key, dtype)

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None


@dataclass
class RawCheckpoint:
    """What a checkpoint file holds, before conversion. A context manager: leaving it closes the weights file."""

    hparams: dict[str, Any]
    tensors: TensorSource
    backbones: dict[str, Any] | None
    source: str

    def __enter__(self) -> RawCheckpoint:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.tensors.close()


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"could not read the {what} {path}: {e}") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"the {what} {path} is not a JSON object")
    return data


def _optional_json(path: Path | None, what: str) -> dict[str, Any] | None:
    return read_json(path, what) if path is not None and path.is_file() else None


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class SafetensorsFile:
    """A minimal safetensors reader that reads each tensor with one `readinto` into its final buffer.

    Why not `safetensors.safe_open` (measured with benchmarks/safetensors_reader.py on the full-size two-head
    checkpoint, 1.37 GB float32, each load in a fresh process, peak RSS = ru_maxrss once every weight has been
    used): loading to bfloat16 peaks at 2,200 MB through `safe_open` against 930 MB here, and to float32 at
    1,900 MB against 1,560 MB. `safe_open` memory-maps the file, and every mapped page it hands out or
    converts stays resident until the map goes; here the bytes are read straight into the final tensor, or, when
    converting, through one reused scratch buffer, so a bfloat16 load never holds the float32 weights at all.
    The price is time: `safe_open` reached a ready model faster in most runs (best of 3, float32: 7.6 s vs
    11.6 s in one batch, 3.4 s vs 3.5 s in another), on a shared 2-core machine at load average 6-10, where
    times varied 2-5x between runs of the same reader. Memory is the reason to keep this reader. The whole layout
    is validated up front, so a truncated download fails before anything is built.
    """

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close(), which RawCheckpoint's `with` calls)
        try:
            self.base, self.entries = self._read_header(path.stat().st_size)
        except BaseException:
            self._file.close()
            raise
        self._scratch: torch.Tensor | None = None

    def _read_header(self, size: int) -> tuple[int, dict[str, tuple[torch.dtype, tuple[int, ...], int, int]]]:
        head = self._file.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n <= 0 or n > min(size - 8, 100 << 20):
            raise ValueError("no valid safetensors header")
        try:
            header = json.loads(self._file.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"unreadable header: {e}") from e
        header.pop("__metadata__", None)
        entries = {}
        for key, info in header.items():
            dtype = _SAFETENSORS_DTYPES.get(info.get("dtype"))
            if dtype is None:
                raise ValueError(f"tensor {key!r} has unsupported dtype {info.get('dtype')!r}")
            shape = tuple(int(x) for x in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
            if end - begin != torch.Size(shape).numel() * dtype.itemsize:
                raise ValueError(f"tensor {key!r}: byte range does not match its shape")
            if 8 + n + end > size:
                raise ValueError(f"file ends at byte {size:,} but tensor {key!r} needs bytes up to {8 + n + end:,}")
            entries[key] = (dtype, shape, begin, end)
        return 8 + n, entries

    def get(self, key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Read one tensor. With a different `dtype`, the bytes go through one reused scratch buffer, so
        converting a checkpoint to bfloat16 never allocates (and fragments the heap with) float32 temporaries."""
        stored, shape, begin, end = self.entries[key]
        convert = dtype is not None and dtype != stored
        if convert:
            if self._scratch is None or self._scratch.numel() < end - begin:
                self._scratch = torch.empty(max(end - begin, 16 << 20), dtype=torch.uint8)
            raw = self._scratch[: end - begin]
        else:
            tensor = torch.empty(shape, dtype=stored)
            raw = tensor.reshape(-1).view(torch.uint8)
        if end > begin:
            self._file.seek(self.base + begin)
            if self._file.readinto(raw.numpy().data) != end - begin:
                raise ValueError(f"short read of {key!r}")
        if convert:
            return raw.view(stored).reshape(shape).to(dtype)
        return tensor

    def close(self) -> None:
        self._scratch = None
        self._file.close()


def read_safetensors(weights: Path, config: Path | None, backbones: Path | None = None) -> RawCheckpoint:
    if config is None or not config.is_file():
        raise CheckpointError(
            f"{weights} has no config.json beside it; DenseAV checkpoints on the Hub ship one (it says how the "
            "model was built). Put the repo's config.json in the same folder."
        )
    hparams = read_json(config, "checkpoint config")
    bb = _optional_json(backbones, "backbone sizes")
    try:
        reader = SafetensorsFile(weights)
    except (OSError, ValueError, KeyError, TypeError) as e:
        size = weights.stat().st_size if weights.exists() else 0
        raise CheckpointError(
            f"{weights} is not a readable safetensors file ({size:,} bytes; {e}). It is probably corrupt or a "
            "partial download: delete it and download it again."
        ) from e

    def read(key: str, dtype: torch.dtype | None) -> torch.Tensor:
        try:
            return reader.get(key, dtype)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{weights} is truncated or corrupt (reading {key!r}: {e}); download it again") from e

    shapes = {key: entry[1] for key, entry in reader.entries.items()}
    return RawCheckpoint(hparams, TensorSource(shapes, read, reader.close), bb, str(weights))


# Every file torch.save writes starts with one of these: a zip archive (torch >= 1.6) or a pickle (protocol >= 2).
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def _check_torch_file(path: Path) -> None:
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise CheckpointError(f"could not read {path}: {e}") from e
    if not head.startswith(_TORCH_MAGIC):
        raise CheckpointError(
            f"{path} is not a checkpoint (not a zip/pickle file): it starts with {head[:16]!r}. Pass a Lightning .ckpt "
            "saved with torch.save, or a folder with config.json + model.safetensors."
        )


def read_ckpt(path: Path, backbones: Path | None = None) -> RawCheckpoint:
    """A Lightning checkpoint, read with `weights_only=True`: tensors and plain values, never pickled code."""
    _check_torch_file(path)
    try:
        try:
            data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            data = torch.load(str(path), map_location="cpu", weights_only=True)  # old (non-zip) format
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path} holds Python objects beyond tensors and plain values; denseav refuses to unpickle code from "
            f"checkpoints. Re-save just its 'state_dict' and 'hyper_parameters' with torch.save. ({_first_line(e)})"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (corrupt or truncated?): {_first_line(e)}"
        ) from e
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), Mapping):
        raise CheckpointError(f"{path} has no 'state_dict'; expected a Lightning checkpoint of DenseAV")
    state = data["state_dict"]
    hparams = data.get("hyper_parameters") or {}
    if not isinstance(hparams, Mapping):
        raise CheckpointError(f"{path}: 'hyper_parameters' is not a dict")

    def read(key: str, dtype: torch.dtype | None) -> torch.Tensor:
        return state[key] if dtype is None else state[key].to(dtype)

    shapes = {k: tuple(v.shape) for k, v in state.items()}
    return RawCheckpoint(
        dict(hparams), TensorSource(shapes, read), _optional_json(backbones, "backbone sizes"), str(path)
    )


def _first_line(error: BaseException) -> str:
    """torch's loading errors run to hundreds of characters of advice about other situations: keep what failed
    (the first sentence of the first line)."""
    text = str(error).strip()
    return text.splitlines()[0].split(". ")[0] if text else type(error).__name__


def read_checkpoint(path: str | os.PathLike[str]) -> RawCheckpoint:
    """A local checkpoint: a folder with config.json + model.safetensors (+ backbones.json), a .safetensors file
    with config.json beside it, or a Lightning .ckpt (backbones.json or `<name>.backbones.json` beside it)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {p}")
    if p.is_dir():
        weights = p / "model.safetensors"
        if weights.is_file():
            return read_safetensors(weights, p / "config.json", p / BACKBONES_FILE)
        ckpts = sorted(p.glob("*.ckpt"))
        if len(ckpts) == 1:
            return read_checkpoint(ckpts[0])
        raise CheckpointError(
            f"{p} holds neither model.safetensors (with config.json) nor exactly one .ckpt file; "
            f"found: {sorted(x.name for x in p.iterdir())[:20]}"
        )
    sidecar = p.with_name(p.stem + "." + BACKBONES_FILE)
    backbones = sidecar if sidecar.is_file() else p.with_name(BACKBONES_FILE)
    if p.suffix == ".safetensors":
        return read_safetensors(p, p.with_name("config.json"), backbones)
    if p.suffix in (".ckpt", ".pt", ".pth", ".bin"):
        return read_ckpt(p, backbones)
    raise CheckpointError(f"{p}: unknown checkpoint format (expected a folder, .safetensors or .ckpt)")
