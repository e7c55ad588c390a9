"""api_token USERNAME [--name NAME]: issue an API token acting as a user; printed once, never stored."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from mlabsite.tokens import api_token_create


class Command(BaseCommand):
    help = (
        "Issue an API token (Authorization: Token mlu_…) acting as USERNAME, with that user's permissions. "
        "The token is printed once; only its digest is stored. Revoke it in the admin (API tokens)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="what the token is for (default: cli)")

    def handle(self, *args, username: str, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive: a token of theirs would not work.")
        try:
            _, key = api_token_create(user=user, name=name)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(self.style.SUCCESS(f"API token {name!r} for {username} (shown only now):"))
        self.stdout.write(key)
