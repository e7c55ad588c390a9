"""Reads of the deploy app: who sees which scene, and the shapes the API and admin show."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from mlab_client.routing import owners_from_ranges
from mlabsite.roles import BUSINESS_DEVELOPERS

from .models import ClientToken, ConfigRevision, Deployment, ModelVersion, Scene


def scene_list(*, user) -> QuerySet[Scene]:
    """Scenes ``user`` owns (a superuser sees all), with their config row and owners."""
    qs = (
        Scene.objects.select_related("config")
        .prefetch_related("owners")
        .annotate(version_count=Count("versions", distinct=True))
        .order_by("name")
    )
    if user.is_superuser:
        return qs
    return qs.filter(owners=user)


def scene_get(*, user, name: str) -> Scene:
    """Raises Scene.DoesNotExist when there is no such scene or ``user`` does not own it."""
    return scene_list(user=user).get(name=name)


SCENE_ID_CACHE_SECONDS = 60.0
_scene_ids: dict[str, tuple[float, int]] = {}


def scene_id_named(name: str) -> int | None:
    """The id of the scene named ``name`` (None: no such scene), kept in the process for a minute: the events
    door asks on every batch, and a scene is never renamed (nor deleted, but by hand)."""
    hit = _scene_ids.get(name)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    found = Scene.objects.filter(name=name).values_list("pk", flat=True).first()
    if found is not None:
        if len(_scene_ids) >= 10_000:
            _scene_ids.clear()
        _scene_ids[name] = (time.monotonic() + SCENE_ID_CACHE_SECONDS, found)
    return found


def scene_owned_by(scene: Scene, user) -> bool:
    return user.is_superuser or scene.owners.filter(pk=user.pk).exists()


def scene_owner_candidates(*, scene: Scene | None = None) -> QuerySet:
    """Who may be made an owner of a scene: active business developers (and the scene's current owners, so
    that editing it never drops one). Other users' names are not offered."""
    users = get_user_model().objects.filter(is_active=True)
    chosen = Q(groups__name=BUSINESS_DEVELOPERS)
    if scene is not None:
        chosen |= Q(pk__in=scene.owners.values("pk"))
    return users.filter(chosen).distinct().order_by("username")


def model_version_list(*, scene: Scene) -> QuerySet[ModelVersion]:
    return (
        ModelVersion.objects.filter(scene=scene)
        .select_related("scene", "run__template", "created_by")
        .order_by("version")
    )


def deployment_list(*, scene: Scene) -> QuerySet[Deployment]:
    """Deployments newest first, each with ``published``: whether its revision reached the config table."""
    published = ConfigRevision.objects.filter(scene=OuterRef("scene"), revision=OuterRef("revision"))
    return (
        Deployment.objects.filter(scene=scene)
        .select_related("scene", "author")
        .annotate(published=Exists(published))
        .order_by("-revision")
    )


def config_revision_list(*, scene: Scene) -> QuerySet[ConfigRevision]:
    return ConfigRevision.objects.filter(scene=scene).order_by("-revision")


@dataclass
class RevisionDiff:
    """What changed from one deployment to the next, in words people read on the scene page."""

    revision: int
    changes: list[str]
    moved_buckets: int | None  # buckets that changed version, when both configs were published

    @property
    def moved_percent(self) -> float | None:
        return None if self.moved_buckets is None else self.moved_buckets / 100


