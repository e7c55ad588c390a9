"""register RUN SCENE: a succeeded run becomes the scene's next model version (idempotent per run)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.deploy.models import Scene
from apps.deploy.services import scene_run_register
from apps.training.models import TrainingRun

from ._doors import plain, user_named


class Command(BaseCommand):
    help = "Register a succeeded training run as the next model version of a scene."

    def add_arguments(self, parser):
        parser.add_argument("run", type=int, help="training run id")
        parser.add_argument("scene", help="scene name")
        parser.add_argument("--create", action="store_true", help="create the scene when it does not exist")
        parser.add_argument("--user", help="who registers it (recorded as the author)")

    def handle(self, *args, run: int, scene: str, create: bool, user: str | None, **options):
        author = user_named(user)
        training_run = TrainingRun.objects.filter(pk=run).first()
        if training_run is None:
            raise CommandError(f"No training run {run}.")
        existing = Scene.objects.filter(name=scene).first()
        if existing is None and not create:
            raise CommandError(f"No scene named {scene!r} (add --create to create it).")
        try:
            target, version, created = scene_run_register(
                run=training_run, user=author, scene=existing, new_scene="" if existing else scene
            )
        except ValidationError as exc:
            raise plain(exc) from None
        word = "Registered" if created else "Already registered:"
        self.stdout.write(
            self.style.SUCCESS(f"{word} run {run} as {target.name} v{version.version} ({version.sha256[:12]})")
        )
