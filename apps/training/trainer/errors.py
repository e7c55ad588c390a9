"""Why a training fails, in words a business user can act on. The CLI prints ``str(error)`` alone."""

from __future__ import annotations


class TrainerError(Exception):
    """Base class: a training that cannot complete, with a plain message."""


class PayloadError(TrainerError):
    """The training payload does not describe a chain the local trainer can run."""


class TrainingDataError(TrainerError):
    """The sample cannot be trained on (e.g. one class only, an empty or non-numeric column)."""


class ParityError(TrainerError):
    """The exported ONNX model does not give the same scores as the scikit-learn model."""


class ExportError(TrainerError):
    """The fitted model could not be written as an ONNX model that follows the contract."""
