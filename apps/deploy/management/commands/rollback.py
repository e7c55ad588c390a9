"""rollback SCENE REVISION: a new revision with the splits and overrides of an earlier one."""

from __future__ import annotations

from contextlib import nullcontext

from django.core.management.base import BaseCommand, CommandError

from apps.deploy.models import Deployment
from apps.deploy.services import deployment_rollback, publication_inline

from ._doors import scene_named, user_named
from .deploy import report_publication


class Command(BaseCommand):
    help = "Roll a scene back to an earlier revision (creates a new revision copying it)."

    def add_arguments(self, parser):
        parser.add_argument("scene")
        parser.add_argument("revision", type=int)
        parser.add_argument("--comment", default="")
        parser.add_argument("--user", help="who rolls back (recorded as the author)")
        parser.add_argument("--publish", action="store_true", help="publish now, in this process")

    def handle(self, *args, scene: str, revision: int, comment: str, user, publish: bool, **options):
        target = scene_named(scene)
        try:
            with publication_inline() if publish else nullcontext():
                deployment = deployment_rollback(
                    scene=target, revision=revision, user=user_named(user), comment=comment
                )
        except Deployment.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(f"{target.name} revision {deployment.revision} rolls back to revision {revision}")
        )
        report_publication(self, target, deployment.revision, publish=publish)
