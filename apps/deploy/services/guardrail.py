"""The guardrail: a challenger significantly worse than control on the scene's guardrail metric is rolled back.

The rule (``abtest.results.guardrail_verdict``): once control and a challenger each have at least
``guardrail_min_units`` units, the challenger trips the guardrail when its rate (binary metric) or mean is below
control's with a two-sided p-value below ``guardrail_alpha``. The check runs after every aggregation run that
counted events of the published revision.

Tripping publishes a rollback to the revision published before the stopped one (``deployment_rollback``, so it
is published like any other rollback, after commit), with the reason as the deployment's comment, and records
a ``GuardrailTrip`` (one per revision: two aggregators cannot roll back twice). It does nothing when the
revision is no longer the scene's newest deployment: someone deployed since, and their choice stands. When no
revision was published before, the rollback is a new deployment sending all traffic to control.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from django.db import IntegrityError, transaction

from ..abtest.results import NoSuchRevision, guardrail_verdict, scene_results
from ..models import ConfigRevision, GuardrailTrip, Scene
from .deployments import deployment_create, deployment_rollback

logger = logging.getLogger(__name__)

TRIPPED = "tripped"
HELD = "held"  # the verdict tripped, but the revision is no longer the newest, or it was already rolled back
WATCHING = "watching"
OFF = "off"


@dataclass(frozen=True)
class GuardrailOutcome:
    status: str
    message: str
    rollback_revision: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def guardrail_check(*, scene: Scene, revision: int) -> GuardrailOutcome:
    """Judge ``revision`` of ``scene`` on its guardrail metric, and roll it back if it trips (see the module doc)."""
    scene.refresh_from_db(fields=["guardrail_metric", "guardrail_alpha", "guardrail_min_units", "last_revision"])
    if not scene.guardrail_metric:
        return GuardrailOutcome(OFF, "no guardrail is set")
    try:
        results = scene_results(scene=scene, revision=revision, metric=scene.guardrail_metric, daily=False)
    except NoSuchRevision as exc:
        return GuardrailOutcome(OFF, str(exc))
    verdict = guardrail_verdict(results, alpha=scene.guardrail_alpha, min_units=scene.guardrail_min_units)
    if not verdict.trip or verdict.worse is None:
        return GuardrailOutcome(WATCHING, verdict.message)
    reason = f"Guardrail: {verdict.message}. Rolled back automatically."
    try:
        rollback = _roll_back(
            scene, revision, results.control, verdict.worse.version, verdict.worse.comparison.p_value, reason
        )
    except IntegrityError:  # another aggregator recorded the trip first
        return GuardrailOutcome(HELD, f"revision {revision} was already rolled back by the guardrail")
    if rollback is None:
        return GuardrailOutcome(HELD, f"{verdict.message}; revision {revision} is no longer the newest: left as it is")
    logger.warning("%s r%s: %s (revision %s)", scene.name, revision, reason, rollback)
    return GuardrailOutcome(TRIPPED, reason, rollback_revision=rollback)


@transaction.atomic
def _roll_back(scene: Scene, revision: int, control: int | None, worse: int, p_value: float, reason: str) -> int | None:
    locked = Scene.objects.select_for_update().get(pk=scene.pk)  # deployment_create takes the same lock
    if locked.last_revision != revision or GuardrailTrip.objects.filter(scene=scene, revision=revision).exists():
        return None
    trip = GuardrailTrip.objects.create(
        scene=scene,
        revision=revision,
        metric=scene.guardrail_metric,
        version=worse,
        control_version=control or 0,
        p_value=p_value,
        reason=reason,
    )
    previous = (
        ConfigRevision.objects.filter(scene=scene, revision__lt=revision)
        .order_by("-revision")
        .values_list("revision", flat=True)
        .first()
    )
    if previous is not None:
        deployment = deployment_rollback(scene=locked, revision=previous, user=None, comment=reason)
    else:
        deployment = deployment_create(
            scene=locked, splits=[{"version": control, "weight": 100}], comment=reason, user=None
        )
    trip.rollback = deployment
    trip.full_clean()
    trip.save(update_fields=["rollback"])
    return deployment.revision
