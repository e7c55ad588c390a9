"""client_token NAME SCENE…: a read-only token for client processes; printed once, never stored."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand

from apps.deploy.services import client_token_create

from ._doors import plain, scene_named, user_named


class Command(BaseCommand):
    help = "Create a client token that can read the config and artifacts of the given scenes only."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("scenes", nargs="+")
        parser.add_argument("--user", help="who creates it")

    def handle(self, *args, name: str, scenes: list[str], user, **options):
        try:
            _, key = client_token_create(name=name, scenes=[scene_named(s) for s in scenes], user=user_named(user))
        except ValidationError as exc:
            raise plain(exc) from None
        self.stdout.write(self.style.SUCCESS(f"Client token {name!r} for {', '.join(scenes)} (shown only now):"))
        self.stdout.write(key)
