"""SQL injection attempts in every field of the sample node, run against DuckDB and MariaDB.

Each attack is either refused with a field error, or runs and returns exactly what the same query with a
harmless value returns; afterwards every table is still there with all its rows.
"""

from __future__ import annotations

import pytest

from apps.templates.validation import RunParamsInvalid
from apps.training.datasources import backend_for
from apps.training.launch import prepare_launch
from apps.training.selectors import sample_fetch

pytestmark = pytest.mark.django_db

# OWASP SQL injection cheat-sheet patterns, quote and comment tricks, stacked queries, Unicode look-alikes.
CORPUS = [
    "' OR '1'='1",
    "' OR 1=1 --",
    "' OR 1=1 #",
    '" OR ""="',
    "') OR ('1'='1",
    "1' OR '1'='1' /*",
    "admin'--",
    "' UNION SELECT user_id, age, gender FROM users --",
    "1 UNION ALL SELECT NULL,NULL,NULL--",
    "'; DROP TABLE impressions; --",
    "1; DROP TABLE users",
    "'); DELETE FROM items; --",
    "x'; UPDATE impressions SET clicked = 1; --",
    "' AND SLEEP(5) --",
    "1 AND (SELECT COUNT(*) FROM information_schema.tables) > 0",
    "'||(SELECT version())||'",
    "' + (SELECT 1) + '",
    "\\'; DROP TABLE users; --",
    "\\\\' OR 1=1 -- ",
    "%' OR '%'='",
    "_%",
    "tier1' /*",
    "*/ OR 1=1 /*",
    "\x00' OR 1=1",
    "\u02bc OR 1=1 --",  # modifier letter apostrophe
    "\uff07 OR 1=1 --",  # fullwidth apostrophe
    "\u2019; DROP TABLE impressions; --",  # right single quotation mark
    "\uff53\uff45\uff4c\uff45\uff43\uff54 1",  # fullwidth "select"
    "ｔｉｅｒ1",
    "clіcked",  # Cyrillic і
    "`users`",
    '"users"',
    "users; DROP TABLE items",
    "impressions--",
    "ds) OR (1=1",
    "0x27204f5220313d31",
    "CHAR(39)+CHAR(79)",
    "1e308",
    "$$; DROP TABLE users; $$",
]
BENIGN = "zz-benign-value"
TABLES = ("impressions", "users", "items")
ONE_DAY = {"date_from": "2026-10-07", "date_to": "2026-10-07"}

# Where each field's value goes in the params of the sample node; the text ones become literals.
SCALAR_FIELDS = ["table", "label", "positive_value", "partition_column", "date_from", "date_to", "access_token"]
LIST_FIELDS = ["features", "categorical_features", "sample_key"]


def attacked_params(field: str, attack: str) -> list[dict]:
    """Every way ``attack`` can be put in ``field`` of the sample node."""
    if field in SCALAR_FIELDS:
        return [{field: attack}]
    if field in LIST_FIELDS:
        return [{field: [attack]}]
    if field == "joins":
        return [{"joins": [{"table": attack, "on": "user_id"}]}, {"joins": [{"table": "users", "on": attack}]}]
    if field == "filters":
        return [
            {"filters": [{"column": attack, "op": "=", "value": "x"}]},
            {"filters": [{"column": "city_tier", "op": "=", "value": attack}]},
            {"filters": [{"column": "city_tier", "op": "!=", "value": attack}]},
            {"filters": [{"column": "gender", "op": "like", "value": attack}]},
            {"filters": [{"column": "category", "op": "in", "value": [attack, "books"]}]},
            {"filters": [{"column": "category", "op": "not in", "value": [attack]}]},
            {"filters": [{"column": "age", "op": ">", "value": attack}]},
            {"filters": [{"column": "ds", "op": "between", "value": [attack, "2026-10-09"]}]},
            {"filters": [{"column": "city_tier", "op": attack, "value": "x"}]},
        ]
    return [{field: attack}]  # numbers: limit, negative_ratio, preview_rows, chunk_rows, timeout_seconds


def benign_of(params: dict, attack: str) -> dict:
    """The same params with the attack replaced by a harmless value of the same shape (and kind: an attack
    that reads as a number, like 1e308, is replaced by another number that matches nothing)."""
    try:
        float(attack)
        harmless = "987654321"
    except ValueError:
        harmless = BENIGN

    def swap(value):
        if value == attack:
            return harmless
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return value

    return swap(params)


ALL_FIELDS = SCALAR_FIELDS + LIST_FIELDS + ["joins", "filters", "limit", "negative_ratio", "chunk_rows"]


def table_counts(source) -> dict:
    engine = backend_for(source)
    return {t: engine.count(f"SELECT COUNT(*) FROM {t}", timeout=30) for t in TABLES}


def run_corpus(template, source) -> tuple[int, int]:
    """Returns (refused, ran) counts after checking every attack."""
    before = table_counts(source)
    results: dict[str, tuple] = {}
    refused = ran = 0

    def result_of(params):
        prepared = prepare_launch(
            template=template, params={"sample": {**ONE_DAY, **params}}, datasource=source, engine="local"
        )
        data = sample_fetch(prepared=prepared)
        return (len(data), data.label.tobytes(), *(v.tobytes() for v in data.numeric.values()))

    for field in ALL_FIELDS:
        for attack in CORPUS:
            for params in attacked_params(field, attack):
                try:
                    outcome = result_of(params)
                except RunParamsInvalid as invalid:
                    errors = invalid.errors["sample"]
                    named = params.keys() & errors.keys()
                    assert named, (params, errors)  # the error names the attacked field
                    refused += 1
                    continue
                ran += 1
                benign = benign_of(params, attack)
                key = repr(benign)
                if key not in results:
                    results[key] = result_of(benign)
                assert outcome == results[key], params
    assert table_counts(source) == before
    return refused, ran


@pytest.fixture
def open_template(db):
    """The click template without locks, so that table, label and positive value reach the SQL builder."""
    from apps.templates.builtins import BUILTIN_TEMPLATES
    from apps.templates.services import template_create

    nodes = [dict(n, locked=[]) for n in BUILTIN_TEMPLATES[0]["nodes"]]
    return template_create(slug="open-lr", name="Open LR", task_type="binary", nodes=nodes)


def test_injection_corpus_against_duckdb(open_template, duck_source):
    refused, ran = run_corpus(open_template, duck_source)
    assert refused > 300 and ran > 100  # both outcomes are exercised


def test_injection_corpus_against_mariadb(open_template, mysql_source):
    refused, ran = run_corpus(open_template, mysql_source)
    assert refused > 300 and ran > 100


def test_an_attack_in_a_text_filter_is_matched_as_plain_text(builtin_templates, duck_source, mysql_source):
    """A value that exists in the data, wrapped in quote tricks, matches nothing instead of everything."""
    for source in (duck_source, mysql_source):
        for attack in ("tier1' OR '1'='1", "tier1\\' OR 1=1 -- ", "tier1\u02bc OR 1=1"):
            prepared = prepare_launch(
                template=builtin_templates["binary-lr"],
                params={"sample": {**ONE_DAY, "filters": [{"column": "city_tier", "op": "=", "value": attack}]}},
                datasource=source,
                engine="local",
            )
            assert len(sample_fetch(prepared=prepared)) == 0
