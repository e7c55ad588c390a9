"""Issue 11, items 3, 4 and 7: what a careless or hostile user tried with data sources, replayed through the
doors a user has (the admin, the API, runs, `mlab_demo`), against real DuckDB files and real sockets.

Item 3: a DuckDB file can hold views that read any file of the server or echo the access token.
Item 4: password_env and the MySQL host were an exfiltration and port-scanning oracle.
Item 7: options were not type-checked, and secret-looking keys were refused only at the top level.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import socket
import subprocess

import duckdb
import numpy as np
import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from apps.artifacts.storage import artifact_db_chunks
from apps.templates.services import template_create
from apps.training.models import DataSource, TrainingRun
from apps.training.services import datasource_create, datasource_sync
from apps.training.tests.runs_support import run_queued_jobs
from tests.security.fake_mysql import FakeMySQL

pytestmark = pytest.mark.django_db

TOKEN = "tok-Echo-Me-If-You-Can-91c2"
SERVER_SECRET = "SERVER-FILE-SECRET-5e1d"  # what a file outside the roots holds
PASSWORD = "Sup3r-Secret-Db-Pa55"  # a data source's password, in an MLAB_DS_ variable


# --- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture
def mysqlclient():
    """MySQL sources need mysqlclient, which the embedded default does not install: skip, saying why."""
    return pytest.importorskip("MySQLdb", reason="mysqlclient is not installed (pip install -r requirements-mysql.txt)")


@pytest.fixture
def roots(settings, tmp_path):
    """A warehouse directory the settings allow, and beside it an ``outside`` one they do not."""
    warehouses, outside = tmp_path / "warehouses", tmp_path / "outside"
    warehouses.mkdir(), outside.mkdir()
    settings.MLAB_DUCKDB_ROOTS = [warehouses]
    return warehouses, outside


def _orders(con, rows: int = 300) -> None:
    rng = np.random.default_rng(11)
    amount = rng.gamma(2.0, 30.0, rows)
    returned = (rng.random(rows) < 1 / (1 + np.exp(-(amount - 60) / 20))).astype(int)
    con.execute("CREATE TABLE orders_raw (order_id INTEGER, amount DOUBLE, category VARCHAR, returned INTEGER)")
    con.executemany(
        "INSERT INTO orders_raw VALUES (?, ?, ?, ?)",
        [(i, float(amount[i]), "abc"[i % 3], int(returned[i])) for i in range(rows)],
    )


@pytest.fixture
def hostile_warehouse(roots):
    """A real DuckDB file under the roots whose views read a file outside them and echo the session."""
    warehouses, outside = roots
    secret_file = outside / "orders.csv"
    secret_file.write_text(
        "order_id,amount,category,returned\n" + "".join(f"{i},{10 + i},{SERVER_SECRET},{i % 2}\n" for i in range(40))
    )
    path = warehouses / "hostile.duckdb"
    con = duckdb.connect(str(path))
    _orders(con)
    con.execute(f"CREATE VIEW stolen AS SELECT * FROM read_csv('{secret_file}')")
    con.execute(
        "CREATE VIEW echo AS SELECT o.*, "
        "CAST(getvariable('mlab_access_token') AS VARCHAR) AS echoed, "
        "CAST(getvariable('mlab_access_token_sha256') AS VARCHAR) AS echoed_digest FROM orders_raw o"
    )
    con.close()
    return datasource_create(name="hostile", kind="duckdb", options={"path": str(path)})


def orders_template(owner, *, table: str, categorical: list[str]):
    return template_create(
        slug=f"orders-{table}", name=f"Orders from {table}", task_type="binary", owner=owner, published=True,
        nodes=[
            {"key": "sample", "type": "sample.sql", "overrides": {
                "table": table, "label": "returned", "features": ["amount"], "categorical_features": categorical,
            }},
            {"key": "fill_missing", "type": "preprocess.fill_missing"},
            {"key": "one_hot", "type": "preprocess.one_hot"},
            {"key": "split", "type": "split"},
            {"key": "train", "type": "train.logistic_regression"},
            {"key": "evaluate", "type": "evaluate.binary"},
        ],
    )  # fmt: skip


def preview(api, template: str, datasource: str, params=None):
    body = {"template": template, "datasource": datasource, "params": params or {}}
    return api.post("/api/v1/runs/preview/", body, format="json")


def launch_and_run(api, template: str, datasource: str, params, capture) -> TrainingRun:
    with capture(execute=True):
        response = api.post(
            "/api/v1/runs/", {"template": template, "datasource": datasource, "params": params}, format="json"
        )
    assert response.status_code == 201, response.content
    run_queued_jobs()
    return TrainingRun.objects.get(pk=response.json()["id"])


def everything_kept_of(run: TrainingRun) -> str:
    events = list(run.events.values_list("message", flat=True))
    kept = [run.params, run.payload, run.sql, run.report, run.metrics, run.error, events]
    text = json.dumps(kept, default=str)
    if run.artifact_id:
        text += b"".join(artifact_db_chunks(run.artifact)).decode("latin-1")
    return text


def admin_add(client, **fields):
    """POST the admin's add form for a data source; returns (response, form errors by field)."""
    data = {"name": "new-source", "kind": "duckdb", "description": "", "options": "{}", "password_env": "", "owner": ""}
    data.update({k: json.dumps(v) if k == "options" else v for k, v in fields.items()})
    response = client.post(reverse("admin:training_datasource_add"), data)
    errors = response.context["adminform"].form.errors if response.status_code == 200 else {}
    return response, {field: " ".join(messages) for field, messages in errors.items()}


