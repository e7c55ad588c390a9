"""results SCENE [--revision N] [--metric M] [--json]: the A/B results of a revision, in words."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from apps.deploy.abtest.results import NoSuchRevision, scene_results
from apps.deploy.abtest.words import results_lines

from ._doors import scene_named


class Command(BaseCommand):
    help = (
        "Print the A/B results of a scene's revision (default: the published one) on a metric (default: the "
        "guardrail's, else the one with the most outcomes): per version, the uplift of each challenger, the "
        "sample-ratio check and the guardrail."
    )

    def add_arguments(self, parser):
        parser.add_argument("scene")
        parser.add_argument("--revision", type=int)
        parser.add_argument("--metric")
        parser.add_argument("--json", action="store_true", help="print what the results API answers instead")

    def handle(self, *args, scene: str, revision: int | None, metric: str | None, **options):
        target = scene_named(scene)
        try:
            results = scene_results(scene=target, revision=revision, metric=metric)
        except NoSuchRevision as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(_dumps(results.as_dict()))
            return
        for line in results_lines(results):
            self.stdout.write(line)


def _dumps(data: dict) -> str:
    return json.dumps(data, indent=2, default=str)
