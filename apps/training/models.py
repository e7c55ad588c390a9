"""Data sources and training runs."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from .datasources.policy import datasource_problems


class DataSource(models.Model):
    """Where samples come from. Connection options are stored; secrets are not: ``password_env`` names the
    environment variable (``MLAB_DS_…``) that holds the password, read only when connecting.

    ``clean`` holds every rule on a source's settings (options of the kind's schema, no secret at any depth,
    files and hosts the server's settings allow, an MLAB_DS_ password variable): the admin, the services and
    the commands all save through ``full_clean``. The back ends check where a source points again when they
    open it."""

    class Kind(models.TextChoices):
        DUCKDB = "duckdb", "DuckDB"
        MYSQL = "mysql", "MySQL / MariaDB"
        MAXCOMPUTE = "maxcompute", "MaxCompute (PAI; generation only here)"
        HIVE = "hive", "Hive (PAI; generation only here)"

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    description = models.TextField(blank=True)
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text='Connection options without secrets, e.g. {"path": …} for DuckDB or '
        '{"host", "port", "database", "user"} for MySQL.',
    )
    password_env = models.CharField(
        max_length=100, blank=True, help_text="Name of the environment variable holding the password, if any."
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        problems = datasource_problems(kind=self.kind, options=self.options, password_env=self.password_env)
        if problems:
            raise ValidationError(problems)


class TrainingRun(models.Model):
    """One training of a template's chain on a data source, by the local engine or PAI."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Engine(models.TextChoices):
        LOCAL = "local", "Local (scikit-learn → ONNX)"
        PAI = "pai", "PAI training service"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    template = models.ForeignKey("algo_templates.AlgorithmTemplate", on_delete=models.PROTECT, related_name="runs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="training_runs")
    name = models.CharField(
        max_length=120, blank=True, help_text="A name to find the run by, e.g. “gbdt, 80 trees, October data”."
    )
    note = models.TextField(blank=True, max_length=4000, help_text="What was tried, and what came of it.")
    engine = models.CharField(max_length=8, choices=Engine.choices, default=Engine.LOCAL)
    datasource = models.ForeignKey(DataSource, on_delete=models.PROTECT, related_name="runs")
    params = models.JSONField(help_text="Validated parameters per node, secrets masked.")
    payload = models.JSONField(help_text="What the engine receives: UI-only and secret parameters excluded.")
    sql = models.TextField(blank=True, help_text="The generated sample SQL, in the data source's dialect.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    stage = models.CharField(max_length=64, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    metrics = models.JSONField(null=True, blank=True, help_text="Headline metrics of the held-out split.")
    report = models.JSONField(
        null=True, blank=True, help_text="The trainer's report: ROC points, feature importance, parity, timings…"
    )
    error = models.TextField(blank=True, help_text="Why the run failed, in plain words.")
    external_job_id = models.CharField(max_length=128, blank=True, help_text="The PAI training job id.")
    external_state = models.JSONField(
        default=dict,
        blank=True,
        help_text="What PAI says of the job: its OSS input and output, status, reason, progress, console URL.",
    )
    transfer_fence = models.BigIntegerField(
        default=0, help_text="Fencing token of the last transfer of a PAI job's model into Mlab (only grows)."
    )
    rq_job_id = models.CharField(max_length=64, blank=True)
    cancel_requested = models.BooleanField(default=False)
    requeues = models.PositiveSmallIntegerField(
        default=0, help_text="Times the reaper queued the run again after its job was lost or waited too long."
    )
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    artifact = models.ForeignKey(
        "artifacts.Artifact", null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"Run {self.pk}" + (f" · {self.name}" if self.name else "")

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class TrainingRunEvent(models.Model):
    """The run's log: stage changes, progress notes, warnings and errors, in order."""

    class Level(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    stage = models.CharField(max_length=64, blank=True)
    message = models.TextField()
    data = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.run_id} {self.level}: {self.message[:60]}"
