"""`mlab_demo` sets up the demo idempotently and prints how to get in."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from apps.templates.models import AlgorithmTemplate, TemplateNode

pytestmark = pytest.mark.django_db


def _run() -> str:
    out = io.StringIO()
    call_command("mlab_demo", stdout=out)
    return out.getvalue()


def test_demo_is_idempotent_and_prints_credentials_and_token(client):
    first = _run()
    counts = (AlgorithmTemplate.objects.count(), TemplateNode.objects.count(), get_user_model().objects.count())
    second = _run()
    assert counts == (AlgorithmTemplate.objects.count(), TemplateNode.objects.count(), get_user_model().objects.count())
    token = Token.objects.get(user__username="demo").key
    assert token in first and token in second
    assert "'demo'" in first and "'mlab-demo'" in first
    assert client.login(username="demo", password="mlab-demo")
    assert client.get("/admin/algo_templates/algorithmtemplate/").status_code == 200
