"""Reading a run's sample: the SQL recorded on the run, executed on its data source."""

from __future__ import annotations

from apps.training import trainer
from apps.training.datasources import SampleColumns, SampleData, backend_for
from apps.training.models import TrainingRun
from apps.training.run_secrets import run_secrets_forget, run_secrets_get


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
    """Execute exactly the SQL the run shows (generated at launch from the allow-list), streamed in chunks,
    in a session holding the run's access token if it has one (then forgotten). Raises a DataSourceError."""
    params = _sample_params(run)
    node = run.payload["sample"]["node"]
    token = run_secrets_get(run.pk).get(node, {}).get("access_token")
    sample = backend_for(run.datasource).fetch(
        run.sql,
        columns=sample_columns(run),
        chunk_rows=params["chunk_rows"],
        timeout=params["timeout_seconds"],
        access_token=token,
    )
    run_secrets_forget(run.pk)
    return sample


def trainer_sample(sample: SampleData) -> trainer.SampleData:
    """The trainer's view of a fetched sample: the same arrays, no copy."""
    return trainer.SampleData(columns={**sample.numeric, **sample.categorical}, label=sample.label)
