"""Who may read a scene's config and artifacts: its owners (user tokens) and its client tokens.

Both kinds arrive as ``Authorization: Token <key>``; client tokens carry the ``mlc_`` prefix, user tokens
(``mlabsite.tokens``) ``mlu_``. Client tokens are accepted ONLY by the config and artifact endpoints (which call
``reader_from_header``) and by the events endpoint (see ``apis/access.py``); every other API route
authenticates with user tokens only, where a client token is simply an invalid token (401). Failed
authentications count against the client's address (``mlabsite.auth_throttle``), checked before any token is
looked up.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractUser

from mlabsite.api_access import missing_permissions
from mlabsite.auth_throttle import auth_failure_record, auth_failures_check
from mlabsite.tokens import api_token_digest, api_token_user

from .models import ClientToken, Scene
from .services.scenes import CLIENT_TOKEN_PREFIX, client_token_digest


class NotAuthenticated(Exception):
    """No credentials, or credentials that match no active user or client token (401)."""


class PermissionMissing(Exception):
    """A user token whose user lacks model permissions the endpoint needs (403 naming them)."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(", ".join(missing))
        self.missing = missing


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

    def require(self, permissions: list[str]) -> None:
        """Raise PermissionMissing unless a user reader has ``permissions`` (client tokens are scoped instead)."""
        if self.user is not None and (missing := missing_permissions(self.user, permissions)):
            raise PermissionMissing(missing)


def reader_from_header(header: str | None, *, address: str) -> Reader:
    """The reader named by an ``Authorization`` header sent from ``address``. Raises NotAuthenticated with a
    message, or AuthThrottled (before any lookup) when ``address`` has failed too often."""
    scheme, _, key = (header or "").partition(" ")
    key = key.strip()
    if scheme.lower() != "token" or not key:
        raise NotAuthenticated("Authentication credentials were not provided.")
    auth_failures_check(address)
    if key.startswith(CLIENT_TOKEN_PREFIX):
        client_token = ClientToken.objects.filter(key=client_token_digest(key)).first()
        if client_token is None:
            auth_failure_record(address, client_token_digest(key))
            raise NotAuthenticated("Invalid token.")
        scene_ids = frozenset(client_token.scenes.values_list("pk", flat=True))
        return Reader(client_name=client_token.name, client_scene_ids=scene_ids)
    found = api_token_user(key)
    if found is None:
        auth_failure_record(address, api_token_digest(key))
        raise NotAuthenticated("Invalid token.")
    return Reader(user=found[0])
