"""Exceptions raised by denseav. Every message says what was wrong and what to do about it.

Each class also subclasses the builtin a caller would naturally catch (ValueError, TypeError,
FileNotFoundError, LookupError, OSError), so `except ValueError` keeps working next to `except DenseAVError`.
"""

from __future__ import annotations


class DenseAVError(Exception):
    """Base class of every error denseav raises on purpose."""


class InputError(DenseAVError, ValueError):
    """An image, audio clip, video, manifest or option value that cannot be used as given."""


class InputTypeError(InputError, TypeError):
    """An argument of the wrong type (a number where a model or a path belongs, ...)."""


class InputFileNotFoundError(InputError, FileNotFoundError):
    """An input path (image, audio, video, manifest, checkpoint) that does not exist."""


class OutputError(DenseAVError, OSError):
    """An output path that cannot be written (missing folder, read-only place, wrong suffix, same as an input)."""


class CheckpointError(DenseAVError):
    """A checkpoint that cannot be read, or whose contents do not fit the model it describes."""


class ModelNotFoundError(DenseAVError, LookupError):
    """An unknown model name, or weights that are neither local nor downloadable right now."""
