"""Scenes, model versions, deployments and the config table clients poll."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from mlab_client.contract import METRIC_PATTERN

DAY_SECONDS = 86_400


class Scene(models.Model):
    """A business scenario clients ask for by name, e.g. ``seller-union-ctr``."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    owners = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="scenes")
    salt = models.CharField(max_length=32, help_text="Mixed into unit bucketing; fixed at creation.")
    last_version = models.PositiveIntegerField(default=0, help_text="Versions are numbered from this counter.")
    last_revision = models.PositiveIntegerField(default=0, help_text="Deployments are numbered from this counter.")
    attribution_window = models.PositiveIntegerField(
        default=DAY_SECONDS,
        validators=[MinValueValidator(60), MaxValueValidator(90 * DAY_SECONDS)],
        help_text="Seconds after a unit's first exposure in a revision during which its outcomes count for the "
        "version it was served (default 86400: 24 hours).",
    )
    guardrail_metric = models.CharField(
        max_length=64,
        blank=True,
        validators=[RegexValidator(f"^{METRIC_PATTERN}$", "A metric name: letters, digits, '_', '.', '-'.")],
        help_text="Outcome metric watched by the guardrail (empty: no guardrail). When a challenger is worse than "
        "control on it with p < α, after at least the minimum units per version, Mlab rolls back.",
    )
    guardrail_alpha = models.FloatField(
        default=0.01,
        validators=[MinValueValidator(1e-9), MaxValueValidator(0.5)],
        help_text="The guardrail's significance level α (its test runs after every aggregation: keep it small).",
    )
    guardrail_min_units = models.PositiveIntegerField(
        default=1000,
        validators=[MinValueValidator(1)],
        help_text="The guardrail judges only once control and the challenger have each at least this many units.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    scene = models.ForeignKey(Scene, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    run = models.ForeignKey("training.TrainingRun", on_delete=models.PROTECT, related_name="model_versions")
    artifact = models.ForeignKey("artifacts.Artifact", on_delete=models.PROTECT, related_name="versions")
    format = models.CharField(max_length=16, default="onnx")
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    metrics = models.JSONField(default=dict, blank=True)
    signature = models.JSONField(default=list, blank=True, help_text="[{name, type, categories?}]")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scene", "version"]
        constraints = [
            models.UniqueConstraint(fields=["scene", "version"], name="model_version_number_unique"),
            models.UniqueConstraint(fields=["scene", "run"], name="model_version_run_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.scene_id} v{self.version}"


class Deployment(models.Model):
    """An immutable change of a scene's traffic: splits (version → integer weight summing to 100) and
    overrides (unit id → version). Rollback creates a new deployment copying an earlier revision."""

    scene = models.ForeignKey(Scene, on_delete=models.PROTECT, related_name="deployments")
    revision = models.PositiveIntegerField()
    splits = models.JSONField(help_text='[{"version": 1, "weight": 90}, …]')
    overrides = models.JSONField(default=dict, blank=True, help_text='{"unit id": version}')
    comment = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rollback_of = models.PositiveIntegerField(null=True, blank=True, help_text="The revision this one copies.")
    control_version = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The version challengers are compared with in the results; empty: the version with the "
        "largest weight (the oldest of those tied).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scene", "-revision"]
        constraints = [models.UniqueConstraint(fields=["scene", "revision"], name="deployment_revision_unique")]

    def __str__(self) -> str:
        return f"{self.scene_id} r{self.revision}"

    @property
    def control(self) -> int | None:
        """The control of this revision's A/B test: ``control_version`` if chosen, else the version with the
        largest weight, the oldest (lowest number) among those tied."""
        if self.control_version is not None:
            return self.control_version
        weighted = [(row["weight"], -row["version"]) for row in self.splits if row["weight"] > 0]
        return -max(weighted)[1] if weighted else None


class ConfigEntry(models.Model):
    """The polled config table: one row per scene, the last published revision. Written only by a
    conditional update that refuses a stale fencing token, so ``revision`` and ``fence`` only grow."""

    scene = models.OneToOneField(Scene, on_delete=models.CASCADE, related_name="config")
    revision = models.PositiveIntegerField(default=0)
    content = models.JSONField(default=dict, blank=True, help_text="Empty until the first publication.")
    etag = models.CharField(max_length=80, blank=True)
    fence = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.scene_id} @ r{self.revision}"


class ConfigRevision(models.Model):
    """Every published revision of every scene's config, kept for history, diff and rollback."""

    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="config_history")
    revision = models.PositiveIntegerField()
    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="+")
    content = models.JSONField()
    etag = models.CharField(max_length=80)
    fence = models.BigIntegerField()
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scene", "-revision"]
        constraints = [models.UniqueConstraint(fields=["scene", "revision"], name="config_revision_unique")]

    def __str__(self) -> str:
        return f"{self.scene_id} r{self.revision} (published)"


