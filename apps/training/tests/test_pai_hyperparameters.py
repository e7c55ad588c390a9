"""A training payload as PAI hyper-parameters and back: names, string values, exact round trip, no secrets."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.templates.nodes import ParamError, registry
from apps.templates.schema import param_schema
from apps.templates.tests.schema_strategies import from_schema
from apps.training.pai.hyperparameters import (
    PLAN_NAME,
    HyperParameterError,
    decode_value,
    encode_value,
    from_hyperparameters,
    to_hyperparameters,
)

from .pai_support import BUILTIN_SLUGS, template_payload

SECRET = "tok-pai-must-never-see-this"
CHANGED = {
    "sample": {
        "filters": [
            {"column": "age", "op": ">=", "value": 18},
            {"column": "city_tier", "op": "in", "value": ["1", "2"]},
            {"column": "discount", "op": "is null"},
            {"column": "category", "op": "like", "value": "shoe, 50%"},
        ],
        "date_from": "2024-01-01",
        "date_to": "2024-01-31",
        "limit": 5000,
        "negative_ratio": 0.25,
        "access_token": SECRET,
        "preview_rows": 50,
    },
    "fill_missing": {"numeric_strategy": "constant", "numeric_fill_value": -1.5, "categorical_fill_value": "n/a, none"},
    "split": {"stratify": False, "seed": 7, "test_ratio": 0.3},
}
TRAIN_CHANGES = {
    "binary-lr": {"maxIter": 250, "epsilon": 1e-7, "regularizedType": "l1", "coreNum": 8, "memSizePerCore": 4096},
    "binary-gbdt": {"treeCount": 30, "shrinkage": 0.05, "l1": 0.5},
    "binary-rf": {"treeNum": 12, "randomColNum": 3},
    "regression-linear": {"regularizedType": "l2", "regularizedLevel": 0.01},
}

pytestmark = pytest.mark.django_db


def _changed(slug):
    params = copy.deepcopy(CHANGED)
    params["train"] = TRAIN_CHANGES[slug]
    if slug == "regression-linear":
        params["sample"].pop("negative_ratio")  # the items table has no ds partition; keep the window anyway
        params["sample"].update(partition_column="item_id", date_from=None, date_to=None)
    return params


@pytest.mark.parametrize("slug", BUILTIN_SLUGS)
@pytest.mark.parametrize("variant", ["defaults", "changed"])
def test_round_trip_is_exact_for_every_builtin_template(builtin_templates, slug, variant):
    payload = template_payload(builtin_templates[slug], _changed(slug) if variant == "changed" else None)
    items = to_hyperparameters(payload)
    assert all(isinstance(i["Name"], str) and isinstance(i["Value"], str) for i in items)
    assert from_hyperparameters(items) == payload
    # In the container PAI hands them over as hyperparameters.json: one object of strings.
    as_file = json.loads(json.dumps({i["Name"]: i["Value"] for i in items}))
    assert from_hyperparameters(as_file) == payload


def test_names_are_pai_names_where_pai_has_them(builtin_templates):
    values = {i["Name"]: i["Value"] for i in to_hyperparameters(template_payload(builtin_templates["binary-lr"]))}
    assert values["labelColName"] == "clicked"
    assert values["goodValue"] == "1"
    assert values["featureColNames"] == "age,signup_days,is_vip,price,seller_rating,discount,position,hour"
    assert values["categoricalColNames"] == "gender,city_tier,category"
    assert values["randomSeed"] == "42"
    assert values["maxIter"] == "100"
    assert values["regularizedType"] == "l2"
    assert values["regularizedLevel"] == "1.0"
    assert values["epsilon"] == "1e-06"
    # Mlab's private plan is one JSON hyper-parameter; only PAI's own names travel on their own.
    plan = json.loads(values[PLAN_NAME])
    assert not any("." in name for name in values)
    assert plan["params"]["fill_missing.numeric_strategy"] == "median"
    assert plan["params"]["standardize.with_mean"] is True
    assert plan["params"]["split.stratify"] is True
    assert plan["params"]["sample.table"] == "impressions"
    assert plan["params"]["sample.joins"] == [
        {"table": "users", "on": "user_id"},
        {"table": "items", "on": "item_id"},
    ]
    assert (plan["template"], plan["task"]) == ("binary-lr", "binary")
    assert plan["nodes"][0] == ["sample", "sample.sql"]
    assert list(values)[0] == PLAN_NAME
    # None is left out, not sent as "None"
    assert "coreNum" not in values and "sample.limit" not in plan["params"]

    gbdt = {i["Name"]: i["Value"] for i in to_hyperparameters(template_payload(builtin_templates["binary-gbdt"]))}
    assert (gbdt["treeCount"], gbdt["maxDepth"], gbdt["shrinkage"]) == ("60", "4", "0.1")
    rf = {i["Name"]: i["Value"] for i in to_hyperparameters(template_payload(builtin_templates["binary-rf"]))}
    assert (rf["treeNum"], rf["maxTreeDeep"], rf["minNumObj"]) == ("40", "10", "20")


@pytest.mark.parametrize("slug", BUILTIN_SLUGS)
def test_secret_and_ui_only_parameters_never_become_hyperparameters(builtin_templates, slug):
    payload = template_payload(builtin_templates[slug], {"sample": {"access_token": SECRET, "preview_rows": 50}})
    items = to_hyperparameters(payload)
    assert SECRET not in json.dumps(items)
    assert not any(i["Name"].endswith(("access_token", "preview_rows")) for i in items)

    smuggled = copy.deepcopy(payload)
    smuggled["nodes"][0]["params"]["access_token"] = SECRET
    with pytest.raises(HyperParameterError, match="secret or UI-only") as refused:
        to_hyperparameters(smuggled)
    assert SECRET not in str(refused.value)


def test_two_parameters_that_would_share_a_name_are_refused(builtin_templates):
    payload = template_payload(builtin_templates["binary-lr"])
    split = next(n for n in payload["nodes"] if n["key"] == "split")
    payload["nodes"].append({**copy.deepcopy(split), "key": "split_again"})
    with pytest.raises(HyperParameterError, match="randomSeed"):
        to_hyperparameters(payload)


def test_from_hyperparameters_refuses_what_is_not_a_payload(builtin_templates):
    items = to_hyperparameters(template_payload(builtin_templates["binary-lr"]))
    values = {i["Name"]: i["Value"] for i in items}
    with pytest.raises(HyperParameterError, match="maxIter"):
        from_hyperparameters({**values, "maxIter": "many"})
    with pytest.raises(HyperParameterError, match="maxIter"):
        from_hyperparameters({**values, "maxIter": "0"})  # below its declared minimum
    with pytest.raises(HyperParameterError, match="surprise"):
        from_hyperparameters({**values, "surprise": "1"})
    with pytest.raises(HyperParameterError, match=PLAN_NAME):
        from_hyperparameters({k: v for k, v in values.items() if k != PLAN_NAME})
    plan = json.loads(values[PLAN_NAME])
    with pytest.raises(HyperParameterError, match="sample.nope"):
        from_hyperparameters(
            {**values, PLAN_NAME: json.dumps({**plan, "params": {**plan["params"], "sample.nope": 1}})}
        )
    with pytest.raises(HyperParameterError, match="split.test_ratio"):
        bad = {**plan["params"], "split.test_ratio": 7.5}
        from_hyperparameters({**values, PLAN_NAME: json.dumps({**plan, "params": bad})})
    with pytest.raises(HyperParameterError, match="appears twice"):
        from_hyperparameters([*items, items[-1]])
    with pytest.raises(HyperParameterError, match="strings"):
        from_hyperparameters({**values, "maxIter": 100})


def _payload_params():
    for node_type in registry:
        for param in node_type.params:
            if param.in_payload:
                yield node_type, param


@st.composite
def _declared_value(draw):
    node_type, param = draw(st.sampled_from(list(_payload_params())))
    value = draw(from_schema(param_schema(param, value=param.default, locked=False)))
    try:
        value = param.validate(value) if value is not None else None
    except ParamError:
        value = None
    return param, value


@settings(max_examples=300, deadline=None)
@given(_declared_value())
def test_every_declared_value_survives_the_string_form(case):
    """For every parameter any node type declares, any valid value comes back equal from its PAI string."""
    param, value = case
    if value is None:
        return
    text = encode_value(param, value)
    assert isinstance(text, str)
    assert decode_value(param, text) == value


def test_the_sample_section_of_a_launch_payload_travels_too(builtin_templates):
    payload = template_payload(builtin_templates["binary-lr"])
    payload["sample"] = {
        "node": "sample",
        "dialect": "duckdb",
        "numeric": ["age"],
        "categorical": ["gender"],
        "label": "clicked",
        "label_kind": "binary",
        "positive_value": "1",
    }
    assert from_hyperparameters(to_hyperparameters(payload)) == payload
