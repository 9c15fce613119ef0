"""Reading the original DenseAV checkpoints: the one package that knows the original's files, options and key names.

* `readers`: opening a Hugging Face `model.safetensors` + `config.json` pair or a Lightning `.ckpt` (tensors are
  read lazily, one at a time, converted to the target dtype while reading where they can be).
* `config`: the original's constructor arguments (config.json / ckpt `hyper_parameters`) -> `DenseAVConfig`,
  refusing options no published checkpoint uses.
* `keys`: the original's state dict -> this package's layout (LoRA merged, weight norm folded, q/k/v fused,
  HuBERT's and DINO's layers onto the shared transformer block, training-only tensors dropped).
"""

from __future__ import annotations

from .config import config_from_original
from .keys import KeyConverter, checkpoint_filter_fn
from .readers import RawCheckpoint, TensorSource, read_checkpoint, read_safetensors

__all__ = [
    "KeyConverter",
    "RawCheckpoint",
    "TensorSource",
    "checkpoint_filter_fn",
    "config_from_original",
    "read_checkpoint",
    "read_safetensors",
]
