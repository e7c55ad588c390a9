"""publish SCENE | --pending: publish now (the job, run in this process), or enqueue every scene left behind."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.deploy.services import publication_sweep, scene_publish

from ._doors import scene_named


class Command(BaseCommand):
    help = "Publish a scene's newest deployment now, or (--pending) enqueue every scene whose newest is unpublished."

    def add_arguments(self, parser):
        parser.add_argument("scene", nargs="?")
        parser.add_argument("--pending", action="store_true")

    def handle(self, *args, scene: str | None, pending: bool, **options):
        if pending == bool(scene):
            raise CommandError("Give a scene name, or --pending.")
        if pending:
            ids = publication_sweep()
            self.stdout.write(f"Enqueued the publication of {len(ids)} scene(s).")
            return
        assert scene  # exactly one of the two was given (checked above)
        target = scene_named(scene)
        result = scene_publish(scene_id=target.pk)
        self.stdout.write(f"{target.name}: {result.outcome}; the config is at revision {result.published_revision}.")
