"""Fixtures shared by every test: users, API clients, the built-in templates, a clean Redis."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from apps.demo.warehouse import build_demo_warehouse
from apps.templates.services import builtin_templates_sync
from apps.training.services import datasource_create
from mlabsite.roles import BUSINESS_DEVELOPERS, role_group
from mlabsite.tokens import api_token_create

pytest_plugins = ["apps.training.pai.testing"]  # the pai_emulator fixture


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with an empty Redis database (each xdist worker has its own, see settings/test.py)."""
    get_redis_connection("default").flushdb()
    yield


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password", is_staff=True)


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password", is_staff=True)


@pytest.fixture
def business_user(user):
    user.groups.add(role_group(BUSINESS_DEVELOPERS))
    return user


@pytest.fixture
def other_business_user(other_user):
    other_user.groups.add(role_group(BUSINESS_DEVELOPERS))
    return other_user


def api_key(user, name: str = "test") -> str:
    """A new API token of ``user`` (``mlu_…``): the key itself, which only its issuer ever sees."""
    return api_token_create(user=user, name=name)[1]


def token_client(user) -> APIClient:
    """An API client sending a new API token of ``user``; it may do what ``user``'s permissions allow."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_key(user)}")
    return client


@pytest.fixture
def api(business_user) -> APIClient:
    """An API client authenticated with a token of alice, a business developer."""
    return token_client(business_user)


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()


TEST_IMPRESSIONS = 20_000


@pytest.fixture(scope="session")
def warehouse_path(tmp_path_factory):
    """A small demo warehouse (DuckDB) for this test session."""
    path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    build_demo_warehouse(path, impressions=TEST_IMPRESSIONS)
    return path


@pytest.fixture
def duck_source(db, warehouse_path):
    """The small demo warehouse as the data source ``demo``."""
    return datasource_create(name="demo", kind="duckdb", options={"path": str(warehouse_path)})


@pytest.fixture
def builtin_templates(db):
    return {t.slug: t for t in builtin_templates_sync()}


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (never a downloaded browser). Module-scoped: while Playwright's
    sync API is open, its event loop is the thread's running loop, which later asyncio tests must not see."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright  # only browser tests need it, and it is slow to import

    # While Playwright's sync API is open, an event loop is registered in this thread and Django refuses
    # ORM calls, even synchronous ones. Subprocesses that stand for a deployment drop this variable
    # (tests/test_settings.py).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def shots_dir(request) -> Path:
    """Where a browser test saves its screenshots, for a person to look at: var/screenshots/<test name>/."""
    directory = Path(settings.BASE_DIR) / "var" / "screenshots" / request.node.name
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.png"):
        old.unlink()
    return directory


@pytest.fixture
def admin_login(page, live_server):
    """Log a user into the admin through the login form; returns a function (user, password) → page."""

    def login(username: str, password: str):
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_selector("#site-name")
        return page

    return login


@pytest.fixture
def redis():
    """The raw Redis connection the app uses (the test's own database)."""
    return get_redis_connection("default")