def grant(user, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="training", codename__in=codenames))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- item 3 --------------------------------------------------------------------------------------------------


def test_item3_a_view_over_a_server_file_shows_nothing_of_it_in_preview_or_a_run(
    api, user, hostile_warehouse, django_capture_on_commit_callbacks, caplog
):
    """Issue 11 item 3: a view over read_csv() of a file outside MLAB_DUCKDB_ROOTS showed the file's rows in
    Preview; DuckDB now runs with external access disabled, so Preview is a 400 and a run fails, plainly."""
    orders_template(user, table="stolen", categorical=["category"])
    response = preview(api, "orders-stolen", "hostile")
    assert response.status_code == 400, response.content
    assert "file system operations are disabled" in response.json()["datasource"][0]
    assert SERVER_SECRET not in response.content.decode()

    run = launch_and_run(api, "orders-stolen", "hostile", {}, django_capture_on_commit_callbacks)
    assert run.status == TrainingRun.Status.FAILED and "disabled" in run.error
    assert SERVER_SECRET not in everything_kept_of(run) and SERVER_SECRET not in caplog.text


def test_item3_a_getvariable_view_sees_only_the_digest_of_the_access_token(
    api, user, hostile_warehouse, django_capture_on_commit_callbacks, caplog
):
    """Issue 11 item 3: a getvariable() view echoed the secret access token in Preview; the session now holds
    only its SHA-256 (what a protected view compares with), so neither Preview nor a run ever shows it."""
    orders_template(user, table="echo", categorical=["category", "echoed", "echoed_digest"])
    response = preview(api, "orders-echo", "hostile", {"sample": {"access_token": TOKEN, "preview_rows": 5}})
    assert response.status_code == 200, response.content
    assert TOKEN not in response.content.decode()
    columns = [c["name"] for c in response.json()["columns"]]
    rows = [dict(zip(columns, row, strict=True)) for row in response.json()["rows"]]
    assert {(r["echoed"], r["echoed_digest"]) for r in rows} == {(None, hashlib.sha256(TOKEN.encode()).hexdigest())}

    # A run trained on the echo would carry the token in its model (the one-hot categories of "echoed"); the
    # view reads NULL there now, so the trainer refuses that all-empty column, and the token is nowhere.
    run = launch_and_run(
        api, "orders-echo", "hostile", {"sample": {"access_token": TOKEN}}, django_capture_on_commit_callbacks
    )
    assert run.status == TrainingRun.Status.FAILED and "'echoed' is empty in every row" in run.error
    assert TOKEN not in everything_kept_of(run) and TOKEN not in caplog.text


def test_item3_files_outside_the_roots_are_refused_when_saved_and_when_opened(
    admin_client, api, roots, builtin_templates
):
    """Issue 11 item 3: a source's DuckDB file must lie under MLAB_DUCKDB_ROOTS, symlinks and ".." resolved,
    refused naming the option both when the source is saved (admin, services) and when it is opened."""
    warehouses, outside = roots
    duckdb.connect(str(outside / "elsewhere.duckdb")).close()
    (warehouses / "link.duckdb").symlink_to(outside / "elsewhere.duckdb")
    for path in (outside / "elsewhere.duckdb", warehouses / "link.duckdb", warehouses / ".." / "outside" / "x.duckdb"):
        response, errors = admin_add(admin_client, kind="duckdb", options={"path": str(path)})
        assert "MLAB_DUCKDB_ROOTS" in errors.get("options", ""), (path, errors)
        with pytest.raises(ValidationError) as refused:
            datasource_create(name="elsewhere", kind="duckdb", options={"path": str(path)})
        assert "MLAB_DUCKDB_ROOTS" in refused.value.message_dict["options"][0]
    assert not DataSource.objects.exists()

    # A row written before the rule (or around the model) is refused when it is opened.
    DataSource.objects.create(name="elsewhere", kind="duckdb", options={"path": str(warehouses / "link.duckdb")})
    response = preview(api, "binary-lr", "elsewhere")
    assert response.status_code == 400 and "MLAB_DUCKDB_ROOTS" in response.json()["datasource"][0]
    response = api.get("/api/v1/datasources/elsewhere/tables/")
    assert response.status_code == 400 and "MLAB_DUCKDB_ROOTS" in response.json()["datasource"][0]