class ClientToken(models.Model):
    """A read-only token for client processes, scoped to scenes: config and artifacts of those scenes only.

    Only the sha256 of the token is stored; the token itself is shown once, when it is created."""

    key = models.CharField(max_length=64, unique=True, help_text="sha256 of the token (the token is never stored).")
    hint = models.CharField(max_length=16, blank=True, help_text="The token's first characters, to recognise it.")
    name = models.CharField(max_length=100)
    scenes = models.ManyToManyField(Scene, related_name="client_tokens")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


# -- A/B results: events in, aggregated rows out ----------------------------------------------------------------
#
# The aggregation (services/aggregation.py) reads each scene's Redis stream of event batches and writes, in one
# transaction per chunk of batches: the batches (deduplicated by id), each unit's exposure and outcomes in a
# revision (what attribution needs), and the daily aggregates the results are computed from. Rows are keyed by
# a 64-bit hash of the unit id (``unit``), never the id itself: smaller indexes, and no personal ids stored.


class EventStreamState(models.Model):
    """Where a scene's event aggregation stands: totals, and the last stream entry committed. Every aggregation
    transaction of the scene first locks this row, so two aggregators of one scene never interleave."""

    scene = models.OneToOneField(Scene, on_delete=models.CASCADE, related_name="event_state")
    batches = models.BigIntegerField(default=0, help_text="Batches counted (each id once).")
    duplicate_batches = models.BigIntegerField(default=0, help_text="Batches seen again and not counted again.")
    exposures = models.BigIntegerField(default=0)
    outcomes = models.BigIntegerField(default=0)
    invalid_events = models.BigIntegerField(default=0, help_text="Events in the stream that broke the contract.")
    lost_entries = models.BigIntegerField(default=0, help_text="Entries trimmed from the stream before they were read.")
    last_entry_id = models.CharField(max_length=40, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.scene_id} events"


class EventBatch(models.Model):
    """A batch of events counted: its id (unique per scene, so a batch sent or added twice counts once) and the
    stream entry it came in. Written in the same transaction as the rows the batch changed."""

    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="+")
    batch_id = models.CharField(max_length=64)
    entry_id = models.CharField(max_length=40, help_text="The Redis stream entry (its id: milliseconds-sequence).")
    events = models.PositiveIntegerField()
    aggregated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scene", "batch_id"], name="event_batch_unique")]
        indexes = [models.Index(fields=["aggregated_at"], name="event_batch_aggregated_at")]

    def __str__(self) -> str:
        return f"{self.scene_id} batch {self.batch_id}"


class UnitExposure(models.Model):
    """A unit in a revision's experiment: the version it was served and its first exposure (time, score), from
    which its attribution window runs. ``pinned``: an override of the revision chose its version."""

    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="+")
    revision = models.PositiveIntegerField()
    unit = models.BigIntegerField(help_text="64-bit hash of the unit id.")
    version = models.PositiveIntegerField()
    first_ts = models.FloatField(help_text="Seconds since the epoch of the unit's first exposure.")
    day = models.DateField(help_text="The UTC day of the first exposure (the unit's cohort).")
    score = models.FloatField(null=True, blank=True)
    pinned = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scene", "revision", "unit"], name="unit_exposure_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.scene_id} r{self.revision} unit {self.unit}: v{self.version}"


class UnitOutcome(models.Model):
    """What a unit's attributed outcomes of one metric add up to (for means and their variance)."""

    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="+")
    revision = models.PositiveIntegerField()
    unit = models.BigIntegerField()
    metric = models.CharField(max_length=64)
    count = models.PositiveIntegerField(default=0)
    total = models.FloatField(default=0.0)
    converted = models.BooleanField(default=False, help_text="An attributed outcome had a value above 0.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scene", "revision", "unit", "metric"], name="unit_outcome_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.scene_id} r{self.revision} unit {self.unit} {self.metric}: {self.total:g}"


class PendingOutcome(models.Model):
    """An outcome whose unit has no exposure yet (it may come from another process, later): counted apart as
    ``no_exposure`` meanwhile, attributed if the exposure arrives, dropped a window and a day after it arrived."""

    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="+")
    revision = models.PositiveIntegerField()
    unit = models.BigIntegerField()
    metric = models.CharField(max_length=64)
    value = models.FloatField()
    ts = models.FloatField()
    parked_at = models.FloatField(help_text="Seconds since the epoch when it was parked (its arrival).")

    class Meta:
        indexes = [
            models.Index(fields=["scene", "revision", "unit"], name="pending_outcome_unit"),
            models.Index(fields=["scene", "parked_at"], name="pending_outcome_parked_at"),
        ]

    def __str__(self) -> str:
        return f"{self.scene_id} r{self.revision} unit {self.unit} {self.metric} (no exposure yet)"


