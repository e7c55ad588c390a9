"""Mlab's client SDK: follow a scene's deployments, hot-swap models, route units, predict.

>>> from mlab_client import ModelClient
>>> with ModelClient("http://mlab:8000", scene="seller-union-ctr", token="…", snapshot_dir="/var/lib/app/mlab") as client:
...     p = client.predict({"age": 31, "price": 12.5}, unit_id="user-42")  # p.version, p.score, p.label
...     client.record_outcome("user-42", value=1, metric="click")  # later, when the user clicks

The wire contract shared with the server is in ``mlab_client.contract``; routing in ``mlab_client.routing``.
"""

import logging

from .client import Change, Counters, ModelClient, Prediction
from .errors import (
    ArtifactError,
    ConfigError,
    ConfigTooLarge,
    FeatureError,
    MlabClientError,
    NotReadyError,
    RefreshError,
)
from .events import EventCounters
from .model import Feature, Model
from .routing import Router, allocate, bucket_of

# A library logs, the application decides where it goes (failed refreshes are logged as warnings).
logging.getLogger("mlab_client").addHandler(logging.NullHandler())

__all__ = [
    "ArtifactError",
    "Change",
    "ConfigError",
    "ConfigTooLarge",
    "Counters",
    "EventCounters",
    "Feature",
    "FeatureError",
    "MlabClientError",
    "Model",
    "ModelClient",
    "NotReadyError",
    "Prediction",
    "RefreshError",
    "Router",
    "allocate",
    "bucket_of",
]
