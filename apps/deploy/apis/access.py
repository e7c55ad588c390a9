"""Who may use the client-facing endpoints of a scene: read its config and artifacts (``authorize``), and send
its A/B events (``authorize_events``), the one write a client token may make. Refusals as JSON answers."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable

from asgiref.sync import sync_to_async
from django.http import JsonResponse

from mlabsite.api_access import permission_refusal
from mlabsite.auth_throttle import AuthThrottled, auth_failure_record, auth_failures_check, auth_failures_check_async

from ..auth import NotAuthenticated, PermissionMissing, reader_from_header
from ..models import Scene
from ..selectors import client_token_scenes, client_token_scenes_cached
from ..services.scenes import CLIENT_TOKEN_PREFIX, client_token_digest

_in_flight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, asyncio.Future]] = (
    weakref.WeakKeyDictionary()
)


async def coalesce(key: Hashable, work: Callable[[], Awaitable]):
    """Run ``work()`` once for every caller asking for ``key`` meanwhile: after a restart a thousand polls miss
    the same cache at once, and must not become a thousand database connections."""
    loop = asyncio.get_running_loop()
    running = _in_flight.setdefault(loop, {})
    task = running.get(key)
    if task is None:
        task = running[key] = asyncio.ensure_future(work())
        task.add_done_callback(lambda _: running.pop(key, None))
    # A caller that goes away (cancelled) leaves the work running for the others.
    return await asyncio.shield(task)


class Refused(Exception):
    """An answer other than the resource: ``status``, a JSON ``payload`` and extra ``headers``."""

    def __init__(self, status: int, detail: str | dict, **headers: str) -> None:
        super().__init__(detail)
        self.status = status
        self.payload = detail if isinstance(detail, dict) else {"detail": detail}
        self.headers = headers

    def response(self) -> JsonResponse:
        return JsonResponse(self.payload, status=self.status, headers=self.headers)


def unauthenticated(message: str) -> Refused:
    return Refused(401, message, **{"WWW-Authenticate": "Token"})


def too_many_failures(exc: AuthThrottled) -> Refused:
    detail = f"Too many failed authentications from your address; retry in {exc.retry_after} s."
    return Refused(429, detail, **{"Retry-After": str(exc.retry_after)})


# What a user token needs on the client-facing endpoints (client tokens are scoped to scenes instead): what the
# admin needs to show the same things (the scene page shows the published config; versions need their own).
CONFIG_PERMISSIONS = ["deploy.view_scene"]
ARTIFACT_PERMISSIONS = ["deploy.view_scene", "deploy.view_modelversion"]


def readable_scene(header: str | None, name: str, *, address: str, permissions: list[str]) -> Scene:
    """The scene, if the caller may read it: a client token of that scene, or a user token of an owner with
    ``permissions``."""
    try:
        reader = reader_from_header(header, address=address)
        reader.require(permissions)
    except NotAuthenticated as exc:
        raise unauthenticated(str(exc)) from None
    except AuthThrottled as exc:
        raise too_many_failures(exc) from None
    except PermissionMissing as exc:
        raise Refused(403, permission_refusal(exc.missing)) from None
    scene = Scene.objects.filter(name=name).first()
    if reader.is_client:
        if scene is None or not reader.in_scope(scene):
            raise Refused(403, f"This client token cannot read scene {name!r}.")
    elif scene is None or not reader.owns(scene):
        raise Refused(404, "No such scene.")
    return scene


def client_key(header: str | None) -> str | None:
    scheme, _, key = (header or "").partition(" ")
    key = key.strip()
    return key if scheme.lower() == "token" and key.startswith(CLIENT_TOKEN_PREFIX) else None


def token_digest(header: str | None) -> str | None:
    """The digest of a client token's key in an Authorization header; None for anything else."""
    key = client_key(header)
    return client_token_digest(key) if key is not None else None


def _scope_refusal(scenes: frozenset[str] | None, name: str, action: str = "read scene") -> Refused | None:
    if scenes is None:
        return unauthenticated("Invalid token.")
    if name not in scenes:
        return Refused(403, f"This client token cannot {action} {name!r}.")
    return None


def _client_token_scenes_counted(digest: str, address: str) -> frozenset[str] | None:
    """``client_token_scenes``, a miss counted as a failed authentication of ``address``."""
    scenes = client_token_scenes(digest=digest)
    if scenes is None:
        auth_failure_record(address, digest)
    return scenes


def authorize(header: str | None, name: str, *, address: str, action: str = "read scene") -> None:
    """Raise Refused unless the caller may read the scene. Client tokens, the hot path of every poll, are
    answered from the process's short-lived cache of token scopes; only a token not known to be good there
    asks the failed-authentication throttle (Redis) and then the database. User tokens check permissions and
    ownership in the database."""
    key = client_key(header)
    if key is None:
        readable_scene(header, name, address=address, permissions=CONFIG_PERMISSIONS)
        return
    digest = client_token_digest(key)
    scenes = client_token_scenes_cached(digest)
    if not isinstance(scenes, frozenset):  # not cached, or known to be no token
        try:
            auth_failures_check(address)
        except AuthThrottled as exc:
            raise too_many_failures(exc) from None
        scenes = _client_token_scenes_counted(digest, address)
    refusal = _scope_refusal(scenes, name, action)
    if refusal is not None:
        raise refusal


def authorize_events(header: str | None, name: str, *, address: str) -> None:
    """Raise Refused unless the caller may send A/B events to the scene: a client token of that scene (the
    same O(1) check from the process's cache of token scopes as a poll), or an owner. It is the only write a
    client token may make; every other route takes user tokens alone."""
    authorize(header, name, address=address, action="send events to scene")


async def authorize_async(header: str | None, name: str, *, address: str, run_sync=sync_to_async) -> None:
    """``authorize`` for async callers; ``run_sync`` runs the database part (only on a cache miss). The
    throttle is asked in the event loop; lookups of one token are coalesced, as before the throttle existed."""
    key = client_key(header)
    if key is None:
        await run_sync(readable_scene)(header, name, address=address, permissions=CONFIG_PERMISSIONS)
        return
    digest = client_token_digest(key)
    scenes = client_token_scenes_cached(digest)
    if not isinstance(scenes, frozenset):
        try:
            await auth_failures_check_async(address)
        except AuthThrottled as exc:
            raise too_many_failures(exc) from None
        scenes = await coalesce(("client-token", digest), lambda: run_sync(client_token_scenes)(digest=digest))
        if scenes is None:
            await run_sync(auth_failure_record)(address, digest)
    refusal = _scope_refusal(scenes, name)
    if refusal is not None:
        raise refusal
