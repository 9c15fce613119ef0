"""denseav: which pixels a sound or a spoken word refers to (DenseAV, Hamilton et al., CVPR 2024).

>>> from denseav import ground
>>> g = ground("dog.jpg", "bark.wav")      # two-head "sound-language" model by default
>>> g.heatmaps.shape                        # [heads, T, h, w]
>>> g.head_names                            # ("language", "sound")

The names below are imported on first use, so `import denseav` (and the command line's --help) does not pay
for importing torch until something needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "EncodedAudio": "api",
    "EncodedImage": "api",
    "encode_audio": "api",
    "encode_image": "api",
    "get_model": "api",
    "ground": "api",
    "similarity": "api",
    "build_denseav": "build",
    "load": "build",
    "checkpoint_filter_fn": "checkpoint",
    "config_from_original": "checkpoint",
    "CheckpointError": "errors",
    "DenseAVError": "errors",
    "InputError": "errors",
    "InputFileNotFoundError": "errors",
    "InputTypeError": "errors",
    "ModelNotFoundError": "errors",
    "OutputError": "errors",
    "DenseAV": "modeling",
    "DenseAVConfig": "modeling",
    "DEFAULT_MODEL": "pretrained",
    "list_models": "pretrained",
    "Grounding": "result",
    "VideoGrounding": "video",
    "ground_video": "video",
    # The corpus (feature stores; needs pyarrow).
    "FeatureStore": "corpus",
    "index": "corpus",
    "score_matrix": "corpus",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from .api import EncodedAudio, EncodedImage, encode_audio, encode_image, get_model, ground, similarity
    from .build import build_denseav, load
    from .checkpoint import checkpoint_filter_fn, config_from_original
    from .corpus import FeatureStore, index, score_matrix
    from .errors import (
        CheckpointError,
        DenseAVError,
        InputError,
        InputFileNotFoundError,
        InputTypeError,
        ModelNotFoundError,
        OutputError,
    )
    from .modeling import DenseAV, DenseAVConfig
    from .pretrained import DEFAULT_MODEL, list_models
    from .result import Grounding
    from .video import VideoGrounding, ground_video
