"""People's API tokens: issued, revoked, and looked up by the key a request presents.

A token is ``mlu_`` and 43 random URL-safe characters; only its sha256 is stored (``ApiToken.key``), so it can
be shown once, when it is issued. Tokens from before (Django REST framework's plaintext tokens, 40 hex
characters without a prefix) were turned into digests by a migration and keep working: a key is looked up by
its digest whatever its form.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .models import ApiToken

API_TOKEN_PREFIX = "mlu_"
# A token's "last used" is written at most this often: a busy script must not turn every request into a write.
LAST_USED_PRECISION = timedelta(seconds=60)


def api_token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """Issue a token acting as ``user``. Returns the row and the token itself, which is not stored (only its
    sha256 is) and so can be shown only now."""
    key = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(key=api_token_digest(key), hint=key[:10], name=name, user=user)
    token.full_clean()
    token.save()
    return token, key


def api_token_revoke(*, token: ApiToken) -> None:
    """Delete a token: the next request that presents it gets 401."""
    token.delete()


@transaction.atomic
def api_token_replace(*, user, name: str) -> tuple[ApiToken, str]:
    """Revoke ``user``'s tokens called ``name`` and issue a new one (what a rerun of ``mlab_demo`` does)."""
    for old in ApiToken.objects.filter(user=user, name=name):
        api_token_revoke(token=old)
    return api_token_create(user=user, name=name)


def api_token_user(key: str) -> tuple | None:
    """(user, token) for a presented key, or None when no token has its digest or its user is inactive.

    One query; the token's ``last_used_at`` is written at most once per LAST_USED_PRECISION."""
    token = ApiToken.objects.select_related("user").filter(key=api_token_digest(key)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token.user, token