def deployment_diff(
    old: Deployment | None,
    new: Deployment,
    *,
    old_allocation: list | None = None,
    new_allocation: list | None = None,
) -> RevisionDiff:
    """Changes of weights and overrides between ``old`` and ``new``; with both allocations, how many of the
    10,000 buckets changed version."""
    old_weights = {row["version"]: row["weight"] for row in (old.splits if old else [])}
    new_weights = {row["version"]: row["weight"] for row in new.splits}
    changes = []
    for version in sorted(set(old_weights) | set(new_weights)):
        before, after = old_weights.get(version, 0), new_weights.get(version, 0)
        if before != after:
            changes.append(f"v{version}: {before}% → {after}%")
    old_overrides = old.overrides if old else {}
    for unit in sorted(set(old_overrides) | set(new.overrides)):
        before, after = old_overrides.get(unit), new.overrides.get(unit)
        if before is None:
            changes.append(f"pin {unit} → v{after}")
        elif after is None:
            changes.append(f"unpin {unit} (was v{before})")
        elif before != after:
            changes.append(f"pin {unit}: v{before} → v{after}")
    if not changes:
        changes.append("no change")
    moved = None
    if old_allocation is not None and new_allocation is not None:
        before_owners, after_owners = owners_from_ranges(old_allocation), owners_from_ranges(new_allocation)
        moved = sum(1 for a, b in zip(before_owners, after_owners, strict=True) if a != b)
    return RevisionDiff(revision=new.revision, changes=changes, moved_buckets=moved)


def scene_history(*, scene: Scene) -> list[dict]:
    """Every deployment of the scene, newest first, with its diff from the one before and whether (and with
    which allocation) it was published."""
    deployments = list(deployment_list(scene=scene).order_by("revision"))
    published = {rev.revision: rev for rev in config_revision_list(scene=scene)}
    rows, previous, previous_allocation = [], None, None
    for deployment in deployments:
        history = published.get(deployment.revision)
        allocation = history.content.get("allocation") if history else None
        diff = deployment_diff(
            previous,
            deployment,
            old_allocation=previous_allocation if previous is not None else ([] if allocation is not None else None),
            new_allocation=allocation,
        )
        rows.append({"deployment": deployment, "published": history, "diff": diff})
        previous = deployment
        if allocation is not None:
            previous_allocation = allocation
    rows.reverse()
    return rows


CLIENT_TOKEN_CACHE_SECONDS = 5.0
_CLIENT_TOKEN_CACHE_SIZE = 10_000
_client_token_scopes: dict[str, tuple[float, frozenset[str] | None]] = {}
NOT_CACHED = object()


def client_token_scenes_cached(digest: str):
    """The cached answer of ``client_token_scenes`` (no query), or NOT_CACHED."""
    hit = _client_token_scopes.get(digest)
    if hit is None or hit[0] < time.monotonic():
        return NOT_CACHED
    return hit[1]


def client_token_scenes(*, digest: str) -> frozenset[str] | None:
    """Names of the scenes the client token whose key has this digest may read; None when there is no such
    token. Answers are kept in the process for CLIENT_TOKEN_CACHE_SECONDS: every poll of every client asks,
    so a token deleted elsewhere stops working within that time (at once in the process that deletes it)."""
    cached = client_token_scenes_cached(digest)
    if cached is not NOT_CACHED:
        return cached
    names = list(ClientToken.objects.filter(key=digest).values_list("scenes__name", flat=True))
    scenes = frozenset(name for name in names if name) if names else None
    if len(_client_token_scopes) >= _CLIENT_TOKEN_CACHE_SIZE:
        _client_token_scopes.clear()
    _client_token_scopes[digest] = (time.monotonic() + CLIENT_TOKEN_CACHE_SECONDS, scenes)
    return scenes


def client_token_forget(digest: str) -> None:
    _client_token_scopes.pop(digest, None)


# Digests of client tokens revoked since this process started, kept current by the config listener's
# subscription (``notify.token_revoked_notify``): a long poll checks it when it wakes, with no query.
_revoked_client_tokens: set[str] = set()
_REVOKED_KEEP = 100_000


def client_token_revoked(digest: str) -> None:
    """Remember that the token with this digest was revoked (in any process), and drop its cached scope."""
    if len(_revoked_client_tokens) >= _REVOKED_KEEP:
        _revoked_client_tokens.clear()  # a token revoked long ago has no poll left open: its scope lookup is None
    _revoked_client_tokens.add(digest)
    client_token_forget(digest)


def client_token_is_revoked(digest: str) -> bool:
    return digest in _revoked_client_tokens
