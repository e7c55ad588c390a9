"""Deployments: immutable changes of a scene's traffic. Creating one publishes it (see the post_save receiver).

Create deployments only through ``deployment_create``: ``QuerySet.update()`` and ``bulk_create()`` send no
post_save signal, so nothing would be published.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from ..models import Deployment, ModelVersion, Scene

MAX_OVERRIDES = 10_000
MAX_UNIT_ID_LENGTH = 200


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def splits_clean(splits: Any, *, scene: Scene, known: set[int]) -> list[dict]:
    """``[{"version", "weight"}]`` checked: integer weights, none negative, summing to 100, versions registered
    in the scene and not repeated, at least one row. Raises ValidationError on ``splits``, naming the row."""
    if not isinstance(splits, list) or not splits:
        raise ValidationError(
            {"splits": ["Give at least one version and its weight, e.g. [{version: 1, weight: 100}]."]}
        )
    errors, seen, cleaned = [], set(), []
    for index, row in enumerate(splits):
        where = f"splits[{index}]"
        if not isinstance(row, Mapping) or set(row) != {"version", "weight"}:
            errors.append(f'{where}: expected {{"version": <number>, "weight": <percent>}}.')
            continue
        version, weight = row["version"], row["weight"]
        if not _is_int(version):
            errors.append(f"{where}.version: must be a version number, not {version!r}.")
        elif version not in known:
            errors.append(f"{where}.version: version {version} is not registered in scene {scene.name}.")
        elif version in seen:
            errors.append(f"{where}.version: version {version} is repeated.")
        else:
            seen.add(version)
        if not _is_int(weight):
            errors.append(f"{where}.weight: must be a whole percentage, not {weight!r}.")
        elif weight < 0:
            errors.append(f"{where}.weight: must not be negative ({weight}).")
        cleaned.append({"version": version, "weight": weight})
    if not errors:
        total = sum(row["weight"] for row in cleaned)
        if total != 100:
            errors.append(f"weights must sum to 100; they sum to {total}.")
    if errors:
        raise ValidationError({"splits": errors})
    return cleaned


def overrides_clean(overrides: Any, *, scene: Scene, known: set[int]) -> dict[str, int]:
    """``{unit_id: version}`` checked: unit ids non-empty text, versions registered in the scene."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise ValidationError({"overrides": ['Expected an object {"unit id": version, …}.']})
    if len(overrides) > MAX_OVERRIDES:
        raise ValidationError({"overrides": [f"At most {MAX_OVERRIDES} overrides; got {len(overrides)}."]})
    errors, cleaned = [], {}
    for unit_id, version in overrides.items():
        where = f"overrides[{unit_id!r}]"
        if not isinstance(unit_id, str) or not unit_id.strip() or len(unit_id) > MAX_UNIT_ID_LENGTH:
            errors.append(f"{where}: a unit id is non-empty text of at most {MAX_UNIT_ID_LENGTH} characters.")
        elif not _is_int(version):
            errors.append(f"{where}: must be a version number, not {version!r}.")
        elif version not in known:
            errors.append(f"{where}: version {version} is not registered in scene {scene.name}.")
        else:
            cleaned[unit_id] = version
    if errors:
        raise ValidationError({"overrides": errors})
    return cleaned


@transaction.atomic
def deployment_create(
    *,
    scene: Scene,
    splits: Any,
    overrides: Any = None,
    comment: str = "",
    user=None,
    rollback_of: int | None = None,
    control_version: int | None = None,
) -> Deployment:
    """Create the scene's next revision: ``splits`` ``[{"version": 1, "weight": 90}, …]`` (integer weights
    summing to 100) and ``overrides`` ``{unit_id: version}`` for a gray release; ``control_version``, the
    version the A/B results compare challengers with (None: the largest weight, see ``Deployment.control``).
    Raises ValidationError naming ``splits``, ``overrides`` or ``control_version``. Publication is enqueued
    when the transaction commits."""
    known = set(ModelVersion.objects.filter(scene=scene).values_list("version", flat=True))
    errors = {}
    try:
        splits = splits_clean(splits, scene=scene, known=known)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        overrides = overrides_clean(overrides, scene=scene, known=known)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if control_version is not None and "splits" not in errors:
        weighted = {row["version"] for row in splits if row["weight"] > 0}
        if not _is_int(control_version) or control_version not in weighted:
            errors["control_version"] = [
                f"The control must be one of the versions given traffic ({', '.join(map(str, sorted(weighted)))}); "
                f"got {control_version!r}."
            ]
    if errors:
        raise ValidationError(errors)
    scene = Scene.objects.select_for_update().get(pk=scene.pk)
    scene.last_revision += 1
    scene.full_clean()
    scene.save(update_fields=["last_revision"])
    deployment = Deployment(
        scene=scene,
        revision=scene.last_revision,
        splits=splits,
        overrides=overrides,
        comment=comment,
        author=user,
        rollback_of=rollback_of,
        control_version=control_version,
    )
    deployment.full_clean()
    deployment.save()
    return deployment


@transaction.atomic
def deployment_rollback(*, scene: Scene, revision: int, user, comment: str = "") -> Deployment:
    """A new revision with the splits and overrides of ``revision``. Raises Deployment.DoesNotExist when the
    scene has no such revision."""
    target = Deployment.objects.filter(scene=scene, revision=revision).first()
    if target is None:
        raise Deployment.DoesNotExist(f"Scene {scene.name} has no revision {revision}.")
    return deployment_create(
        scene=scene,
        splits=target.splits,
        overrides=target.overrides,
        comment=comment or f"Rollback to revision {revision}",
        user=user,
        rollback_of=revision,
        control_version=target.control_version,
    )