def test_item3_mlab_demo_refuses_a_warehouse_outside_the_roots(settings, roots):
    """Issue 11 item 3, through the management command: the demo warehouse registers only under the roots."""
    _, outside = roots
    settings.MLAB_WAREHOUSE_PATH = outside / "warehouse.duckdb"
    with pytest.raises(CommandError, match="MLAB_DUCKDB_ROOTS"):
        call_command("mlab_demo", "--impressions", "1000", stdout=io.StringIO())
    assert not DataSource.objects.exists()


# --- item 4 --------------------------------------------------------------------------------------------------


def test_item4_password_env_must_name_an_mlab_ds_variable(
    admin_client, api, builtin_templates, monkeypatch, mysqlclient
):
    """Issue 11 item 4: password_env could name any environment variable (DJANGO_SECRET_KEY, a cloud key) and
    its value went to whatever host the source named. It must start with MLAB_DS_: a field error on
    password_env when saved, and a refusal before any connection when a row saved around the model is used."""
    for name in ("DJANGO_SECRET_KEY", "MLAB_PAI_ACCESS_KEY_SECRET", "HOME"):
        _, errors = admin_add(admin_client, kind="mysql", options={"database": "w"}, password_env=name)
        assert "MLAB_DS_" in errors.get("password_env", ""), errors
        with pytest.raises(ValidationError) as refused:
            datasource_create(name="x", kind="mysql", options={"database": "w"}, password_env=name)
        assert "MLAB_DS_" in refused.value.message_dict["password_env"][0]
    assert not DataSource.objects.exists()
    _, errors = admin_add(admin_client, kind="mysql", options={"database": "w"}, password_env="MLAB_DS_WAREHOUSE")
    assert errors == {} and DataSource.objects.get().password_env == "MLAB_DS_WAREHOUSE"

    monkeypatch.setenv("MLAB_PAI_ACCESS_KEY_SECRET", PASSWORD)
    with FakeMySQL(auth_plugin="mysql_clear_password") as server:
        DataSource.objects.create(
            name="exfil",
            kind="mysql",
            options={"host": "127.0.0.1", "port": server.port, "database": "w"},
            password_env="MLAB_PAI_ACCESS_KEY_SECRET",
        )
        response = preview(api, "binary-lr", "exfil")
    assert response.status_code == 400 and "MLAB_DS_" in response.json()["datasource"][0]
    assert server.connections == 0 and PASSWORD.encode() not in server.received


def test_item4_hosts_outside_the_allow_list_are_never_contacted(
    admin_client, api, settings, builtin_templates, mysqlclient
):
    """Issue 11 item 4: a source's host must match MLAB_DATASOURCE_HOSTS (names, *. patterns, CIDR ranges),
    checked when it is saved and again before any connection."""
    settings.MLAB_DATASOURCE_HOSTS = ["localhost", "*.db.internal.example.com", "10.20.0.0/16"]
    for host in ("127.0.0.1", "db.evil.example.com", "10.21.0.5", "169.254.169.254"):
        _, errors = admin_add(admin_client, kind="mysql", options={"host": host, "database": "w"})
        assert "MLAB_DATASOURCE_HOSTS" in errors.get("options", ""), (host, errors)
    for host in ("a.db.internal.example.com", "10.20.3.4", "localhost"):
        _, errors = admin_add(
            admin_client, name=f"ok-{host.replace('.', '-')}", kind="mysql", options={"host": host, "database": "w"}
        )
        assert errors == {}, (host, errors)

    with FakeMySQL() as server:
        DataSource.objects.create(
            name="scanner", kind="mysql", options={"host": "127.0.0.1", "port": server.port, "database": "w"}
        )
        response = preview(api, "binary-lr", "scanner")
        tables = api.get("/api/v1/datasources/scanner/tables/")
    for answer in (response, tables):
        assert answer.status_code == 400 and "MLAB_DATASOURCE_HOSTS" in answer.json()["datasource"][0]
    assert server.connections == 0


