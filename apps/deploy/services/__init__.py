"""Writes of the deploy app, one function per state change. Import them from here."""

from .aggregation import AggregationRun, events_aggregate, events_aggregation_request, events_aggregation_sweep
from .deployments import deployment_create, deployment_rollback
from .events import BatchInvalid, BatchTooLarge, events_accept
from .guardrail import guardrail_check
from .predict import (
    Prediction,
    PredictionRefused,
    SceneNotPublished,
    VersionCorrupt,
    VersionNotScorable,
    scene_predict,
)
from .publication import PublishResult, publication_enqueue, publication_inline, publication_sweep, scene_publish
from .scenes import (
    RESULTS_SETTINGS,
    client_token_create,
    client_token_digest,
    client_token_revoke,
    scene_create,
    scene_update,
)
from .versions import model_version_register, model_version_register_or_get, scene_run_register

__all__ = [
    "RESULTS_SETTINGS",
    "AggregationRun",
    "BatchInvalid",
    "BatchTooLarge",
    "events_accept",
    "events_aggregate",
    "events_aggregation_request",
    "events_aggregation_sweep",
    "guardrail_check",
    "Prediction",
    "PredictionRefused",
    "SceneNotPublished",
    "VersionCorrupt",
    "VersionNotScorable",
    "PublishResult",
    "client_token_create",
    "client_token_digest",
    "client_token_revoke",
    "deployment_create",
    "deployment_rollback",
    "model_version_register",
    "model_version_register_or_get",
    "publication_enqueue",
    "publication_inline",
    "publication_sweep",
    "scene_create",
    "scene_predict",
    "scene_publish",
    "scene_run_register",
    "scene_update",
]
