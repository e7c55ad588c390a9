"""Parameter declarations and the node template method."""

from __future__ import annotations

import pytest

from apps.templates.nodes import (
    Group,
    NodeKind,
    NodeType,
    NodeValidationError,
    Param,
    ParamError,
    ParamType,
    Task,
    ValidationContext,
    registry,
)
from apps.templates.nodes.base import DATE_MAX, DATE_MIN, Registry

T = ParamType

EXPECTED_NODE_TYPES = {
    "sample.sql",
    "preprocess.fill_missing",
    "preprocess.standardize",
    "preprocess.one_hot",
    "split",
    "train.logistic_regression",
    "train.gbdt",
    "train.random_forest",
    "train.linear_regression",
    "evaluate.binary",
    "evaluate.regression",
}


def test_registry_holds_the_node_types_of_the_design():
    assert {t.key for t in registry} == EXPECTED_NODE_TYPES


@pytest.mark.parametrize(
    ("key", "algorithm", "names"),
    [
        (
            "train.logistic_regression",
            "logisticregression_binary",
            {"regularizedType", "regularizedLevel", "maxIter", "epsilon"},
        ),
        (
            "train.gbdt",
            "ps_smart",
            {"treeCount", "maxDepth", "shrinkage", "l1", "l2", "sampleRatio", "featureRatio", "minLeafSampleCount"},
        ),
        ("train.random_forest", "randomforests", {"treeNum", "maxTreeDeep", "minNumObj", "randomColNum"}),
    ],
)
def test_training_nodes_use_pai_parameter_names(key, algorithm, names):
    node = registry.get(key)
    assert node.pai_algorithm == algorithm
    assert names <= set(node.param_map)


def test_logistic_regression_regularization_choices_are_pai_s():
    assert registry.get("train.logistic_regression").param_map["regularizedType"].choices == ("l1", "l2", "None")


def test_every_param_is_in_one_of_the_three_groups_and_defaults_are_valid():
    for node in registry:
        for param in node.params:
            assert param.group in set(Group)
            if param.default is not None:
                assert param.validate(param.default) == param.default


@pytest.mark.parametrize(
    ("param", "value", "expected"),
    [
        (Param("n", T.INT, min=1, max=10), 5, 5),
        (Param("n", T.INT, min=1, max=10), 5.0, 5),
        (Param("x", T.FLOAT, min=0, max=1), 1, 1.0),
        (Param("b", T.BOOL), False, False),
        (Param("c", T.CHOICE, choices=("a", "b")), "b", "b"),
        (Param("d", T.DATE), "2026-02-28", "2026-02-28"),
        (Param("col", T.COLUMN), "user_id", "user_id"),
        (Param("cols", T.COLUMNS), ["a", "b_2"], ["a", "b_2"]),
        (Param("j", T.JOINS), [{"table": "users", "on": "user_id"}], [{"table": "users", "on": "user_id"}]),
        (
            Param("f", T.CONDITIONS),
            [{"column": "age", "op": "between", "value": [18, 30]}, {"column": "city", "op": "is null"}],
            [{"column": "age", "op": "between", "value": [18, 30]}, {"column": "city", "op": "is null", "value": None}],
        ),
    ],
)
def test_valid_values_come_back_canonical(param, value, expected):
    assert param.validate(value) == expected


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        (Param("n", T.INT, min=1, max=10), 0, "at least 1"),
        (Param("n", T.INT, min=1, max=10), 11, "at most 10"),
        (Param("n", T.INT), True, "whole number"),
        (Param("n", T.INT), 1.5, "whole number"),
        (Param("n", T.INT), "3", "whole number"),
        (Param("x", T.FLOAT, min=0, exclusive_min=True), 0.0, "greater than 0"),
        (Param("x", T.FLOAT, max=1, exclusive_max=True), 1.0, "less than 1"),
        (Param("x", T.FLOAT), float("nan"), "finite"),
        (Param("x", T.FLOAT), "0.5", "number"),
        (Param("b", T.BOOL), 1, "true or false"),
        (Param("c", T.CHOICE, choices=("a", "b")), "z", "one of: a, b"),
        (Param("d", T.DATE), "2026-02-30", "YYYY-MM-DD"),
        (Param("d", T.DATE), "20260201", "YYYY-MM-DD"),
        (Param("d", T.DATE), "0999-12-31", "from 1000-01-01 to 9999-12-31"),
        (Param("d", T.DATE, max="9999-12-30"), "9999-12-31", "from 1000-01-01 to 9999-12-30"),
        (Param("d", T.DATE, min="2026-01-01"), "2025-12-31", "from 2026-01-01"),
        (Param("col", T.COLUMN), "user_id; DROP TABLE users", "letters, digits"),
        (Param("col", T.COLUMN), "uѕer_id", "letters, digits"),  # Cyrillic 's'
        (Param("col", T.COLUMN), "1abc", "letters, digits"),
        (Param("cols", T.COLUMNS), ["a", "a"], "twice"),
        (Param("cols", T.COLUMNS), "a,b", "list"),
        (Param("j", T.JOINS), [{"table": "users"}], "Each join"),
        (Param("f", T.CONDITIONS), [{"column": "a", "op": "OR 1=1", "value": 1}], "Operator"),
        (Param("f", T.CONDITIONS), [{"column": "a", "op": "in", "value": []}], "list of 1"),
        (Param("f", T.CONDITIONS), [{"column": "a", "op": "between", "value": [1]}], "two values"),
        (Param("f", T.CONDITIONS), [{"column": "a", "op": "is null", "value": 1}], "takes no value"),
        (Param("f", T.CONDITIONS), [{"column": "a", "op": "=", "value": {"x": 1}}], "string, a number"),
        (Param("f", T.CONDITIONS), [{"column": "a", "op": "=", "value": 1, "extra": 2}], "Each condition"),
    ],
)
def test_invalid_values_say_why(param, value, message):
    with pytest.raises(ParamError, match=message):
        param.validate(value)


