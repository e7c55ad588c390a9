"""Template services and chain validation."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.templates.models import AlgorithmTemplate, TemplateNode
from apps.templates.services import builtin_templates_sync, template_create
from apps.templates.validation import chain_errors

pytestmark = pytest.mark.django_db

GOOD = ["sample.sql", "preprocess.fill_missing", "split", "train.gbdt", "evaluate.binary"]


def test_a_well_formed_chain_has_no_errors():
    assert chain_errors("binary", GOOD) == []
    assert chain_errors("regression", ["sample.sql", "train.linear_regression", "evaluate.regression"]) == []


@pytest.mark.parametrize(
    ("task", "chain", "message"),
    [
        ("binary", ["train.gbdt", "sample.sql", "evaluate.binary"], "first node must be a sample"),
        ("binary", ["sample.sql", "sample.sql", "train.gbdt", "evaluate.binary"], "exactly one sample"),
        ("binary", ["sample.sql", "evaluate.binary"], "exactly one training"),
        ("binary", ["sample.sql", "train.gbdt", "train.random_forest", "evaluate.binary"], "exactly one training"),
        ("binary", ["sample.sql", "train.gbdt"], "exactly one evaluation"),
        ("binary", ["sample.sql", "train.gbdt", "evaluate.regression"], "for regression templates"),
        ("regression", ["sample.sql", "train.gbdt", "evaluate.regression"], "for binary templates"),
        ("binary", ["sample.sql", "train.gbdt", "split", "evaluate.binary"], "run in this order"),
        ("binary", ["sample.sql", "split", "split", "train.gbdt", "evaluate.binary"], "at most one split"),
        ("binary", ["sample.sql", "train.xgboost", "evaluate.binary"], "Unknown node type"),
    ],
)
def test_malformed_chains_are_refused(task, chain, message):
    assert any(message in e for e in chain_errors(task, chain)), chain_errors(task, chain)


def test_template_create_refuses_a_bad_chain_and_writes_nothing(user):
    with pytest.raises(ValidationError):
        template_create(
            slug="bad", name="Bad", task_type="binary", owner=user, nodes=[{"key": "train", "type": "train.gbdt"}]
        )
    assert not AlgorithmTemplate.objects.filter(slug="bad").exists()


def test_template_create_refuses_bad_presets_naming_the_node(user):
    with pytest.raises(ValidationError, match="train: .*treeCount"):
        template_create(
            slug="bad",
            name="Bad",
            task_type="binary",
            owner=user,
            nodes=[
                {"key": "sample", "type": "sample.sql"},
                {"key": "train", "type": "train.gbdt", "overrides": {"treeCount": 0}},
                {"key": "evaluate", "type": "evaluate.binary"},
            ],
        )
    assert not AlgorithmTemplate.objects.filter(slug="bad").exists()


def test_a_locked_parameter_needs_a_value(user):
    with pytest.raises(ValidationError, match="needs a preset value"):
        template_create(
            slug="bad",
            name="Bad",
            task_type="binary",
            owner=user,
            nodes=[
                {"key": "sample", "type": "sample.sql", "locked": ["label"]},
                {"key": "train", "type": "train.gbdt"},
                {"key": "evaluate", "type": "evaluate.binary"},
            ],
        )


def test_builtin_sync_is_idempotent_and_repairs_edits():
    first = builtin_templates_sync()
    TemplateNode.objects.filter(template__slug="binary-lr", key="train").update(overrides={"maxIter": 5})
    second = builtin_templates_sync()
    assert [t.pk for t in first] == [t.pk for t in second]
    assert AlgorithmTemplate.objects.count() == 4
    assert TemplateNode.objects.get(template__slug="binary-lr", key="train").overrides == {}
    assert {t.slug for t in second} == {"binary-lr", "binary-gbdt", "binary-rf", "regression-linear"}