def test_item4_mlab_demo_mysql_checks_the_host_before_copying(settings, tmp_path, mysqlclient):
    """Issue 11 item 4, through the management command: `mlab_demo --mysql URL` validates the source before it
    sends a single row (or a password) to the URL's host."""
    settings.MLAB_WAREHOUSE_PATH = tmp_path / "warehouse.duckdb"
    settings.MLAB_DATASOURCE_HOSTS = ["db.internal.example.com"]
    with FakeMySQL() as server, pytest.raises(CommandError, match="MLAB_DATASOURCE_HOSTS"):
        call_command(
            "mlab_demo", "--impressions", "1000", "--mysql", f"mysql://root@127.0.0.1:{server.port}/wh",
            stdout=io.StringIO(),
        )  # fmt: skip
    assert server.connections == 0 and not DataSource.objects.filter(kind="mysql").exists()


def test_item4_refresh_says_the_same_for_a_closed_port_an_open_one_and_a_refusing_server(api, user, mysqlclient):
    """Issue 11 item 4: the refresh endpoint told closed ports from open ones (error 2003 vs 2013 vs 1045). A
    failed connection now reads the same whatever the cause; the cause goes to the server log only."""
    grant(user, "view_datasource", "change_datasource")
    messages = {}
    with FakeMySQL(banner=True) as not_mysql, FakeMySQL() as refusing:
        for name, port in (("closed", closed_port()), ("not-mysql", not_mysql.port), ("refusing", refusing.port)):
            DataSource.objects.create(
                name=name, kind="mysql", options={"host": "127.0.0.1", "port": port, "database": "w"}
            )
            response = api.get(f"/api/v1/datasources/{name}/tables/?refresh=1")
            assert response.status_code == 400, response.content
            messages[name] = (
                response.json()["datasource"][0].replace(f"'{name}'", "NAME").replace(f":{port}/", ":PORT/")
            )
    assert len(set(messages.values())) == 1, messages
    assert not re.search(r"\b(2003|2013|1045|refused \(|Lost connection|Access denied)\b", messages["closed"])


@pytest.mark.parametrize("plugin", ["mysql_clear_password", "dialog", "mysql_old_password"])
def test_item4_unsafe_auth_plugins_are_refused_without_tls(api, builtin_templates, monkeypatch, mysqlclient, plugin):
    """Issue 11 item 4: a server (or whatever answers at the host) could ask for mysql_clear_password and get
    the password in clear text. Without verified TLS the client now refuses that plugin, PAM's dialog and
    mysql_old_password before it sends anything, and says why."""
    monkeypatch.setenv("MLAB_DS_TEST_PASSWORD", PASSWORD)
    with FakeMySQL(auth_plugin=plugin) as server:
        for mode in (None, "disabled", "preferred", "required"):
            options = {"host": "127.0.0.1", "port": server.port, "database": "w", "user": "u"}
            DataSource.objects.update_or_create(
                name="cleartext",
                defaults={"kind": "mysql", "password_env": "MLAB_DS_TEST_PASSWORD",
                          "options": {**options, **({"ssl_mode": mode} if mode else {})}},
            )  # fmt: skip
            response = preview(api, "binary-lr", "cleartext")
            assert PASSWORD.encode() not in server.received, mode
            assert response.status_code == 400
            assert "verify_identity" in response.json()["datasource"][0], (mode, response.json())
    assert server.connections == 4


