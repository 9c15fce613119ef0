"""denseav: which pixels a sound or a spoken word refers to (DenseAV, Hamilton et al., CVPR 2024).

>>> from denseav import ground
>>> g = ground("dog.jpg", "bark.wav")      # two-head "sound-language" model by default
>>> g.heatmaps.shape                        # [heads, T, h, w]
>>> g.head_names                            # ("language", "sound")
"""

from __future__ import annotations

from .api import EncodedAudio, EncodedImage, encode_audio, encode_image, get_model, ground, similarity
from .build import build_denseav, load
from .checkpoint import checkpoint_filter_fn, config_from_original
from .errors import CheckpointError, DenseAVError, InputError, ModelNotFoundError
from .modeling import DenseAV, DenseAVConfig
from .pretrained import DEFAULT_MODEL, list_models
from .result import Grounding
from .video import VideoGrounding, ground_video

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "CheckpointError",
    "DenseAV",
    "DenseAVConfig",
    "DenseAVError",
    "EncodedAudio",
    "EncodedImage",
    "Grounding",
    "InputError",
    "ModelNotFoundError",
    "VideoGrounding",
    "build_denseav",
    "checkpoint_filter_fn",
    "config_from_original",
    "encode_audio",
    "encode_image",
    "get_model",
    "ground",
    "ground_video",
    "list_models",
    "load",
    "similarity",
]

# The corpus (feature stores, score_matrix, search) needs pyarrow: imported on first use, so `import denseav`
# works without it.
_CORPUS_NAMES = ("FeatureStore", "index", "score_matrix")


def __getattr__(name: str) -> object:
    if name in _CORPUS_NAMES or name == "corpus":
        import importlib

        corpus = importlib.import_module(".corpus", __name__)
        return corpus if name == "corpus" else getattr(corpus, name)
    raise AttributeError(f"module 'denseav' has no attribute {name!r}")
