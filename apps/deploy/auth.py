"""Who may read a scene's config and artifacts: its owners (user tokens) and its client tokens.

Both kinds arrive as ``Authorization: Token <key>``; client tokens carry the ``mlc_`` prefix. Client tokens
are accepted ONLY by the config and artifact endpoints and by the events endpoint (see ``apis/access.py``);
every other API route authenticates with DRF's user tokens, where a client token is simply an invalid token
(401).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractUser
from rest_framework.authtoken.models import Token

from .models import ClientToken, Scene
from .services.scenes import CLIENT_TOKEN_PREFIX, client_token_digest


class NotAuthenticated(Exception):
    """No credentials, or credentials that match no active user or client token (401)."""


@dataclass(frozen=True)
class Reader:
    """An authenticated reader: a user, or a client token with the ids of its scenes."""

    user: AbstractUser | None = None
    client_name: str | None = None
    client_scene_ids: frozenset[int] = frozenset()

    @property
    def is_client(self) -> bool:
        return self.user is None

    def owns(self, scene: Scene) -> bool:
        return self.user is not None and (self.user.is_superuser or scene.owners.filter(pk=self.user.pk).exists())

    def in_scope(self, scene: Scene) -> bool:
        return scene.pk in self.client_scene_ids


def reader_from_header(header: str | None) -> Reader:
    """The reader named by an ``Authorization`` header. Raises NotAuthenticated with a message."""
    scheme, _, key = (header or "").partition(" ")
    key = key.strip()
    if scheme.lower() != "token" or not key:
        raise NotAuthenticated("Authentication credentials were not provided.")
    if key.startswith(CLIENT_TOKEN_PREFIX):
        client_token = ClientToken.objects.filter(key=client_token_digest(key)).first()
        if client_token is None:
            raise NotAuthenticated("Invalid token.")
        scene_ids = frozenset(client_token.scenes.values_list("pk", flat=True))
        return Reader(client_name=client_token.name, client_scene_ids=scene_ids)
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        raise NotAuthenticated("Invalid token.")
    return Reader(user=token.user)
