"""The demo scene: two trained versions, a published baseline and a 90/10 A/B deployment, a client token; and a
third version, deliberately bad, that the demo loop deploys as a challenger for the guardrail to roll back.

Idempotent: a rerun reuses the scene, its versions (a template whose version exists is never trained again)
and its deployments. Training runs in this process
with the local engine, and publication is synchronous, so the config is there when ``demo_scene_sync`` returns.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import django_rq
from django.core.exceptions import ValidationError
from redis.exceptions import RedisError

from apps.deploy.models import ClientToken, ConfigEntry, Deployment, ModelVersion, Scene
from apps.deploy.services import (
    client_token_create,
    client_token_revoke,
    deployment_create,
    deployment_rollback,
    model_version_register,
    publication_inline,
    scene_create,
    scene_publish,
    scene_update,
)
from apps.templates.builtins import BUILTIN_TEMPLATES
from apps.templates.models import AlgorithmTemplate
from apps.templates.services import template_create
from apps.training.models import DataSource, TrainingRun
from apps.training.services import training_run_create

logger = logging.getLogger(__name__)

DEMO_SCENE = "seller-union-ctr"
DEMO_TEMPLATES = ("binary-lr", "binary-gbdt")  # the baseline, then the challenger
CHALLENGER_WEIGHT = 10
# The deliberately bad version: logistic regression trained with the positive class inverted (clicked = 0), so
# it ranks the likeliest clicks last. A real template and a real run, owned by the demo user (not published).
BAD_TEMPLATE = "demo-inverted-lr"
# What the guardrail of the demo scene watches: the demo application shows, of a page of candidates, the one the
# model scores highest, and records whether it was clicked.
GUARDRAIL_METRIC = "offer_click"
GUARDRAIL_ALPHA = 0.01
GUARDRAIL_MIN_UNITS = 300
DEMO_CLIENT_TOKEN = "demo-client"
TRAINING_TIMEOUT_SECONDS = 1800

Say = Callable[[str], object]


@dataclass(frozen=True)
class DemoScene:
    """What the demo scene holds: ``baseline`` and ``challenger`` are version numbers; ``trained`` the runs
    trained by this call (empty on a rerun)."""

    scene: Scene
    baseline: int
    challenger: int
    trained: tuple[int, ...]
    bad: int = 0  # the deliberately bad version (0: not set up)

    @property
    def baseline_splits(self) -> list[dict]:
        return [{"version": self.baseline, "weight": 100}]

    @property
    def bad_splits(self) -> list[dict]:
        return [{"version": self.baseline, "weight": 50}, {"version": self.bad, "weight": 50}]

    @property
    def ab_splits(self) -> list[dict]:
        return [
            {"version": self.baseline, "weight": 100 - CHALLENGER_WEIGHT},
            {"version": self.challenger, "weight": CHALLENGER_WEIGHT},
        ]

    def revision_with(self, splits: list[dict]) -> int | None:
        """The newest revision whose splits are ``splits`` (None when there is none)."""
        deployments = Deployment.objects.filter(scene=self.scene).order_by("-revision").only("revision", "splits")
        return next((d.revision for d in deployments if _same_splits(d.splits, splits)), None)

    def published_revision(self) -> int:
        return ConfigEntry.objects.get(scene=self.scene).revision


def _same_splits(a: list[dict], b: list[dict]) -> bool:
    weights = lambda splits: {row["version"]: row["weight"] for row in splits if row["weight"]}  # noqa: E731
    return weights(a) == weights(b)


def demo_scene_sync(*, user, datasource: DataSource, say: Say = logger.info) -> DemoScene:
    """Set up (or find) the demo scene owned by ``user``; see the module doc."""
    scene = Scene.objects.filter(name=DEMO_SCENE).first()
    if scene is None:
        scene = scene_create(name=DEMO_SCENE, description="Click-through of seller-union ads (the demo).", user=user)
    elif not scene.owners.filter(pk=user.pk).exists():
        scene = scene_update(scene=scene, description=scene.description, owners=[*scene.owners.all(), user])
    numbers, trained = [], []
    for slug in DEMO_TEMPLATES:
        version = ModelVersion.objects.filter(scene=scene, run__template__slug=slug).order_by("version").first()
        if version is None:
            run = _train(slug, datasource=datasource, user=user, say=say)
            trained.append(run.pk)
            version = model_version_register(run=run, scene=scene, user=user)
            say(f"Registered run {run.pk} ({slug}) as version {version.version} of {scene.name}.")
        numbers.append(version.version)
    bad = ModelVersion.objects.filter(scene=scene, run__template__slug=BAD_TEMPLATE).order_by("version").first()
    if bad is None:
        run = _train(demo_bad_template_sync(user=user).slug, datasource=datasource, user=user, say=say)
        trained.append(run.pk)
        bad = model_version_register(run=run, scene=scene, user=user)
        say(f"Registered run {run.pk} ({BAD_TEMPLATE}, deliberately bad) as version {bad.version} of {scene.name}.")
    if not scene.guardrail_metric:
        scene = scene_update(
            scene=scene,
            guardrail_metric=GUARDRAIL_METRIC,
            guardrail_alpha=GUARDRAIL_ALPHA,
            guardrail_min_units=GUARDRAIL_MIN_UNITS,
        )
    demo = DemoScene(scene=scene, baseline=numbers[0], challenger=numbers[1], trained=tuple(trained), bad=bad.version)
    if not Deployment.objects.filter(scene=scene).exists():
        for splits, comment in (
            (demo.baseline_splits, "Demo baseline: logistic regression serves everyone"),
            (demo.ab_splits, f"Demo A/B: {CHALLENGER_WEIGHT}% of units to gradient-boosted trees"),
        ):
            with publication_inline():  # published here, now: no job is queued for a worker to find done
                deployment = deployment_create(scene=scene, splits=splits, comment=comment, user=user)
            scene_publish(scene_id=scene.pk)  # (a no-op once published; here for a caller's open transaction)
            say(f"Published revision {deployment.revision}: {comment}.")
    else:
        scene_publish(scene_id=scene.pk)  # a deployment left unpublished (no worker ran) is published now
    return demo


def demo_bad_template_sync(*, user) -> AlgorithmTemplate:
    """The template of the deliberately bad version: ``binary-lr`` whose sample takes ``clicked = 0`` as the
    positive class (owned by ``user``, not published)."""
    template = AlgorithmTemplate.objects.filter(slug=BAD_TEMPLATE).first()
    if template is not None:
        return template
    nodes = copy.deepcopy(next(t["nodes"] for t in BUILTIN_TEMPLATES if t["slug"] == "binary-lr"))
    for node in nodes:
        if node["type"] == "sample.sql":
            node["overrides"] = {**node.get("overrides", {}), "positive_value": "0"}
    return template_create(
        slug=BAD_TEMPLATE,
        name="Demo · deliberately bad (inverted labels)",
        description="Logistic regression trained to predict that an impression is NOT clicked, then served as a "
        "click model: it ranks the likeliest clicks last. The demo deploys it so that the guardrail rolls it back.",
        task_type="binary",
        nodes=nodes,
        owner=user,
    )


def demo_publish(demo: DemoScene, *, splits: list[dict], user, comment: str) -> int:
    """Make ``splits`` the published traffic of the demo scene, synchronously: a rollback to the newest
    revision that had them (the history says so), else a new deployment. Returns the published revision."""
    earlier = demo.revision_with(splits)
    with publication_inline():
        if earlier is None:
            deployment = deployment_create(scene=demo.scene, splits=splits, comment=comment, user=user)
        else:
            deployment = deployment_rollback(scene=demo.scene, revision=earlier, user=user, comment=comment)
    scene_publish(scene_id=demo.scene.pk)
    return deployment.revision


def demo_client_token(scene: Scene, *, user, name: str = DEMO_CLIENT_TOKEN) -> str:
    """A new client token for the demo scene; earlier tokens of the same name are revoked (a token is shown
    only once, so a rerun cannot show the old one again)."""
    for old in ClientToken.objects.filter(name=name, scenes=scene):
        client_token_revoke(token=old)
    _, key = client_token_create(name=name, scenes=[scene], user=user)
    return key


def _train(slug: str, *, datasource: DataSource, user, say: Say) -> TrainingRun:
    """Train the template with its presets on the local engine, in this process."""
    template = AlgorithmTemplate.objects.get(slug=slug)
    run = training_run_create(
        template=template, params={}, engine=TrainingRun.Engine.LOCAL, datasource=datasource, user=user
    )
    _unqueue(run)
    say(f"Training {slug} on {datasource.name!r} (run {run.pk}, local engine, in this process)…")
    started = time.monotonic()
    # Imported here: it loads the trainer (scikit-learn, LightGBM, onnx: about 2.5 s), which the demo loop's
    # process (`mlab_demo --loop`, importing this module for the scene's names) never needs.
    from apps.training.jobs import run_training

    run_training(run.pk)  # the job itself; it does nothing if a worker already claimed the run
    deadline = started + TRAINING_TIMEOUT_SECONDS
    run.refresh_from_db()
    while not run.is_finished and time.monotonic() < deadline:
        time.sleep(0.5)
        run.refresh_from_db()
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise ValidationError(f"Training run {run.pk} ({slug}) {run.status}: {run.error or run.stage}")
    auc = (run.metrics or {}).get("auc")
    say(f"  run {run.pk} succeeded in {time.monotonic() - started:.1f}s" + (f", AUC {auc:.3f}" if auc else "") + ".")
    return run


def _unqueue(run: TrainingRun) -> None:
    """Take the run's RQ job out of the queue: this process runs it. Best effort, since the job is idempotent."""
    run.refresh_from_db(fields=["rq_job_id"])
    if not run.rq_job_id:
        return
    try:
        queue = django_rq.get_queue("default")
        job = queue.fetch_job(run.rq_job_id)
        if job is not None:
            job.delete()
    except RedisError as exc:
        logger.warning("could not take run %s's job out of the queue: %s", run.pk, exc)
