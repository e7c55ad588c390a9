"""Mlab's trainer: a training payload and a sample in, a verified ONNX model and a report out.

It runs inside an RQ worker for the local engine and as ``python -m apps.training.trainer`` in a PAI job, so
both engines produce the same artifact. It never imports Django.
"""

import os

# OpenMP threads (LightGBM's, scikit-learn's) spin while they wait, by default. Where cores are shared (a
# worker beside other workers and web processes), spinning threads take the cores from the threads at work:
# a 60-tree LightGBM fit on two oversubscribed cores took 8.6 s with two spinning threads, 2.2 s with one,
# and 2.2 s with two that wait passively. OpenMP reads this when it loads, hence before the imports below.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