def test_a_declaration_with_an_invalid_default_is_refused():
    with pytest.raises(ParamError):
        Param("n", T.INT, default=0, min=1)


def test_a_date_parameter_is_bounded_by_the_dates_every_back_end_handles():
    param = Param("d", T.DATE)
    assert (param.min, param.max) == (DATE_MIN, DATE_MAX) == ("1000-01-01", "9999-12-31")
    assert param.describe()["min"] == DATE_MIN and param.describe()["max"] == DATE_MAX
    assert param.validate(DATE_MIN) == DATE_MIN and param.validate(DATE_MAX) == DATE_MAX
    window_end = registry.get("sample.sql").param_map["date_to"]
    assert window_end.max == "9999-12-30"  # its next day must still be a date


@pytest.mark.parametrize(
    "declaration",
    [
        {"type": T.DATE, "min": "0999-12-31"},
        {"type": T.DATE, "max": "10000-01-01"},
        {"type": T.DATE, "max": "2026-02-30"},
        {"type": T.DATE, "min": "2026-02-01", "max": "2026-01-01"},
        {"type": T.INT, "min": "2026-01-01"},
    ],
)
def test_date_bounds_outside_the_supported_range_or_on_other_types_are_refused(declaration):
    with pytest.raises(TypeError):
        Param("d", **declaration)


@pytest.mark.parametrize(
    ("param", "text", "expected"),
    [
        (Param("n", T.INT), "200", 200),
        (Param("x", T.FLOAT), "0.25", 0.25),
        (Param("b", T.BOOL), "yes", True),
        (Param("b", T.BOOL), "false", False),
        (Param("cols", T.COLUMNS), "a, b,c", ["a", "b", "c"]),
        (
            Param("f", T.CONDITIONS),
            '[{"column": "a", "op": "=", "value": 1}]',
            [{"column": "a", "op": "=", "value": 1}],
        ),
        (Param("s", T.STR), "clicked", "clicked"),
    ],
)
def test_command_line_text_is_parsed_by_type(param, text, expected):
    assert param.parse_text(text) == expected


def test_command_line_text_of_the_wrong_type_is_an_error():
    with pytest.raises(ParamError, match="whole number"):
        Param("n", T.INT).parse_text("many")
    with pytest.raises(ParamError, match="JSON"):
        Param("f", T.CONDITIONS).parse_text("[{")


