"""Issue 11, items 9, 11 and 12, replayed through the doors people use: the API with a token, the admin, the
management commands. Each test fails on the code before its fix.

- item 9: the API asks for the same model permissions as the admin (403 naming what is missing);
- item 11: people's API tokens are stored as digests and shown once; var/ is private;
- item 12: repeated failed admin logins are locked out (django-axes); failed token authentications are
  throttled per client address (429 with Retry-After).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from datetime import timedelta
from importlib import import_module
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import AsyncClient
from django.urls import URLPattern, URLResolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.deploy.services import (
    client_token_create,
    deployment_create,
    model_version_register,
    scene_create,
    scene_publish,
)
from apps.training.models import TrainingRun
from conftest import api_key, token_client
from mlabsite import urls as site_urls
from mlabsite.models import ApiToken
from mlabsite.roles import BUSINESS_DEVELOPERS, role_group
from mlabsite.tokens import API_TOKEN_PREFIX, api_token_digest
from tests.factories import TrainingRunFactory

ROOT = Path(__file__).resolve().parents[2]
ROW = {"age": 35.0, "price": 20.0, "city": "north"}  # the features of the factory's ONNX models


# --- item 9: the API asks for the admin's model permissions -------------------------------------------------

# route name → (method, the permissions it needs, what a business developer who owns everything gets)
ROUTES: dict[str, tuple[str, list[str], int]] = {
    "template-list": ("GET", ["algo_templates.view_algorithmtemplate"], 200),
    "template-detail": ("GET", ["algo_templates.view_algorithmtemplate"], 200),
    "template-schema": ("GET", ["algo_templates.view_algorithmtemplate"], 200),
    "template-validate": ("POST", ["algo_templates.view_algorithmtemplate"], 200),
    "datasource-list": ("GET", ["training.view_datasource"], 200),
    "datasource-tables": ("GET", ["training.view_datasource"], 200),
    "run-list": ("GET", ["training.view_trainingrun"], 200),
    "run-list POST": ("POST", ["training.add_trainingrun"], 201),
    "run-preview": ("POST", ["training.add_trainingrun"], 200),
    "run-detail": ("GET", ["training.view_trainingrun"], 200),
    "run-cancel": ("POST", ["training.view_trainingrun", "training.add_trainingrun"], 200),
    "run-retry": ("POST", ["training.view_trainingrun", "training.add_trainingrun"], 201),
    "scene-list": ("GET", ["deploy.view_scene"], 200),
    "scene-list POST": ("POST", ["deploy.add_scene"], 201),
    "scene-detail": ("GET", ["deploy.view_scene"], 200),
    "scene-version-list": ("GET", ["deploy.view_scene", "deploy.view_modelversion"], 200),
    "scene-version-list POST": ("POST", ["deploy.view_scene", "deploy.add_modelversion"], 201),
    "scene-version-detail": ("GET", ["deploy.view_scene", "deploy.view_modelversion"], 200),
    "scene-version-artifact": ("GET", ["deploy.view_scene", "deploy.view_modelversion"], 200),
    "scene-deployment-list": ("GET", ["deploy.view_scene", "deploy.view_deployment"], 200),
    "scene-deployment-list POST": ("POST", ["deploy.view_scene", "deploy.add_deployment"], 201),
    "scene-rollback": ("POST", ["deploy.view_scene", "deploy.add_deployment"], 201),
    "scene-predict": ("POST", ["deploy.view_scene", "deploy.view_modelversion"], 200),
    "scene-detail PATCH": ("PATCH", ["deploy.view_scene", "deploy.change_scene"], 200),
    "scene-events": ("POST", ["deploy.view_scene"], 202),
    "scene-results": ("GET", ["deploy.view_scene"], 200),
    "config": ("GET", ["deploy.view_scene"], 200),
}


def _api_route_names() -> set[str]:
    names = set()
    for entry in site_urls.api_v1:
        patterns = entry.url_patterns if isinstance(entry, URLResolver) else [entry]
        names |= {pattern.name for pattern in patterns if isinstance(pattern, URLPattern) and pattern.name}
    return names


def test_every_api_route_is_checked_below():
    """Issue 11 item 9: a route added without an entry in ROUTES (its permissions) fails here."""
    assert {name.split()[0] for name in ROUTES} == _api_route_names()


@pytest.fixture
def world(db, builtin_templates, duck_source):
    """world(user) → a request maker for every route, on objects ``user`` owns: a scene with versions 1 and 2
    published 100/0, a second succeeded run not registered yet, a queued run."""

    def make(user):
        scene = scene_create(name="ctr", user=user)
        runs = [TrainingRunFactory(owner=user, seed=seed, datasource=duck_source) for seed in (1, 2, 3)]
        for run in runs[:2]:
            model_version_register(run=run, scene=scene, user=user)
        deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user)
        scene_publish(scene_id=scene.pk)
        queued = TrainingRunFactory(owner=user, datasource=duck_source, status=TrainingRun.Status.QUEUED, artifact=None)
        run_body = {"template": "binary-lr", "datasource": "demo", "params": {}}
        exposure = {"type": "exposure", "unit_id": "u-1", "revision": 1, "version": 1, "ts": time.time()}
        requests = {
            "template-list": ({}, None),
            "template-detail": ({"slug": "binary-lr"}, None),
            "template-schema": ({"slug": "binary-lr"}, None),
            "template-validate": ({"slug": "binary-lr"}, {"params": {"train": {"maxIter": 50}}}),
            "datasource-list": ({}, None),
            "datasource-tables": ({"name": "demo"}, None),
            "run-list": ({}, None),
            "run-list POST": ({}, run_body),
            "run-preview": ({}, run_body),
            "run-detail": ({"pk": runs[0].pk}, None),
            "run-cancel": ({"pk": queued.pk}, None),
            "run-retry": ({"pk": runs[0].pk}, None),
            "scene-list": ({}, None),
            "scene-list POST": ({}, {"name": "new-scene"}),
            "scene-detail": ({"name": "ctr"}, None),
            "scene-version-list": ({"name": "ctr"}, None),
            "scene-version-list POST": ({"name": "ctr"}, {"run": runs[2].pk}),
            "scene-version-detail": ({"name": "ctr", "version": 1}, None),
            "scene-version-artifact": ({"name": "ctr", "version": 1}, None),
            "scene-deployment-list": ({"name": "ctr"}, None),
            "scene-deployment-list POST": ({"name": "ctr"}, {"splits": [{"version": 2, "weight": 100}]}),
            "scene-rollback": ({"name": "ctr"}, {"revision": 1}),
            "scene-predict": ({"name": "ctr"}, {"unit_id": "u-1", "features": ROW}),
            "scene-detail PATCH": ({"name": "ctr"}, {"description": "new words"}),
            "scene-events": ({"name": "ctr"}, {"batch": "batch-0001", "events": [exposure]}),
            "scene-results": ({"name": "ctr"}, None),
            "config": ({"name": "ctr"}, None),
        }

        def call(client: APIClient, route: str):
            method, _, _ = ROUTES[route]
            kwargs, body = requests[route]
            path = reverse(f"api:{route.split()[0]}", kwargs=kwargs)
            if method == "GET":
                return client.get(path)
            return client.generic(method, path, json.dumps(body or {}), content_type="application/json")

        return call

    return make


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_user_without_permissions_gets_403_naming_them(world, user, route):
    """Issue 11 item 9: a staff user with a token but no model permission could create runs and scenes. Now
    every route answers 403 and names the permissions missing, even on objects the user owns."""
    call = world(user)
    response = call(token_client(user), route)
    assert response.status_code == 403, (route, response.status_code)
    assert response.json()["missing_permissions"] == ROUTES[route][1]
    assert not TrainingRun.objects.filter(status=TrainingRun.Status.CANCELLED).exists()


@pytest.mark.parametrize("role", ["business developer", "superuser"])
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_business_developers_and_superusers_keep_what_they_could_do(world, user, role, route):
    """Issue 11 item 9: the role keeps every route it had (same answers as before), and superusers pass."""
    if role == "superuser":
        user.is_superuser = True
        user.save()
    else:
        user.groups.add(role_group(BUSINESS_DEVELOPERS))
    call = world(user)
    response = call(token_client(user), route)
    assert response.status_code == ROUTES[route][2], (route, getattr(response, "content", b"")[:300])


def test_one_permission_granted_opens_only_its_door(world, user):
    """Issue 11 item 9: view_scene alone lists scenes but cannot create one (403 naming deploy.add_scene)."""
    world(user)
    user.user_permissions.add(Permission.objects.get(codename="view_scene"))
    client = token_client(user)
    assert client.get(reverse("api:scene-list")).status_code == 200
    refused = client.post(reverse("api:scene-list"), {"name": "mine"}, format="json")
    assert refused.status_code == 403 and refused.json()["missing_permissions"] == ["deploy.add_scene"]
    assert "deploy.add_scene" in refused.json()["detail"]


def test_ownership_still_hides_the_scenes_of_others(world, user, other_business_user):
    """Issue 11 item 9: permissions come first, ownership rules stay: another business developer gets 404."""
    world(user)
    bob = token_client(other_business_user)
    assert bob.get(reverse("api:scene-detail", kwargs={"name": "ctr"})).status_code == 404
    assert bob.get(reverse("api:config", kwargs={"name": "ctr"})).status_code == 404


def test_the_role_grants_every_permission_the_api_asks_for(db):
    """Issue 11 item 9: the business developers' role holds each permission of the permission map."""
    group = role_group(BUSINESS_DEVELOPERS)
    granted = {
        f"{label}.{codename}"
        for label, codename in group.permissions.values_list("content_type__app_label", "codename")
    }
    needed = {permission for _, permissions, _ in ROUTES.values() for permission in permissions}
    assert needed <= granted


