"""deploy SCENE VERSION:WEIGHT … [--override UNIT=VERSION …] [--comment TEXT] [--control VERSION]: publish a new
split."""

from __future__ import annotations

from contextlib import nullcontext

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.deploy.services import deployment_create, publication_inline, scene_publish

from ._doors import plain, scene_named, user_named


def _split(text: str) -> dict:
    version, sep, weight = text.partition(":")
    if not sep:
        raise CommandError(f"{text!r}: write each split as VERSION:WEIGHT, e.g. 1:90 2:10.")
    try:
        return {"version": int(version), "weight": int(weight)}
    except ValueError:
        raise CommandError(f"{text!r}: version and weight are whole numbers, e.g. 1:90.") from None


def _override(text: str) -> tuple[str, int]:
    unit, sep, version = text.rpartition("=")
    if not sep or not unit:
        raise CommandError(f"{text!r}: write each override as UNIT=VERSION, e.g. user-42=2.")
    try:
        return unit, int(version)
    except ValueError:
        raise CommandError(f"{text!r}: the version is a whole number.") from None


class Command(BaseCommand):
    help = "Deploy versions of a scene with A/B weights (summing to 100), e.g. `deploy ctr 1:90 2:10`."

    def add_arguments(self, parser):
        parser.add_argument("scene")
        parser.add_argument("splits", nargs="+", metavar="VERSION:WEIGHT")
        parser.add_argument("--override", action="append", default=[], metavar="UNIT=VERSION", help="pin a unit")
        parser.add_argument("--comment", default="")
        parser.add_argument(
            "--control", type=int, metavar="VERSION", help="the version the A/B results compare the others with"
        )
        parser.add_argument("--user", help="who deploys (recorded as the author)")
        parser.add_argument(
            "--publish", action="store_true", help="publish now, in this process, instead of waiting for a worker"
        )

    def handle(
        self, *args, scene: str, splits: list[str], override: list[str], comment: str, user, publish, control, **options
    ):
        target = scene_named(scene)
        rows = [_split(text) for text in splits]
        overrides = dict(_override(text) for text in override)
        try:
            with publication_inline() if publish else nullcontext():
                deployment = deployment_create(
                    scene=target,
                    splits=rows,
                    overrides=overrides,
                    comment=comment,
                    user=user_named(user),
                    control_version=control,
                )
        except ValidationError as exc:
            raise plain(exc) from None
        split_text = ", ".join(f"v{row['version']} {row['weight']}%" for row in rows)
        self.stdout.write(self.style.SUCCESS(f"{target.name} revision {deployment.revision}: {split_text}"))
        report_publication(self, target, deployment.revision, publish=publish)


def report_publication(command: BaseCommand, scene, revision: int, *, publish: bool) -> None:
    if not publish:
        command.stdout.write("Publication is queued; an RQ worker (`manage.py rqworker`) publishes it.")
        return
    result = scene_publish(scene_id=scene.pk)
    command.stdout.write(f"Published: the config of {scene.name} is at revision {result.published_revision}.")
