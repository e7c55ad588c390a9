"""With a data source chosen, the Launch form (pickers) and the API judge the same parameters the same way."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.http import QueryDict
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from apps.templates.forms import field_name, launch_form_class
from apps.templates.validation import RunParamsInvalid
from apps.training.launch import prepare_launch
from apps.training.selectors import datasource_schema
from apps.training.sql import SchemaAllowList

pytestmark = pytest.mark.django_db

KNOWN = ["age", "price", "hour", "gender", "city_tier", "category", "ds", "is_vip", "user_id"]
NAMES = st.sampled_from(KNOWN + ["nope", "clicked", "Age"])
VALUES = st.one_of(st.integers(-5, 50), st.sampled_from(["tier1", "F", "2026-10-03", "x' OR 1=1"]), st.booleans())
CONDITION = st.fixed_dictionaries(
    {"column": NAMES, "op": st.sampled_from(["=", "!=", ">", "in", "between", "like", "is null"])},
    optional={"value": st.one_of(VALUES, st.lists(VALUES, min_size=1, max_size=2))},
)
SAMPLE = st.fixed_dictionaries(
    {},
    optional={
        "features": st.lists(NAMES, min_size=1, max_size=4, unique=True),
        "categorical_features": st.lists(NAMES, min_size=1, max_size=3, unique=True),
        "filters": st.lists(CONDITION, min_size=1, max_size=2),
        "partition_column": NAMES,
        "sample_key": st.lists(NAMES, min_size=1, max_size=2, unique=True),
        "negative_ratio": st.sampled_from([0.2, 1.0]),
        "date_from": st.sampled_from(["2026-10-02", "2026-10-09"]),
        "date_to": st.sampled_from(["2026-10-05"]),
    },
)


def api_errors(template, source, sample) -> set[str] | None:
    try:
        prepare_launch(template=template, params={"sample": sample}, datasource=source, engine="local")
    except RunParamsInvalid as invalid:
        return {f"{node}.{name}" for node, errors in invalid.errors.items() for name in errors}
    except ValidationError as exc:  # pragma: no cover - a data source problem would fail both the same way
        raise AssertionError(exc.message_dict) from None
    return None


def form_errors(template, columns, sample) -> set[str] | None:
    """Posted as the pickers post: one value per selected column, JSON for filter rows."""
    data = QueryDict(mutable=True)
    for name, value in sample.items():
        key = field_name("sample", name)
        if isinstance(value, list) and name != "filters":
            data.setlist(key, value)
        elif name == "filters":
            data[key] = json.dumps(value)
        else:
            data[key] = str(value)
    form = launch_form_class(template, allowlist=SchemaAllowList(columns))(data)
    if form.is_valid():
        return None
    assert not form.non_field_errors(), form.non_field_errors()
    return {name.replace("__", ".", 1) for name in form.errors}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sample=SAMPLE)
def test_launch_pickers_and_api_agree(builtin_templates, duck_source, sample):
    template = builtin_templates["binary-rf"]
    columns = datasource_schema(datasource=duck_source)
    from_api = api_errors(template, duck_source, sample)
    event("valid" if from_api is None else "refused")
    assert form_errors(template, columns, sample) == from_api, sample