# --- item 11: stored secrets --------------------------------------------------------------------------------


def _as(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _stored_values() -> str:
    """Every column of every stored API token, as text."""
    return " ".join(str(value) for row in ApiToken.objects.values_list() for value in row)


def test_the_api_token_command_prints_a_token_once_and_stores_its_digest(business_user, builtin_templates):
    """Issue 11 item 11: user API tokens were stored in plain text (DRF authtoken). The command prints a
    prefixed token once; only its sha256 is stored, and the token works as ``Authorization: Token``."""
    out = io.StringIO()
    call_command("api_token", "alice", "--name", "laptop", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    assert key.startswith(API_TOKEN_PREFIX) and len(key) > 40
    token = ApiToken.objects.get(user=business_user, name="laptop")
    assert token.key == hashlib.sha256(key.encode()).hexdigest()
    assert key not in _stored_values() and token.hint == key[:10]
    assert _as(key).get("/api/v1/templates/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert "rest_framework.authtoken" not in settings.INSTALLED_APPS
    with pytest.raises(CommandError, match="No user named 'zed'"):
        call_command("api_token", "zed")


def test_revoking_a_token_in_the_admin_locks_it_out(admin_client, business_user, builtin_templates):
    """Issue 11 item 11: the admin issues tokens (the key shown once), lists name, hint, user, created and
    last used (never the key), and revoking (delete) makes the token fail with 401."""
    response = admin_client.post(
        "/admin/mlabsite/apitoken/add/", {"user": business_user.pk, "name": "ci"}, follow=False
    )
    assert response.status_code == 200
    page = response.content.decode()
    key = page.split('id="mlab-api-token">')[1].split("<")[0]
    assert key.startswith(API_TOKEN_PREFIX) and key not in _stored_values()
    assert _as(key).get("/api/v1/templates/").status_code == 200
    listing = admin_client.get("/admin/mlabsite/apitoken/").content.decode()
    assert key not in listing and f"{key[:10]}…" in listing and "alice" in listing
    for column in ("column-name", "column-hint_text", "column-user", "column-created_at", "column-last_used_at"):
        assert column in listing
    token = ApiToken.objects.get(name="ci")
    assert admin_client.post(f"/admin/mlabsite/apitoken/{token.pk}/delete/", {"post": "yes"}).status_code == 302
    assert _as(key).get("/api/v1/templates/").status_code == 401


def test_a_business_developer_issues_and_sees_only_their_own_tokens(client, business_user, other_business_user):
    """Issue 11 item 11: in the admin a business developer issues tokens for themselves only."""
    api_key(other_business_user, name="bobs")
    client.force_login(business_user)
    response = client.post("/admin/mlabsite/apitoken/add/", {"name": "mine", "user": other_business_user.pk})
    assert response.status_code == 200 and 'id="mlab-api-token"' in response.content.decode()
    assert ApiToken.objects.get(name="mine").user == business_user  # not bob, whatever the form said
    listing = client.get("/admin/mlabsite/apitoken/").content.decode()
    assert "mine" in listing and "bobs" not in listing


def test_a_client_token_is_still_refused_on_people_routes(world, business_user):
    """Issue 11 item 11: client tokens (mlc_) stay read-only: 401 on every route but config and artifacts."""
    world(business_user)
    from apps.deploy.models import Scene

    _, key = client_token_create(name="svc", scenes=[Scene.objects.get(name="ctr")], user=business_user)
    assert _as(key).get("/api/v1/templates/").status_code == 401
    assert _as(key).get(reverse("api:config", kwargs={"name": "ctr"})).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_drf_tokens_of_before_keep_working_as_digests(business_user, builtin_templates):
    """Issue 11 item 11: the migration turns DRF's plaintext tokens into digests (same key keeps working) and
    deletes the plaintext rows."""
    migration = import_module("mlabsite.migrations.0003_drf_tokens_to_digests")
    legacy_key = "0123456789abcdef0123456789abcdef01234567"
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {quote('authtoken_token')} ({quote('key')} varchar(40) PRIMARY KEY, "
            f"{quote('user_id')} integer NOT NULL, {quote('created')} datetime NOT NULL)"
        )
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {quote('authtoken_token')} VALUES (%s, %s, %s)",
                [legacy_key, business_user.pk, "2026-01-02 03:04:05"],
            )
        assert _as(legacy_key).get("/api/v1/templates/").status_code == 401  # before the migration
        from django.apps import apps as live_apps

        with connection.schema_editor() as editor:
            migration.drf_tokens_to_digests(live_apps, editor)
        token = ApiToken.objects.get(user=business_user)
        assert token.key == api_token_digest(legacy_key) and token.created_at.year == 2026
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {quote('authtoken_token')}")
            assert cursor.fetchone()[0] == 0
        assert _as(legacy_key).get("/api/v1/templates/").status_code == 200
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {quote('authtoken_token')}")


def test_a_demo_rerun_revokes_the_demo_token_and_issues_a_new_one(db, builtin_templates):
    """Issue 11 item 11: mlab_demo's user step issues a new token named "demo" each time, revoking the old."""
    from apps.demo.setup import demo_user_sync

    first, second = demo_user_sync().token, demo_user_sync().token
    assert first != second and first.startswith(API_TOKEN_PREFIX)
    assert ApiToken.objects.filter(user__username="demo", name="demo").count() == 1
    assert _as(first).get("/api/v1/templates/").status_code == 401
    assert _as(second).get("/api/v1/templates/").status_code == 200


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


VAR_SCRIPT = """
import django
django.setup()
from django.db import connection
connection.ensure_connection()
from django.conf import settings
from apps.demo.warehouse import build_demo_warehouse
build_demo_warehouse(settings.MLAB_WAREHOUSE_PATH, impressions=200)
from mlab_client.snapshot import SnapshotStore, write_atomic
store = SnapshotStore(settings.VAR_DIR / "snapshots", "ctr")
store.models.mkdir(parents=True)
write_atomic(store.model_path("0" * 64), b"model")
"""


@pytest.mark.slow
def test_the_embedded_default_keeps_var_private(tmp_path):
    """Issue 11 item 11: var/ was world-readable. A fresh embedded default creates it 0700, and the SQLite
    file, the Redis socket, pidfile and log, the warehouse and snapshots 0600 (directories 0700)."""
    var_dir = tmp_path / "v"  # short: unix socket paths are limited to about 100 bytes
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE") and not k.startswith("PYTEST")
    }
    env.update(MLAB_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="mlabsite.settings.base")
    env.pop("MLAB_WAREHOUSE_PATH", None)
    old_umask = os.umask(0o022)  # as a shell would have it
    try:
        subprocess.run(
            [sys.executable, "-c", VAR_SCRIPT], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120
        )
    finally:
        os.umask(old_umask)
        pidfile = var_dir / "redis.pid"
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
    assert _mode(var_dir) == 0o700
    files = [p for p in var_dir.rglob("*") if not p.is_dir()]
    names = {p.name for p in files}
    assert {"mlab.sqlite3", "redis.sock", "redis.pid", "redis.log", "warehouse.duckdb"} <= names, names
    assert {p.name: oct(_mode(p)) for p in files if _mode(p) & 0o077} == {}
    assert {p.name: oct(_mode(p)) for p in var_dir.rglob("*") if p.is_dir() and _mode(p) != 0o700} == {}


def test_an_existing_var_dir_is_made_private(tmp_path):
    """Issue 11 item 11: an install from before (var/ 0755, files 0644) is tightened when settings load."""
    from mlabsite.embedded import var_dir_private

    var_dir = tmp_path / "var"
    var_dir.mkdir(mode=0o755)
    os.chmod(var_dir, 0o755)
    old = var_dir / "mlab.sqlite3"
    old.write_bytes(b"x")
    os.chmod(old, 0o644)
    previous = os.umask(0o022)
    try:
        var_dir_private(var_dir)
        (var_dir / "new.log").write_text("x")
    finally:
        os.umask(previous)
    assert (_mode(var_dir), _mode(old), _mode(var_dir / "new.log")) == (0o700, 0o600, 0o600)


# --- item 12: throttling ------------------------------------------------------------------------------------


def _login(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_repeated_admin_login_failures_are_locked_out(client, business_user, other_business_user):
    """Issue 11 item 12: nothing stopped password guessing on the admin login. After 5 failures for one
    username from one address, even the right password is refused (429, a plain message) until the cool-off
    ends; another username or another address is not affected."""
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(4):
        assert _login(client, "alice", "wrong").status_code == 200  # the login form again, with its error
    assert _login(client, "alice", "wrong").status_code == 429  # the fifth failure locks the pair out
    locked = _login(client, "alice", "alice-password")
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    assert _login(client, "alice", "alice-password", address="10.0.0.2").status_code == 302
    client.logout()
    assert _login(client, "bob", "bob-password").status_code == 302
    client.logout()
    from axes.models import AccessAttempt  # the lockout is a database row: every web process sees it

    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert _login(client, "alice", "alice-password").status_code == 302


@pytest.fixture
def low_limit(settings):
    settings.MLAB_AUTH_FAILURE_LIMIT = 3
    settings.MLAB_AUTH_FAILURE_WINDOW_SECONDS = 120
    return settings


def test_failed_token_authentications_are_throttled_per_address(
    low_limit, business_user, builtin_templates, django_assert_num_queries
):
    """Issue 11 item 12: nothing throttled token guessing. After N different wrong tokens from one address,
    that address gets 429 with Retry-After, before any token lookup (no query: no oracle), even for a good
    token; another address is not affected, and neither successes nor a repeated wrong token count."""
    good = api_key(business_user)
    client = _as(good)
    for _ in range(5):
        assert client.get("/api/v1/templates/").status_code == 200  # successes are not counted
    for _ in range(5):  # a client still sending its revoked token: one failure, however often
        assert _as(f"{API_TOKEN_PREFIX}revoked").get("/api/v1/templates/").status_code == 401
    for attempt in range(2):
        assert _as(f"{API_TOKEN_PREFIX}guess-{attempt}").get("/api/v1/templates/").status_code == 401
    with django_assert_num_queries(0):
        throttled = _as(f"{API_TOKEN_PREFIX}guess-9").get("/api/v1/templates/")
    assert throttled.status_code == 429 and 0 < int(throttled["Retry-After"]) <= 120
    assert client.get("/api/v1/templates/").status_code == 429
    elsewhere = client.get("/api/v1/templates/", REMOTE_ADDR="10.9.9.9")
    assert elsewhere.status_code == 200


def test_failed_client_tokens_are_throttled_on_the_config_endpoint(low_limit, world, business_user):
    """Issue 11 item 12: the config endpoint (client tokens) counts failures too, under WSGI and ASGI; a
    user token there is refused the same way."""
    world(business_user)
    from apps.deploy.models import Scene

    _, good = client_token_create(name="svc", scenes=[Scene.objects.get(name="ctr")], user=business_user)
    path = reverse("api:config", kwargs={"name": "ctr"})
    for attempt in range(2):
        assert _as(f"mlc_guess-{attempt}").get(path).status_code == 401
    status = async_to_sync(AsyncClient().get)(path, headers={"Authorization": "Token mlc_guess-async"}).status_code
    assert status == 401
    throttled = _as(good).get(path)  # not looked up yet in this process: the throttle answers first
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    answer = async_to_sync(AsyncClient().get)(path, headers={"Authorization": f"Token {good}"})
    assert answer.status_code == 429
    assert _as(api_key(business_user)).get(path).status_code == 429


# --- unit tests of the pieces -------------------------------------------------------------------------------


def test_a_view_that_names_no_permission_for_a_method_is_an_error_not_an_open_door():
    """Issue 11 item 9: ModelPermissions fails closed and loud; HEAD is GET; OPTIONS and 405s pass through."""
    from django.core.exceptions import ImproperlyConfigured
    from rest_framework.views import APIView

    from mlabsite.api_access import ModelPermissions

    class Forgetful(APIView):
        required_permissions = {"GET": ["deploy.view_scene"]}

        def get(self, request): ...

        def post(self, request): ...

    view = Forgetful()
    assert ModelPermissions.needed("HEAD", view) == ["deploy.view_scene"]
    assert ModelPermissions.needed("OPTIONS", view) == ()
    assert ModelPermissions.needed("DELETE", view) == ()  # no such handler: DRF answers 405
    with pytest.raises(ImproperlyConfigured, match="Forgetful does not declare required_permissions for POST"):
        ModelPermissions.needed("POST", view)


def test_the_token_throttle_lets_requests_through_when_redis_is_down(low_limit, monkeypatch):
    """Issue 11 item 12: a Redis outage must not lock every API client out (the lookup still refuses)."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from mlabsite import auth_throttle

    class Down:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise RedisConnectionError("down")

            return fail

    monkeypatch.setattr(auth_throttle, "redis_connection", lambda: Down())
    auth_throttle.auth_failure_record("10.0.0.1", "ab" * 32)
    auth_throttle.auth_failures_check("10.0.0.1")  # no exception


def test_a_failure_window_always_expires(low_limit, redis):
    """Issue 11 item 12: the first failure opens the window; later ones neither extend it nor leave a key
    without expiry (which would lock an address out for ever)."""
    from mlabsite.auth_throttle import FAILURES_PREFIX, AuthThrottled, auth_failure_record, auth_failures_check

    for digest in ("a" * 64, "b" * 64, "c" * 64):
        auth_failure_record("10.0.0.7", digest)
        assert 0 < redis.ttl(FAILURES_PREFIX + "10.0.0.7") <= 120
    with pytest.raises(AuthThrottled) as refused:
        auth_failures_check("10.0.0.7")
    assert 0 < refused.value.retry_after <= 120
    redis.delete(FAILURES_PREFIX + "10.0.0.7")
    auth_failures_check("10.0.0.7")  # the window closed: allowed again
