"""The built-in algorithm templates, preset for the demo warehouse (seller-union click data)."""

from __future__ import annotations

from typing import Any, TypedDict

DEMO_SAMPLE = {
    "table": "impressions",
    "joins": [{"table": "users", "on": "user_id"}, {"table": "items", "on": "item_id"}],
    "label": "clicked",
    "positive_value": "1",
    "features": ["age", "signup_days", "is_vip", "price", "seller_rating", "discount", "position", "hour"],
    "categorical_features": ["gender", "city_tier", "category"],
    "partition_column": "ds",
    "sample_key": ["ds", "user_id", "item_id", "hour"],
}
# What a template author would not let a business developer change in a click-through-rate template.
DEMO_SAMPLE_LOCKED = ["table", "label", "positive_value"]


class TemplateDefinition(TypedDict):
    slug: str
    name: str
    description: str
    task_type: str
    nodes: list[dict[str, Any]]  # {key, type, overrides?, locked?} in chain order, as template_create takes them


def _binary(train_type: str, train_overrides: dict | None = None, *, standardize: bool) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = [
        {"key": "sample", "type": "sample.sql", "overrides": DEMO_SAMPLE, "locked": DEMO_SAMPLE_LOCKED},
        {"key": "fill_missing", "type": "preprocess.fill_missing"},
        {"key": "one_hot", "type": "preprocess.one_hot"},
    ]
    if standardize:  # linear models want scaled inputs; trees do not (and compare thresholds in float32)
        nodes.append({"key": "standardize", "type": "preprocess.standardize"})
    nodes += [
        {"key": "split", "type": "split"},
        {"key": "train", "type": train_type, "overrides": train_overrides or {}},
        {"key": "evaluate", "type": "evaluate.binary"},
    ]
    return nodes


BUILTIN_TEMPLATES: list[TemplateDefinition] = [
    {
        "slug": "binary-lr",
        "name": "Binary classification · logistic regression",
        "description": "Predicts a yes/no outcome (e.g. will this impression be clicked) with logistic regression. "
        "A fast, readable baseline.",
        "task_type": "binary",
        "nodes": _binary("train.logistic_regression", standardize=True),
    },
    {
        "slug": "binary-gbdt",
        "name": "Binary classification · gradient-boosted trees",
        "description": "Predicts a yes/no outcome with gradient-boosted trees (PAI PS-SMART). Usually the most "
        "accurate on tabular data.",
        "task_type": "binary",
        "nodes": _binary("train.gbdt", {"treeCount": 60, "maxDepth": 4}, standardize=False),
    },
    {
        "slug": "binary-rf",
        "name": "Binary classification · random forest",
        "description": "Predicts a yes/no outcome with a random forest. Robust with little tuning.",
        "task_type": "binary",
        "nodes": _binary("train.random_forest", {"treeNum": 40, "maxTreeDeep": 10, "minNumObj": 20}, standardize=False),
    },
    {
        "slug": "regression-linear",
        "name": "Regression · linear regression",
        "description": "Predicts a number (e.g. an item's price from its category and seller) with linear regression.",
        "task_type": "regression",
        "nodes": [
            {
                "key": "sample",
                "type": "sample.sql",
                "overrides": {
                    "table": "items",
                    "label": "price",
                    "features": ["seller_rating", "discount"],
                    "categorical_features": ["category"],
                    "sample_key": ["item_id"],
                },
                "locked": ["table", "label"],
            },
            {"key": "fill_missing", "type": "preprocess.fill_missing"},
            {"key": "one_hot", "type": "preprocess.one_hot"},
            {"key": "standardize", "type": "preprocess.standardize"},
            {"key": "split", "type": "split", "overrides": {"stratify": False}},
            {"key": "train", "type": "train.linear_regression"},
            {"key": "evaluate", "type": "evaluate.regression"},
        ],
    },
]
