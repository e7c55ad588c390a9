"""Reads of the deploy app: who sees which scene, and the shapes the API and admin show."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from apps.training.live_models import LiveModel
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


def scene_for_run(*, scenes: QuerySet[Scene], template_id: int) -> Scene | None:
    """The scene a run most likely joins: among ``scenes``, the one whose newest version came from the same
    template, else the only one."""
    latest = (
        ModelVersion.objects.filter(scene__in=scenes, run__template_id=template_id)
        .select_related("scene")
        .order_by("-created_at", "-pk")
        .first()
    )
    if latest is not None:
        return latest.scene
    only = list(scenes[:2])
    return only[0] if len(only) == 1 else None


def config_shares(content: dict) -> dict[int, float]:
    """Each version's share of the units (0 to 1) in a published config's bucket allocation."""
    shares: dict[int, float] = {}
    buckets = content.get("buckets") or 10_000
    for start, end, version in content.get("allocation", []):
        shares[version] = shares.get(version, 0.0) + (end - start) / buckets
    return shares


def percent_text(share: float) -> str:
    """A share of units (0.8) as a percentage of the split (80%, 12.5%)."""
    return f"{round(share * 100, 2):g}%"


def traffic_summary(shares: dict[int, float], pinned: int) -> str:
    """Traffic in words: "v1 80% · v3 20% · 1 pinned unit" (versions with no share left out)."""
    parts = [f"v{version} {percent_text(share)}" for version, share in sorted(shares.items()) if share > 0]
    if pinned:
        parts.append(f"{pinned:,} pinned unit" + ("s" if pinned != 1 else ""))
    return " · ".join(parts) or "no traffic"


def config_summary(content: dict) -> str:
    """The traffic of a published config in words (see ``traffic_summary``)."""
    return traffic_summary(config_shares(content), len(content.get("overrides") or {}))


def deployment_summary(deployment: Deployment) -> str:
    """The traffic a deployment asks for, in words (see ``traffic_summary``)."""
    shares = {row["version"]: row["weight"] / 100 for row in deployment.splits}
    return traffic_summary(shares, len(deployment.overrides or {}))


def live_versions_of_template(*, template_id: int, user) -> list[LiveModel]:
    """The versions serving a share of the units in ``user``'s scenes that were trained from the template
    ``template_id`` (what a run of that template is compared with), scene by scene, largest share first."""
    scenes = {scene.pk: scene for scene in scene_list(user=user) if getattr(scene, "config", None)}
    live = []
    versions = ModelVersion.objects.filter(scene_id__in=scenes, run__template_id=template_id).order_by("version")
    for version in versions:
        scene = scenes[version.scene_id]
        share = config_shares(scene.config.content).get(version.version, 0.0)
        if share > 0:
            live.append(
                LiveModel(
                    scene_id=scene.pk,
                    scene=scene.name,
                    version=version.version,
                    share=share,
                    run_id=version.run_id,
                    metrics=version.metrics or {},
                )
            )
    return sorted(live, key=lambda model: (model.scene, -model.share))


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
    def moved_text(self) -> str:
        """The share of units that changed version, as people read it: 40%, 0.5%, —."""
        return "—" if self.moved_buckets is None else percent_text(self.moved_buckets / 10_000)


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
    live = max(published, default=0)
    newest = deployments[-1].revision if deployments else 0
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
        state = _publication_state(deployment.revision, history is not None, live=live, newest=newest)
        rows.append({"deployment": deployment, "published": history, "diff": diff, "state": state})
        previous = deployment
        if allocation is not None:
            previous_allocation = allocation
    rows.reverse()
    return rows


def _publication_state(revision: int, published: bool, *, live: int, newest: int) -> str:
    """Where a revision stands: live, was live, publishing (the newest, on its way), or skipped (a newer one
    went live first: publication always publishes the newest revision)."""
    if published:
        return "live" if revision == live else "was live"
    if revision == newest and revision > live:
        return "publishing"
    return "skipped"


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
