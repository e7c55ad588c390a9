"""What the deploy commands share: looking things up by name and saying errors plainly."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from apps.deploy.models import Scene


def scene_named(name: str) -> Scene:
    scene = Scene.objects.filter(name=name).first()
    if scene is None:
        raise CommandError(f"No scene named {name!r}.")
    return scene


def user_named(username: str | None):
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user named {username!r}.")
    return user


def plain(error: ValidationError) -> CommandError:
    if hasattr(error, "error_dict"):
        lines = [f"{field}: {message}" for field, messages in error.message_dict.items() for message in messages]
    else:
        lines = list(error.messages)
    return CommandError("\n".join(lines))
