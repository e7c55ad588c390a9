"""Writes of the training app: data sources (datasources.py) and training runs (runs.py)."""

from .datasources import datasource_create, datasource_schema_refresh, datasource_sync
from .runs import (
    training_run_cancel,
    training_run_create,
    training_run_fail,
    training_run_finish,
    training_run_log,
    training_run_mark_cancelled,
    training_run_params_for_retry,
    training_run_progress,
    training_run_retry,
    training_run_start,
    training_run_succeed,
    training_runs_reap,
)

__all__ = [
    "datasource_create",
    "datasource_schema_refresh",
    "datasource_sync",
    "training_run_cancel",
    "training_run_create",
    "training_run_fail",
    "training_run_finish",
    "training_run_log",
    "training_run_mark_cancelled",
    "training_run_params_for_retry",
    "training_run_progress",
    "training_run_retry",
    "training_run_start",
    "training_run_succeed",
    "training_runs_reap",
]
