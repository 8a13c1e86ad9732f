"""Exceptions raised by the SLfM core (all are ``ValueError`` subclasses, so callers can catch one type)."""

from __future__ import annotations

from av_pose_ros.primitives.model_files import ModelFileError


class SlfmError(ValueError):
    """Base class of every SLfM error."""


class SlfmInputError(SlfmError):
    """An image or audio input that the estimators cannot use (shape, dtype, NaN, silence, sample rate)."""


class SlfmModelError(SlfmError, ModelFileError):
    """A model file that is missing, unreadable, corrupt, or holds another kind of model (also a
    ``ModelFileError``, as every model-file error of the package)."""
