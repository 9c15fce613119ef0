"""Exceptions raised by denseav. Every message says what was wrong and what to do about it."""

from __future__ import annotations


class DenseAVError(Exception):
    """Base class of every error denseav raises on purpose."""


class InputError(DenseAVError, ValueError):
    """An image, audio clip or video that cannot be used as given."""


class CheckpointError(DenseAVError):
    """A checkpoint that cannot be read, or whose contents do not fit the model it describes."""


class ModelNotFoundError(DenseAVError, LookupError):
    """An unknown model name, or weights that are neither local nor downloadable right now."""
