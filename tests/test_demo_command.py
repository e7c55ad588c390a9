"""`mlab_demo` sets up the demo idempotently and prints how to get in."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import RequestFactory
from rest_framework.test import APIClient

from apps.templates.models import AlgorithmTemplate, TemplateNode
from apps.training.models import TrainingRun
from mlabsite.models import ApiToken
from tests.live import ROOT, process_env

pytestmark = pytest.mark.django_db


def _run() -> str:
    out = io.StringIO()
    call_command("mlab_demo", "--impressions", "5000", stdout=out)
    return out.getvalue()


def test_demo_is_idempotent_and_prints_credentials_and_token(client, settings, tmp_path):
    settings.MLAB_WAREHOUSE_PATH = tmp_path / "warehouse.duckdb"  # small: mlab_demo trains two models on it
    first = _run()
    counts = (AlgorithmTemplate.objects.count(), TemplateNode.objects.count(), get_user_model().objects.count())
    second = _run()
    assert counts == (AlgorithmTemplate.objects.count(), TemplateNode.objects.count(), get_user_model().objects.count())
    # Tokens are stored as digests: each run prints a new one and revokes the one before.
    first_key, second_key = (re.search(r"Authorization: Token (\S+)'", out)[1] for out in (first, second))
    assert first_key != second_key and ApiToken.objects.filter(user__username="demo", name="demo").count() == 1
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {first_key}")
    assert api.get("/api/v1/templates/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Token {second_key}")
    assert api.get("/api/v1/templates/").status_code == 200
    assert "'demo'" in first and "'mlab-demo'" in first
    # django-axes watches password logins: authenticate() needs the request
    assert client.login(request=RequestFactory().post("/admin/login/"), username="demo", password="mlab-demo")
    assert client.get("/admin/algo_templates/algorithmtemplate/").status_code == 200


def test_demo_builds_the_warehouse_once_and_registers_the_demo_source(settings, tmp_path, client):
    from apps.training.models import DataSource

    settings.MLAB_WAREHOUSE_PATH = tmp_path / "warehouse.duckdb"
    out = io.StringIO()
    call_command("mlab_demo", "--impressions", "5000", stdout=out)
    assert "Demo warehouse built" in out.getvalue() and "5,000 impressions" in out.getvalue()
    source = DataSource.objects.get(name="demo")
    assert source.kind == "duckdb" and source.options == {"path": str(settings.MLAB_WAREHOUSE_PATH)}
    again = io.StringIO()
    call_command("mlab_demo", "--impressions", "9000", stdout=again)
    assert "Demo warehouse kept" in again.getvalue() and DataSource.objects.count() == 1
    assert client.login(request=RequestFactory().post("/admin/login/"), username="demo", password="mlab-demo")
    page = client.get(f"/admin/training/datasource/{source.pk}/change/")
    assert page.status_code == 200 and "impressions" in page.content.decode()


def test_demo_mysql_copies_the_warehouse_and_registers_the_source(settings, tmp_path):
    MySQLdb = pytest.importorskip("MySQLdb", reason="mysqlclient is not installed")
    from apps.demo.warehouse import build_demo_warehouse
    from apps.training.datasources import backend_for
    from apps.training.models import DataSource

    try:
        MySQLdb.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=3).close()
    except MySQLdb.OperationalError as exc:
        pytest.skip(f"MariaDB/MySQL at 127.0.0.1:3306 is unreachable: {exc}")
    settings.MLAB_WAREHOUSE_PATH = tmp_path / "warehouse.duckdb"
    build_demo_warehouse(settings.MLAB_WAREHOUSE_PATH, impressions=2000)
    database = f"mlab_test_wh_cmd_{uuid.uuid4().hex[:8]}"
    try:
        out = io.StringIO()
        call_command("mlab_demo", "--mysql", f"mysql://root@127.0.0.1:3306/{database}", stdout=out)
        assert "data source 'demo-mysql'" in out.getvalue()
        source = DataSource.objects.get(name="demo-mysql")
        assert source.options["database"] == database and source.password_env == ""
        counts = {
            t: backend_for(source).count(f"SELECT COUNT(*) FROM {t}", timeout=30) for t in ("impressions", "users")
        }
        assert counts == {"impressions": 2000, "users": 200}
    finally:
        con = MySQLdb.connect(host="127.0.0.1", port=3306, user="root")
        con.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
        con.close()


def test_demo_mysql_with_an_unreachable_server_is_a_clear_error(settings, tmp_path):
    from django.core.management.base import CommandError

    settings.MLAB_WAREHOUSE_PATH = tmp_path / "warehouse.duckdb"
    with pytest.raises(CommandError, match="Could not load the demo warehouse into MySQL"):
        call_command(
            "mlab_demo", "--impressions", "1000", "--mysql", "mysql://root@127.0.0.1:1/x", stdout=io.StringIO()
        )


def test_the_loop_needs_the_demo_set_up_first():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="run `manage.py mlab_demo` first"):
        call_command("mlab_demo", "--loop", stdout=io.StringIO())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # committed as `make pai-demo` commits: the run's job is enqueued on commit
def test_the_pai_demo_trains_one_run_through_the_emulator_and_its_oss(settings, tmp_path):
    settings.MLAB_WAREHOUSE_PATH = tmp_path / "warehouse.duckdb"
    out = io.StringIO()
    call_command("mlab_demo", "--pai", "--impressions", "5000", stdout=out)
    text = out.getvalue()
    run = TrainingRun.objects.get(engine="pai")
    assert run.status == "succeeded" and run.artifact_id
    assert f"Run {run.pk} succeeded on PAI (the emulator)" in text
    assert f"sample:      oss://mlab-emulator/mlab/runs/{run.pk}/input/sample.npz" in text
    assert run.external_state["input_uri"].startswith("oss://") and "AlgorithmSpec" not in text


def test_demo_mysql_names_the_new_password_variable_when_given_the_old_one(settings, tmp_path, monkeypatch):
    """Data-source passwords come only from MLAB_DS_ variables: the old name is refused, naming the new one."""
    from django.core.management.base import CommandError

    settings.MLAB_WAREHOUSE_PATH = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("MLAB_DEMO_MYSQL_PASSWORD", "pw")
    monkeypatch.delenv("MLAB_DS_DEMO_MYSQL_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="now called MLAB_DS_DEMO_MYSQL_PASSWORD"):
        call_command("mlab_demo", "--impressions", "1000", "--mysql", stdout=io.StringIO())


def test_the_demo_loop_s_process_does_not_load_the_trainer():
    """`make run` starts `mlab_demo --loop` in a process of its own once the server answers; it only predicts,
    so it must not pay the trainer's imports (scikit-learn, LightGBM, onnx: about 2.5 s of the ≤ 30 s that
    `make run` may take, measured by scripts/time-make-run)."""
    probe = (
        "import sys, django; django.setup()\n"
        "import apps.demo.management.commands.mlab_demo, apps.demo.loop\n"
        "print(sorted(m for m in ('sklearn', 'lightgbm', 'onnx', 'skl2onnx', 'apps.training.trainer') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=process_env(), capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]", out
