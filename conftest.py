"""Fixtures shared by every test: users, API clients, the built-in templates, a clean Redis."""

from __future__ import annotations

import pytest
from django_redis import get_redis_connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


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
    from apps.deploy.demo import business_group_sync

    user.groups.add(business_group_sync())
    return user


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def api(user) -> APIClient:
    """An API client authenticated with alice's token."""
    return token_client(user)


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()


@pytest.fixture
def builtin_templates(db):
    from apps.templates.services import builtin_templates_sync

    return {t.slug: t for t in builtin_templates_sync()}


@pytest.fixture
def redis():
    """The raw Redis connection the app uses (the test's own database)."""
    return get_redis_connection("default")
