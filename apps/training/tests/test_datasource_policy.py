"""Where data sources may point and what their options may hold: the rules of datasources/policy.py and
datasources/options.py, one case at a time (tests/security/test_datasources.py goes through the doors)."""

from __future__ import annotations

import configparser
import os

import duckdb
import pytest

from apps.training.datasources.duckdb_backend import DuckDBBackend
from apps.training.datasources.mysql_backend import SAFE_AUTH_FILE, SAFE_AUTH_GROUP, SAFE_AUTH_PLUGINS
from apps.training.datasources.options import options_problems, secret_like_keys
from apps.training.datasources.policy import (
    SourceRefused,
    datasource_problems,
    duckdb_path_allowed,
    host_allowed,
    password_env_allowed,
    tls_path_allowed,
)

HOSTS = ["127.0.0.1", "localhost", "::1", "*.internal.example.com", "10.20.0.0/16", "fd00::/8"]


@pytest.fixture
def hosts(settings):
    settings.MLAB_DATASOURCE_HOSTS = HOSTS


@pytest.mark.parametrize(
    "host, normalized",
    [
        ("127.0.0.1", "127.0.0.1"),
        ("LOCALHOST", "localhost"),
        ("localhost.", "localhost"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("db.internal.example.com", "db.internal.example.com"),
        ("a.b.internal.example.com", "a.b.internal.example.com"),
        ("10.20.3.4", "10.20.3.4"),
        ("fd12::5", "fd12::5"),
    ],
)
def test_allowed_hosts_match_names_patterns_addresses_and_ranges(hosts, host, normalized):
    assert host_allowed(host) == normalized


@pytest.mark.parametrize(
    "host",
    [
        "internal.example.com",  # the pattern asks for a name below it
        "evil.com",
        "internal.example.com.evil.com",
        "dbinternal.example.com",
        "10.21.0.1",
        "127.0.0.2",
        "169.254.169.254",  # the cloud metadata service
        "::ffff:127.0.0.1",  # an IPv4-mapped address is not the IPv4 one
        "2130706433",  # numbers a resolver reads as 127.0.0.1
        "127.1",
        "0x7f.1",
        "db.internal.example.com:3306",
        "db.internal.example.com/x",
        "",
        None,
        3306,
    ],
)
def test_other_hosts_are_refused_naming_the_setting(hosts, host):
    with pytest.raises(SourceRefused) as refused:
        host_allowed(host)
    assert refused.value.option == "host"


def test_a_refused_host_names_the_setting_and_the_source(hosts):
    with pytest.raises(SourceRefused, match="MLAB_DATASOURCE_HOSTS") as refused:
        host_allowed("evil.com", source="wh")
    assert str(refused.value).startswith("Data source 'wh': the host 'evil.com' is not one the server allows")


def test_the_default_hosts_are_the_loopback_ones_only():
    from mlabsite.settings import base

    if "MLAB_DATASOURCE_HOSTS" not in os.environ:
        assert base.MLAB_DATASOURCE_HOSTS == ["127.0.0.1", "localhost", "::1"]


def test_duckdb_paths_are_resolved_before_the_roots_are_checked(settings, tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    settings.MLAB_DUCKDB_ROOTS = [root]
    assert duckdb_path_allowed(str(root / "w.duckdb")) == (root / "w.duckdb").resolve()
    assert duckdb_path_allowed(str(root / "sub" / ".." / "w.duckdb")) == (root / "w.duckdb").resolve()
    (root / "link.duckdb").symlink_to(outside / "w.duckdb")
    (root / "linked-dir").symlink_to(outside, target_is_directory=True)
    for path in (
        outside / "w.duckdb",
        root / ".." / "outside" / "w.duckdb",
        root / "link.duckdb",
        root / "linked-dir" / "w.duckdb",
        "/etc/passwd",
        tmp_path / "root-sibling.duckdb",
    ):
        with pytest.raises(SourceRefused, match="MLAB_DUCKDB_ROOTS"):
            duckdb_path_allowed(str(path))
    (outside / "inside-link").symlink_to(root, target_is_directory=True)  # a link *into* a root is fine
    assert duckdb_path_allowed(str(outside / "inside-link" / "w.duckdb")) == (root / "w.duckdb").resolve()
    for bad in ("", "   ", "a\0b", None, 5):
        with pytest.raises(SourceRefused):
            duckdb_path_allowed(bad)


def test_a_root_given_through_a_symlink_is_resolved_too(settings, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    settings.MLAB_DUCKDB_ROOTS = [tmp_path / "alias"]
    assert duckdb_path_allowed(str(tmp_path / "real" / "w.duckdb"))


def test_the_production_default_root_is_var_only():
    from mlabsite.settings import base

    if "MLAB_DUCKDB_ROOTS" not in os.environ:
        assert base.MLAB_DUCKDB_ROOTS == [base.VAR_DIR]


def test_tls_files_must_lie_where_the_settings_allow(settings, tmp_path):
    (tmp_path / "tls").mkdir()
    (tmp_path / "ca-one.pem").touch()
    settings.MLAB_DATASOURCE_TLS_PATHS = [tmp_path / "tls", tmp_path / "ca-one.pem"]
    assert tls_path_allowed(str(tmp_path / "tls" / "ca.pem"), option="ssl_ca")
    assert tls_path_allowed(str(tmp_path / "ca-one.pem"), option="ssl_ca")  # a file configured explicitly
    for path in (tmp_path / "ca-two.pem", "/etc/passwd", tmp_path / "tls" / ".." / "ca-two.pem"):
        with pytest.raises(SourceRefused, match="MLAB_DATASOURCE_TLS_PATHS") as refused:
            tls_path_allowed(str(path), option="ssl_key")
        assert refused.value.option == "ssl_key" and "ssl_key" in str(refused.value)


@pytest.mark.parametrize("name", ["MLAB_DS_WAREHOUSE", "MLAB_DS_X1"])
def test_password_variables_start_with_mlab_ds(name):
    assert password_env_allowed(name) == name


@pytest.mark.parametrize(
    "name", ["DJANGO_SECRET_KEY", "MLAB_PAI_ACCESS_KEY_SECRET", "AWS_SECRET_ACCESS_KEY", "MLAB_DS_", "mlab_ds_x", "X-Y"]
)
def test_other_password_variables_are_refused(name):
    with pytest.raises(SourceRefused, match="MLAB_DS_") as refused:
        password_env_allowed(name)
    assert refused.value.option == "password_env"


@pytest.mark.parametrize(
    "kind, options",
    [
        ("duckdb", {"path": "var/w.duckdb"}),
        ("duckdb", {"path": "var/w.duckdb", "schema": "sales", "threads": 4}),
        ("mysql", {"database": "w"}),
        (
            "mysql",
            {
                "host": "db",
                "port": 3307,
                "user": "",
                "database": "w",
                "connect_timeout": 10,
                "ssl_mode": "verify_identity",
                "ssl_ca": "/etc/ssl/certs/ca.pem",
                "ssl_cert": "/x/c.pem",
                "ssl_key": "/x/k.pem",
            },
        ),
        ("maxcompute", {"project": "p", "tables": {"t": {"a": "bigint", "b": "decimal(10,2)", "c": "array<string>"}}}),
        ("hive", {"database": "dw", "tables": {"t": {"a": "string"}}}),
        ("hive", {}),
    ],
)
def test_options_of_each_kind_that_pass(kind, options):
    assert options_problems(kind, options) == []


@pytest.mark.parametrize(
    "kind, options, words",
    [
        ("duckdb", {}, "needs the option path"),
        ("duckdb", {"path": 7}, "path: expected a non-empty string"),
        ("duckdb", {"path": "w.duckdb", "threads": "4"}, "threads: expected an integer from 1 to 64"),
        ("duckdb", {"path": "w.duckdb", "threads": True}, "threads: expected an integer"),
        ("duckdb", {"path": "w.duckdb", "schema": "main; DROP"}, "schema: expected a name"),
        ("duckdb", {"path": "w.duckdb", "host": "x", "readonly": False}, "Unknown options for a duckdb source: host"),
        ("mysql", {"database": "w", "port": "3306"}, "port: expected an integer from 1 to 65535"),
        ("mysql", {"database": "w", "port": 70000}, "port: expected an integer from 1 to 65535"),
        ("mysql", {"database": "w", "connect_timeout": 0}, "connect_timeout: expected an integer from 1 to 300"),
        ("mysql", {"database": "w", "ssl_mode": "REQUIRED"}, "ssl_mode: expected one of disabled, preferred"),
        ("mysql", {"database": "w", "host": ["a", "b"]}, "host: expected a non-empty string"),
        ("mysql", {"database": "w", "hots": "db"}, "Unknown option for a mysql source: hots"),
        ("mysql", {"database": "w", "ssl_cert": "/c.pem"}, "ssl_cert and ssl_key go together"),
        ("mysql", {"database": "w", "ssl_mode": "disabled", "ssl_ca": "/c.pem"}, "ssl_mode is disabled, yet ssl_ca"),
        ("mysql", {"database": "w\nx"}, "database: expected a single line"),
        ("maxcompute", {"tables": []}, "tables: expected an object"),
        ("maxcompute", {"tables": {"t": {}}}, "at least one column"),
        ("maxcompute", {"tables": {"t;x": {"a": "int"}}}, "table 't;x' is not a name"),
        ("maxcompute", {"tables": {"t": {"a b": "int"}}}, "t.a b: not a name"),
        ("maxcompute", {"tables": {"t": {"a": "int; DROP TABLE x"}}}, "t.a: expected a column type"),
        ("maxcompute", {"tables": {"t": {"a": 5}}}, "t.a: expected a column type"),
        ("hive", {"schema": "x"}, "Unknown option for a hive source: schema"),
    ],
)
def test_options_that_fail_name_the_key(kind, options, words):
    assert words in " ".join(options_problems(kind, options))


def test_secret_looking_keys_are_found_at_any_depth():
    options = {
        "database": "w",
        "ssl": {"key_password": "x", "nested": [{"api-token": "y"}, {"fine": 1}]},
        "PASSWORD": "z",
        "tables": {"t": {"secret_col": "string"}},
    }
    assert list(secret_like_keys(options)) == [
        "ssl.key_password",
        "ssl.nested[0].api-token",
        "PASSWORD",
        "tables.t.secret_col",
    ]
    problems = options_problems("mysql", options)
    assert len(problems) == 1 and problems[0].startswith("Secrets do not belong in options (ssl.key_password, ")


def test_problems_are_reported_by_field(settings, tmp_path):
    settings.MLAB_DUCKDB_ROOTS = [tmp_path]
    assert datasource_problems(kind="duckdb", options={"path": str(tmp_path / "w.duckdb")}) == {}
    problems = datasource_problems(kind="duckdb", options={"path": "/etc/w.duckdb"}, password_env="HOME")
    assert "MLAB_DUCKDB_ROOTS" in problems["options"][0] and "MLAB_DS_" in problems["password_env"][0]
    assert (
        "MLAB_DATASOURCE_HOSTS"
        in datasource_problems(kind="mysql", options={"database": "w", "host": "x.org"})["options"][0]
    )
    assert datasource_problems(kind="nosuchkind", options={}) == {}  # the kind field says what is wrong


def test_the_safe_auth_option_file_lists_exactly_the_safe_plugins():
    parser = configparser.ConfigParser()
    parser.read(SAFE_AUTH_FILE)
    assert tuple(parser[SAFE_AUTH_GROUP]["restricted-auth"].split(",")) == SAFE_AUTH_PLUGINS


def test_duckdb_opens_with_external_access_off_and_its_configuration_locked(settings, tmp_path):
    settings.MLAB_DUCKDB_ROOTS = [tmp_path]
    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    with DuckDBBackend(name="w", options={"path": str(path)}).connect() as con:
        values = dict(
            con.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
                "'autoinstall_known_extensions', 'autoload_known_extensions', 'lock_configuration', 'access_mode')"
            ).fetchall()
        )
        assert values == {
            "enable_external_access": "false",
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
            "lock_configuration": "true",
            "access_mode": "read_only",
        }
        for statement in ("SET enable_external_access = true", "RESET lock_configuration", "SET threads = 8"):
            with pytest.raises(duckdb.Error, match="locked"):
                con.execute(statement)
        for statement in (
            f"SELECT * FROM read_csv('{tmp_path}/x.csv')",
            f"ATTACH '{tmp_path}/other.duckdb'",
            "INSTALL httpfs",
            "LOAD httpfs",
            f"COPY (SELECT 1) TO '{tmp_path}/out.csv'",
        ):
            with pytest.raises(duckdb.Error, match="disabled"):
                con.execute(statement)
