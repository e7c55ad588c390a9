"""Synthetic samples drawn from known models, and payloads of the built-in templates, for trainer tests.

The click sample has the demo warehouse's columns; its label is drawn from a logistic model whose true AUC
(the AUC of the true probabilities) is computed alongside, so tests can ask for a band around it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from apps.templates.builtins import BUILTIN_TEMPLATES
from apps.templates.nodes import Task, ValidationContext, registry
from apps.templates.payload import build_payload
from apps.templates.validation import NodeSpec
from apps.training.trainer import SampleData

CATEGORIES = {
    "gender": ["f", "m", "u"],
    "city_tier": ["1", "2", "3", "4"],
    "category": ["books", "toys", "food", "phones", "shoes", "garden", "beauty", "sports"],
}
CATEGORY_EFFECT = {"books": -0.4, "toys": 0.3, "food": 0.0, "phones": 0.8, "shoes": -0.2, "garden": -0.6}


def builtin_payload(slug: str, params: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The payload of a built-in template with ``params`` applied, built as the platform builds it."""
    template = next(t for t in BUILTIN_TEMPLATES if t["slug"] == slug)
    specs = [
        NodeSpec(node["key"], registry.get(node["type"]), node.get("overrides", {}), frozenset())
        for node in template["nodes"]
    ]
    context = ValidationContext(task=Task(template["task_type"]))
    cleaned = {}
    for spec in specs:
        values, errors = spec.node_type.resolve(
            (params or {}).get(spec.key, {}), overrides=spec.overrides, locked=spec.locked, context=context
        )
        assert not errors, errors
        cleaned[spec.key] = values
    return build_payload(template_slug=slug, task=template["task_type"], specs=specs, cleaned=cleaned)


def _choice(rng: np.random.Generator, values: list[str], n: int, missing: float) -> np.ndarray:
    column = np.array(values, dtype=object)[rng.integers(0, len(values), n)]
    column[rng.random(n) < missing] = None
    return column


def click_sample(n: int = 3000, *, seed: int = 0, missing: float = 0.05) -> tuple[SampleData, np.ndarray]:
    """A click sample with the demo columns and its true click probabilities."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {
        "age": rng.normal(35, 10, n).round(),
        "signup_days": rng.exponential(400, n).round(),
        "is_vip": (rng.random(n) < 0.2).astype(np.float64),
        "price": np.exp(rng.normal(3, 1, n)).round(2),
        "seller_rating": rng.uniform(1, 5, n).round(1),
        "discount": rng.uniform(0, 0.5, n).round(2),
        "position": rng.integers(1, 21, n).astype(np.float64),
        "hour": rng.integers(0, 24, n).astype(np.float64),
        "gender": _choice(rng, CATEGORIES["gender"], n, missing),
        "city_tier": _choice(rng, CATEGORIES["city_tier"], n, missing),
        "category": _choice(rng, CATEGORIES["category"], n, missing),
    }
    category_effect = np.array([CATEGORY_EFFECT.get(c, 0.0) for c in columns["category"]])
    logit = (
        -0.5
        + 0.8 * columns["is_vip"]
        - 0.15 * (columns["position"] - 10)
        + 3.0 * (columns["discount"] - 0.25)
        + 0.6 * (columns["seller_rating"] - 3)
        - 0.4 * (np.log(columns["price"]) - 3)
        + category_effect
    )
    probability = 1 / (1 + np.exp(-logit))
    for name in ("age", "price", "seller_rating"):  # missing values after the label was drawn from the truth
        columns[name][rng.random(n) < missing] = np.nan
    label = (rng.random(n) < probability).astype(np.float64)
    return SampleData(columns=columns, label=label), probability


def price_sample(n: int = 2000, *, seed: int = 0, noise: float = 2.0) -> SampleData:
    """An items sample for the regression template: price = linear in rating, discount and category."""
    rng = np.random.default_rng(seed)
    category = _choice(rng, CATEGORIES["category"], n, 0.03)
    base = {c: 10.0 + 3 * i for i, c in enumerate(CATEGORIES["category"])}
    rating = rng.uniform(1, 5, n).round(1)
    discount = rng.uniform(0, 0.5, n).round(2)
    price = np.array([base.get(c, 20.0) for c in category]) + 4 * rating - 10 * discount + rng.normal(0, noise, n)
    rating[rng.random(n) < 0.03] = np.nan
    return SampleData(columns={"seller_rating": rating, "discount": discount, "category": category}, label=price)
