"""Who may call the API: the authentication class of people's tokens and the permission class of every view.

Kept apart from ``mlabsite.api``: DRF imports these classes while ``rest_framework.views`` is being imported,
so this module must not import that one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.core.exceptions import ImproperlyConfigured
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from .auth_throttle import AuthThrottled, auth_failure_record, auth_failures_check, client_address
from .tokens import api_token_digest, api_token_user


def throttled(exc: AuthThrottled) -> exceptions.Throttled:
    # DRF adds "Expected available in N seconds." and the Retry-After header.
    return exceptions.Throttled(wait=exc.retry_after, detail="Too many failed authentications from your address.")


class ApiTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>`` with one of our ``ApiToken``s (stored as digests, ``mlabsite.tokens``).

    Failed authentications are counted per client address, and an address over the limit gets 429 before its
    token is looked up (``mlabsite.auth_throttle``). A request without a token header is left to the next
    authentication class (the admin's session)."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        address = client_address(request.META)
        try:
            auth_failures_check(address)
        except AuthThrottled as exc:
            raise throttled(exc) from None
        try:
            key = parts[1].decode() if len(parts) == 2 else None
        except UnicodeError:
            key = None
        found = api_token_user(key) if key else None
        if found is None:
            auth_failure_record(address, api_token_digest(key) if key else None)
            raise exceptions.AuthenticationFailed("Invalid token." if key else "Invalid token header.")
        return found


def missing_permissions(user, needed: Sequence[str]) -> list[str]:
    """The permissions of ``needed`` that ``user`` lacks (none for an active superuser)."""
    return [permission for permission in needed if not user.has_perm(permission)]


def permission_refusal(missing: Sequence[str]) -> dict:
    """The body of a 403 for missing model permissions: what is missing, by name."""
    return {
        "detail": f"You do not have the permission to do this; missing: {', '.join(missing)}.",
        "missing_permissions": list(missing),
    }


class ModelPermissions(BasePermission):
    """The model permissions the admin asks for, asked by the API too (the default permission class).

    Every API view names what each of its methods needs::

        required_permissions = {"GET": ["deploy.view_scene"], "POST": ["deploy.add_scene"]}

    HEAD needs what GET needs; OPTIONS needs only a signed-in user. A method the view implements but does not
    name is a programming error (ImproperlyConfigured), never an open door. Ownership (your runs, your scenes)
    is checked after this, by the views' selectors. Anonymous requests are refused (401 from DRF).
    """

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        needed = self.needed(request.method, view)
        missing = missing_permissions(user, needed)
        if missing:
            self.message = permission_refusal(missing)
            return False
        return True

    @staticmethod
    def needed(method: str, view) -> Sequence[str]:
        if method == "OPTIONS":
            return ()
        method = "GET" if method == "HEAD" else method
        declared: Mapping[str, Sequence[str]] = getattr(view, "required_permissions", {})
        if method in declared:
            return declared[method]
        if method.lower() not in {m.lower() for m in getattr(view, "allowed_methods", ())}:
            return ()  # the view has no such method: DRF answers 405
        raise ImproperlyConfigured(f"{type(view).__name__} does not declare required_permissions for {method}.")
