"""Reading a run's sample: the SQL recorded on the run, executed on its data source."""

from __future__ import annotations

from apps.training import trainer
from apps.training.datasources import SampleColumns, SampleData, engine_for
from apps.training.models import TrainingRun


def sample_columns(run: TrainingRun) -> SampleColumns:
    described = run.payload["sample"]
    return SampleColumns(
        numeric=tuple(described["numeric"]),
        categorical=tuple(described["categorical"]),
        label=described["label"],
        task=described["label_kind"],
    )


def _sample_params(run: TrainingRun) -> dict:
    node = run.payload["sample"]["node"]
    return next(n["params"] for n in run.payload["nodes"] if n["key"] == node)


def fetch_run_sample(run: TrainingRun) -> SampleData:
    """Execute exactly the SQL the run shows (generated at launch from the allow-list), streamed in chunks.
    Raises a DataSourceError with a plain message."""
    params = _sample_params(run)
    return engine_for(run.datasource).fetch(
        run.sql, columns=sample_columns(run), chunk_rows=params["chunk_rows"], timeout=params["timeout_seconds"]
    )


def trainer_sample(sample: SampleData) -> trainer.SampleData:
    """The trainer's view of a fetched sample: the same arrays, no copy."""
    return trainer.SampleData(columns={**sample.numeric, **sample.categorical}, label=sample.label)
