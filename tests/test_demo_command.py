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


def test_demo_builds_the_warehouse_once_and_registers_the_demo_source(settings, tmp_path, client):
    from apps.training.models import DataSource

    settings.MLAB_WAREHOUSE_PATH = tmp_path / "warehouse.duckdb"
    out = io.StringIO()
    call_command("mlab_demo", "--impressions", "5000", stdout=out)
    assert "Demo warehouse built" in out.getvalue() and "5,000 impressions" in out.getvalue()
    source = DataSource.objects.get(name="demo")
    assert source.engine == "duckdb" and source.options == {"path": str(settings.MLAB_WAREHOUSE_PATH)}
    again = io.StringIO()
    call_command("mlab_demo", "--impressions", "9000", stdout=again)
    assert "Demo warehouse kept" in again.getvalue() and DataSource.objects.count() == 1
    assert client.login(username="demo", password="mlab-demo")
    page = client.get(f"/admin/training/datasource/{source.pk}/change/")
    assert page.status_code == 200 and "impressions" in page.content.decode()