@pytest.fixture
def tls_files(settings, tmp_path):
    """A self-signed certificate for 127.0.0.1 (the fake server's) and its key, under an allowed TLS path."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    tls = tmp_path / "tls"
    tls.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tls / "key.pem"), "-out", str(tls / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    settings.MLAB_DATASOURCE_TLS_PATHS = [tls]
    return tls / "cert.pem", tls / "key.pem"


def test_item4_tls_options_are_supported_and_a_clear_text_plugin_goes_only_inside_verified_tls(
    admin_client, api, builtin_templates, monkeypatch, tmp_path, tls_files, mysqlclient
):
    """Issue 11 item 4: TLS options (ssl_mode, ssl_ca, ssl_cert, ssl_key) are supported; over TLS the client
    verifies (ssl_mode verify_identity, the CA from ssl_ca) the clear-text plugin is allowed, and the password
    travels only inside TLS. A CA file outside MLAB_DATASOURCE_TLS_PATHS is refused."""
    cert, key = tls_files
    monkeypatch.setenv("MLAB_DS_TEST_PASSWORD", PASSWORD)
    (tmp_path / "elsewhere.pem").write_bytes(cert.read_bytes())
    _, errors = admin_add(
        admin_client,
        kind="mysql",
        options={"database": "w", "ssl_mode": "verify_ca", "ssl_ca": str(tmp_path / "elsewhere.pem")},
    )
    assert "MLAB_DATASOURCE_TLS_PATHS" in errors.get("options", ""), errors

    with FakeMySQL(auth_plugin="mysql_clear_password", certificate=(str(cert), str(key))) as server:
        options = {"host": "127.0.0.1", "port": server.port, "database": "w", "user": "u"}
        tls_options = {**options, "ssl_mode": "verify_identity", "ssl_ca": str(cert)}
        _, errors = admin_add(
            admin_client, name="tls", kind="mysql", options=tls_options, password_env="MLAB_DS_TEST_PASSWORD"
        )
        assert errors == {}
        response = preview(api, "binary-lr", "tls")
    assert response.status_code == 400  # the fake server refuses the login, after reading the password
    assert PASSWORD.encode() in server.after_tls and PASSWORD.encode() not in server.before_tls

    with FakeMySQL(auth_plugin="mysql_clear_password") as plain:  # verified TLS asked for, none offered
        DataSource.objects.filter(name="tls").update(options={**tls_options, "port": plain.port})
        response = preview(api, "binary-lr", "tls")
    assert response.status_code == 400 and PASSWORD.encode() not in plain.received


def test_item4_refreshing_a_schema_needs_the_change_permission(client, api, user, business_user, duck_source):
    """Issue 11 item 4: refreshing a schema makes Mlab connect on demand, so it needs the change permission on
    data sources (admin view and action, ?refresh=1): 403 otherwise. Reading the cached schema needs view."""
    client.force_login(business_user)  # a business developer: view_datasource only
    refresh_url = reverse("admin:training_datasource_refresh", args=[duck_source.pk])
    assert client.post(refresh_url).status_code == 403
    changelist = client.get(reverse("admin:training_datasource_changelist"))
    assert changelist.status_code == 200 and "refresh_schema" not in changelist.content.decode()
    page = client.get(reverse("admin:training_datasource_change", args=[duck_source.pk]))
    assert (
        page.status_code == 200
        and "impressions" in page.content.decode()
        and "Refresh schema" not in page.content.decode()
    )
    assert api.get("/api/v1/datasources/demo/tables/?refresh=1").status_code == 403
    assert api.get("/api/v1/datasources/demo/tables/").status_code == 200

    grant(user, "change_datasource")
    assert api.get("/api/v1/datasources/demo/tables/?refresh=1").status_code == 200
    response = client.post(refresh_url, follow=True)
    assert response.status_code == 200 and "Introspected 3 tables of demo." in response.content.decode()


# --- item 7 --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, options, named",
    [
        ("mysql", {"database": "w", "port": "3306"}, "port: expected an integer"),
        ("mysql", {"database": "w", "hots": "db"}, "Unknown option for a mysql source: hots"),
        ("mysql", {"database": "w", "ssl_mode": "sometimes"}, "ssl_mode: expected one of"),
        ("duckdb", {"path": "w.duckdb", "threads": "many", "read_only": False}, "threads: expected an integer"),
        ("duckdb", {"path": "w.duckdb", "read_only": False}, "Unknown option for a duckdb source: read_only"),
        ("maxcompute", {"project": "p", "tables": {"t": ["a", "b"]}}, "tables: table 't': expected an object"),
        (
            "mysql",
            {"database": "w", "ssl": {"key_password": "x"}},
            "Secrets do not belong in options (ssl.key_password)",
        ),
        ("hive", {"tables": {"t": {"a": "string"}}, "conn": [{"Api-Token": "x"}]}, "(conn[0].Api-Token)"),
    ],
)
def test_item7_options_are_checked_against_the_kind_and_secrets_at_any_depth(admin_client, kind, options, named):
    """Issue 11 item 7: options are validated per kind (known keys and their types, unknown keys named), and
    a secret-looking key is refused at any depth, naming its path, in the admin and the services alike."""
    _, errors = admin_add(admin_client, kind=kind, options=options)
    assert named in errors.get("options", ""), errors
    with pytest.raises(ValidationError) as refused:
        datasource_create(name="checked", kind=kind, options=options)
    assert named in " ".join(refused.value.message_dict["options"])
    with pytest.raises(ValidationError) as refused:
        datasource_sync(name="checked", kind=kind, options=options)
    assert named in " ".join(refused.value.message_dict["options"])
    assert not DataSource.objects.exists()