class ExposureDay(models.Model):
    """Per (scene, revision, version, UTC day): exposures received that day, units first exposed that day
    (exact; ``pinned_units`` of them by an override), their score histogram (``score_bins``: int64 counts in
    ``stats.DEFAULT_BINS`` bins), and a HyperLogLog of the units exposed that day (``sketch``: the Redis HLL
    string, merged across days for ranges)."""

    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="+")
    revision = models.PositiveIntegerField()
    version = models.PositiveIntegerField()
    day = models.DateField()
    exposures = models.BigIntegerField(default=0)
    units = models.BigIntegerField(default=0)
    pinned_units = models.BigIntegerField(default=0)
    score_bins = models.BinaryField(default=b"")
    sketch = models.BinaryField(default=b"")
    active_units = models.BigIntegerField(default=0, help_text="The sketch's estimate of the units exposed that day.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scene", "revision", "version", "day"], name="exposure_day_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.scene_id} r{self.revision} v{self.version} {self.day}"


class VersionSketch(models.Model):
    """The HyperLogLog of every unit exposed to a version in a revision (the union of its days, kept current as
    the days are, so that the results need not merge them), with its estimate."""

    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="+")
    revision = models.PositiveIntegerField()
    version = models.PositiveIntegerField()
    sketch = models.BinaryField(default=b"")
    active_units = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scene", "revision", "version"], name="version_sketch_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.scene_id} r{self.revision} v{self.version} sketch"


class OutcomeDay(models.Model):
    """Per (scene, revision, version, metric, cohort day: the day the units were first exposed): attributed
    outcomes, units converted (an outcome above 0), the sum and the sum of squares of each unit's total, the
    score histogram of the converted units, and how many outcomes broke the binary shape (a value other than
    0 or 1, or a unit totalling more than 1)."""

    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="+")
    revision = models.PositiveIntegerField()
    version = models.PositiveIntegerField()
    metric = models.CharField(max_length=64)
    day = models.DateField()
    outcomes = models.BigIntegerField(default=0)
    converted = models.BigIntegerField(default=0)
    value_sum = models.FloatField(default=0.0)
    value_sumsq = models.FloatField(default=0.0)
    not_binary = models.BigIntegerField(default=0)
    positive_bins = models.BinaryField(default=b"")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scene", "revision", "version", "metric", "day"], name="outcome_day_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scene_id} r{self.revision} v{self.version} {self.metric} {self.day}"


class UnattributedOutcomeDay(models.Model):
    """Outcomes counted apart, never guessed into a version: per (scene, revision, metric, UTC day of the
    outcome, reason). ``revision`` 0: the client had no config when it recorded the outcome."""

    class Reason(models.TextChoices):
        NO_EXPOSURE = "no_exposure", "no exposure of the unit in the revision"
        BEFORE_EXPOSURE = "before_exposure", "before the unit's first exposure"
        LATE = "late", "after the attribution window"
        NO_REVISION = "no_revision", "recorded before the client had a config"

    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="+")
    revision = models.PositiveIntegerField()
    metric = models.CharField(max_length=64)
    day = models.DateField()
    reason = models.CharField(max_length=16, choices=Reason.choices)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scene", "revision", "metric", "day", "reason"], name="unattributed_outcome_day_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scene_id} r{self.revision} {self.metric} {self.day} {self.reason}"


class GuardrailTrip(models.Model):
    """The guardrail stopped a revision: which challenger, on which figures, and the rollback it published.
    One per (scene, revision): a revision is rolled back by the guardrail at most once."""

    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="guardrail_trips")
    revision = models.PositiveIntegerField(help_text="The revision the guardrail stopped.")
    rollback = models.ForeignKey(Deployment, null=True, on_delete=models.SET_NULL, related_name="+")
    metric = models.CharField(max_length=64)
    version = models.PositiveIntegerField(help_text="The challenger found worse.")
    control_version = models.PositiveIntegerField()
    p_value = models.FloatField()
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scene", "-revision"]
        constraints = [models.UniqueConstraint(fields=["scene", "revision"], name="guardrail_trip_unique")]

    def __str__(self) -> str:
        return f"{self.scene_id} r{self.revision} stopped by the guardrail"
