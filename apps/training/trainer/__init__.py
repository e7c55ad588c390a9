"""Mlab's trainer: a training payload and a sample in, a verified ONNX model and a report out.

It runs inside an RQ worker for the local engine and as ``python -m apps.training.trainer`` in a PAI job, so
both engines produce the same artifact. It never imports Django.
"""

from .errors import ExportError, ParityError, PayloadError, TrainerError, TrainingDataError
from .sample import SampleData, load_sample, save_sample
from .training import STAGES, TrainResult, score_raw, train

__all__ = [
    "STAGES",
    "ExportError",
    "ParityError",
    "PayloadError",
    "SampleData",
    "TrainResult",
    "TrainerError",
    "TrainingDataError",
    "load_sample",
    "save_sample",
    "score_raw",
    "train",
]