class _Toy(NodeType):
    key = "toy"
    kind = NodeKind.PREPROCESS
    label = "Toy"
    params = (
        Param("a", T.INT, default=1, min=0, max=9),
        Param("b", T.STR, required=True),
        Param("c", T.BOOL, default=False),
        Param("token", T.STR, secret=True),
        Param("ui", T.INT, default=3, serialize=False),
    )

    def clean(self, cleaned, context):
        if cleaned["b"] == "bad":
            raise NodeValidationError({"b": "b may not be 'bad'."})


def _resolve(submitted, overrides=None, locked=()):
    return _Toy().resolve(
        submitted, overrides=overrides or {}, locked=frozenset(locked), context=ValidationContext(task=Task.BINARY)
    )


def test_resolve_applies_defaults_then_overrides_then_submitted_values():
    cleaned, errors = _resolve({"b": "x"}, overrides={"a": 4})
    assert errors == {}
    assert cleaned == {"a": 4, "b": "x", "c": False, "token": None, "ui": 3}
    cleaned, _ = _resolve({"b": "x", "a": 7}, overrides={"a": 4})
    assert cleaned["a"] == 7


def test_resolve_reports_unknown_missing_and_out_of_range_by_name():
    _, errors = _resolve({"a": 10, "zzz": 1})
    assert set(errors) == {"a", "b", "zzz"}
    assert "Unknown parameter" in errors["zzz"][0]
    assert errors["b"] == ["This parameter is required."]


def test_resolve_refuses_a_changed_locked_parameter_but_accepts_the_same_value():
    _, errors = _resolve({"b": "x", "a": 5}, overrides={"a": 4}, locked={"a"})
    assert errors == {"a": ["Locked by the template author; it cannot be changed."]}
    cleaned, errors = _resolve({"b": "x", "a": 4.0}, overrides={"a": 4}, locked={"a"})
    assert errors == {} and cleaned["a"] == 4


def test_resolve_runs_the_clean_hook_only_on_valid_values():
    _, errors = _resolve({"b": "bad"})
    assert errors == {"b": ["b may not be 'bad'."]}


def test_payload_hook_applies_both_exclusion_flags():
    cleaned, _ = _resolve({"b": "x", "token": "s3cret"})
    payload = _Toy().payload(cleaned)
    assert payload == {"a": 1, "b": "x", "c": False}


def test_registering_a_key_twice_is_an_error():
    local = Registry()
    local.register(_Toy)
    with pytest.raises(KeyError):
        local.register(_Toy)


def test_sample_node_cross_parameter_rules():
    sample = registry.get("sample.sql")
    base = {"table": "t", "label": "y", "features": ["a"]}
    context = ValidationContext(task=Task.BINARY)

    def errors_of(**changes):
        return sample.resolve({**base, **changes}, overrides={}, locked=frozenset(), context=context)[1]

    assert errors_of() == {}
    assert "features" in errors_of(features=[])
    assert "label" in errors_of(features=["y"])
    assert "categorical_features" in errors_of(categorical_features=["a"])
    assert "date_to" in errors_of(partition_column="ds", date_from="2026-02-02", date_to="2026-02-01")
    assert "partition_column" in errors_of(date_from="2026-02-01")


class _RecordingAllowList:
    """A stand-in for a data source's allow-list: records what the sample node asks, and knows one table."""

    columns = {"imp": {"clicked": "INTEGER", "age": "INTEGER"}}

    def __init__(self):
        self.asked = []

    def check_sample(self, cleaned, task):
        self.asked.append((cleaned["table"], task))
        if cleaned["table"] not in self.columns:
            raise NodeValidationError({"table": "No such table."})


def test_sample_node_asks_the_allowlist_when_the_run_names_a_data_source():
    sample = registry.get("sample.sql")
    good = {"table": "imp", "label": "clicked", "features": ["age"]}
    allowlist = _RecordingAllowList()

    def resolve(submitted, allowlist):
        context = ValidationContext(task=Task.BINARY, allowlist=allowlist)
        return sample.resolve(submitted, overrides={}, locked=frozenset(), context=context)[1]

    assert resolve(good, allowlist) == {}
    assert resolve({**good, "table": "orders"}, allowlist) == {"table": ["No such table."]}
    assert allowlist.asked == [("imp", "binary"), ("orders", "binary")]
    assert resolve({**good, "table": "orders"}, None) == {}  # no source named: names are checked for form only
