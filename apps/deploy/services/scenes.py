"""Scenes and the client tokens that read them."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from functools import partial

from django.core.exceptions import ValidationError
from django.db import transaction

from mlabsite.locks import redis_connection

from ..models import ClientToken, ConfigEntry, Scene
from ..notify import token_revoked_notify
from ..selectors import client_token_forget, client_token_revoked

CLIENT_TOKEN_PREFIX = "mlc_"


@transaction.atomic
def scene_create(*, name: str, description: str = "", owners: Iterable = (), user=None) -> Scene:
    """Create a scene with a fresh bucketing salt and an empty config row. ``user`` (the creator) becomes an
    owner along with ``owners``. Raises ValidationError naming the field (e.g. a name already taken)."""
    scene = Scene(name=name, description=description, salt=secrets.token_hex(8))
    scene.full_clean()
    scene.save()
    everyone = {owner.pk: owner for owner in owners}
    if user is not None:
        everyone[user.pk] = user
    scene.owners.set(everyone.values())
    entry = ConfigEntry(scene=scene)
    entry.full_clean()
    entry.save()
    return scene


RESULTS_SETTINGS = ("attribution_window", "guardrail_metric", "guardrail_alpha", "guardrail_min_units")


@transaction.atomic
def scene_update(
    *, scene: Scene, description: str | None = None, owners: Iterable | None = None, **results_settings
) -> Scene:
    """Change what may change after creation: the description, the owners (at least one), and the A/B results
    settings (``attribution_window`` in seconds, ``guardrail_metric``, empty for none, ``guardrail_alpha``,
    ``guardrail_min_units``). What is None or not given stays as it is. Raises ValidationError naming the
    field."""
    unknown = set(results_settings) - set(RESULTS_SETTINGS)
    if unknown:
        raise TypeError(f"scene_update() got unexpected settings {sorted(unknown)}")
    changed = []
    if description is not None:
        scene.description = description
        changed.append("description")
    for name, value in results_settings.items():
        if value is not None:
            setattr(scene, name, value)
            changed.append(name)
    if owners is not None:
        owners = list(owners)
        if not owners:
            raise ValidationError({"owners": ["A scene needs at least one owner."]})
    scene.full_clean()
    if changed:
        scene.save(update_fields=changed)
    if owners is not None:
        scene.owners.set(owners)
    return scene


def client_token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def client_token_create(*, name: str, scenes: Iterable[Scene], user=None) -> tuple[ClientToken, str]:
    """Create a read-only client token for ``scenes``. Returns the row and the token itself, which is not
    stored (only its sha256 is) and so can be shown only now."""
    scenes = list(scenes)
    if not scenes:
        raise ValidationError({"scenes": ["A client token needs at least one scene."]})
    key = CLIENT_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ClientToken(key=client_token_digest(key), hint=key[:10], name=name, created_by=user)
    token.full_clean()
    token.save()
    token.scenes.set(scenes)
    return token, key


@transaction.atomic
def client_token_revoke(*, token: ClientToken) -> None:
    """Delete a client token. Once the transaction commits every process hears of it (Redis pub/sub): a long
    poll holding it answers 401 when it wakes, and new requests are refused at once in this process and within
    ``selectors.CLIENT_TOKEN_CACHE_SECONDS`` elsewhere (sooner when the notice arrives)."""
    digest = token.key
    token.delete()
    client_token_forget(digest)
    transaction.on_commit(partial(_client_token_revoked, digest))


def _client_token_revoked(digest: str) -> None:
    client_token_revoked(digest)  # this process, whether or not it listens
    token_revoked_notify(connection=redis_connection(), digest=digest)
