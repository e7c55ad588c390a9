"""train.gbdt on LightGBM: the model it replaces as the yardstick, the same bytes on a rerun, the matrix the
trainer builds straight from the columns, parity on numeric and categorical columns, and degenerate data."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from apps.training.engines.sample import trainer_sample
from apps.training.launch import prepare_launch
from apps.training.selectors import sample_fetch
from apps.training.text_column import TextColumn
from apps.training.trainer import SampleData, TrainingDataError, train
from apps.training.trainer import data as trainer_data
from apps.training.trainer import pipeline as pipelines
from apps.training.trainer.plan import plan_from_payload, train_threads

from .trainer_data import builtin_payload, click_sample

# binary-gbdt with the template's settings (60 trees, depth 4, shrinkage 0.1, full rows and features) on the
# test warehouse (20,000 demo impressions; 16,000 train, 4,000 test), measured on main before the switch:
# scikit-learn's GradientBoostingClassifier reached this AUC. LightGBM reaches 0.7801 (with the trainer's
# own split since; scikit-learn's model reaches 0.7821 on that split). On 200,000 impressions: 0.8040 for
# LightGBM, 0.8038 for scikit-learn on the same split, 0.8064 on main's.
SKLEARN_GBDT_AUC = 0.7815


@pytest.fixture(scope="module")
def clicks():
    sample, _ = click_sample(4000, seed=7)
    return sample


@pytest.mark.django_db
def test_lightgbm_reaches_the_auc_of_the_model_it_replaces(builtin_templates, duck_source):
    prepared = prepare_launch(
        template=builtin_templates["binary-gbdt"], params={}, datasource=duck_source, engine="local"
    )
    report = train(prepared.payload, trainer_sample(sample_fetch(prepared=prepared))).report
    assert report["rows"] == {"train": 16_000, "test": 4_000}
    assert report["metrics"]["auc"] == pytest.approx(SKLEARN_GBDT_AUC, abs=0.005)
    assert report["parity"]["max_abs_diff"] <= 1e-5
    features = [row["feature"] for row in report["feature_importance"]]
    assert set(features[:3]) & {"discount", "position", "is_vip"}  # the demo click model's strongest effects


def test_a_rerun_gives_the_same_bytes(clicks):
    payload = builtin_payload("binary-gbdt", {"train": {"treeCount": 40, "sampleRatio": 0.7, "featureRatio": 0.6}})
    first, second = train(payload, clicks, threads=2), train(payload, clicks, threads=2)
    assert first.onnx_bytes == second.onnx_bytes
    other_seed = builtin_payload("binary-gbdt", {"train": {"treeCount": 40, "sampleRatio": 0.7}, "split": {"seed": 9}})
    assert train(other_seed, clicks, threads=2).onnx_bytes != first.onnx_bytes


def test_the_graph_is_one_onnx_model_from_raw_features_at_the_contract_opsets(clicks):
    result = train(builtin_payload("binary-gbdt", {"train": {"treeCount": 5}}), clicks)
    model = onnx.load_model_from_string(result.onnx_bytes)
    assert {o.domain: o.version for o in model.opset_import} == {"": 17, "ai.onnx.ml": 3}
    ops = [node.op_type for node in model.graph.node]
    assert "TreeEnsembleClassifier" in ops and "Imputer" in ops and "OneHotEncoder" in ops
    assert [i.name for i in model.graph.input] == result.plan.features


@pytest.mark.parametrize("strategy", ["median", "mean", "most_frequent", "constant"])
def test_the_design_matrix_is_what_the_column_transformer_gives(clicks, strategy):
    columns = dict(clicks.columns)
    rng = np.random.default_rng(3)
    rare = np.array([f"rare{i}" for i in range(len(clicks.label))], dtype=object)
    columns["category"] = np.where(rng.random(len(rare)) < 0.1, rare, columns["category"])  # beyond the vocabulary
    columns["gender"] = np.where(rng.random(len(rare)) < 0.05, "", columns["gender"])  # empty is missing too
    payload = builtin_payload(
        "binary-gbdt",
        {"one_hot": {"max_categories": 5}, "fill_missing": {"numeric_strategy": strategy, "numeric_fill_value": -1.5}},
    )
    plan = plan_from_payload(payload)
    prepared = trainer_data.prepare(plan, SampleData(columns, clicks.label))
    rows = np.arange(0, len(clicks.label), 3)
    model = pipelines.build(
        plan, pipelines.fill_values(plan, prepared, rows), pipelines.vocabularies(plan, prepared, rows)
    )
    model.named_steps["features"].fit(prepared.blocks(rows[:50]))
    expected = model.named_steps["features"].transform(prepared.blocks(rows))
    built = pipelines.design_matrix(plan, model, prepared, rows)
    assert built.dtype == np.float32 and built.flags.c_contiguous
    np.testing.assert_array_equal(built, expected)
    assert len(pipelines.categories(model)[2]) == 5


def test_fill_values_follow_the_strategy():
    plan = plan_from_payload(builtin_payload("binary-gbdt", {"sample": {"categorical_features": []}}))
    prepared = trainer_data.PreparedSample(
        numeric=[np.array([1.0, 2.0, 2.0, 10.0, np.nan]), *[np.full(5, np.nan)] * 7], categorical=[], label=np.zeros(5)
    )
    rows = np.arange(5)
    for strategy, value in (("median", 2.0), ("mean", 3.75), ("most_frequent", 2.0), ("constant", 0.0)):
        plan.fill_missing(numeric_strategy=strategy, numeric_fill_value=0.0, categorical_fill_value="__missing__")
        fills = pipelines.fill_values(plan, prepared, rows)
        assert fills[0] == value and (fills[1:] == 0).all()  # a column empty in these rows: 0


@pytest.mark.parametrize(
    "sample_params",
    [{"categorical_features": []}, {"features": [], "categorical_features": ["gender", "city_tier", "category"]}],
    ids=["numeric-only", "categorical-only"],
)
def test_parity_on_each_kind_of_column(clicks, sample_params):
    result = train(builtin_payload("binary-gbdt", {"sample": sample_params, "train": {"treeCount": 80}}), clicks)
    assert result.report["parity"]["max_abs_diff"] <= 1e-5
    assert result.report["metrics"]["auc"] > 0.55


def test_many_deep_trees_still_match_onnx(clicks):
    result = train(
        builtin_payload("binary-gbdt", {"train": {"treeCount": 600, "maxDepth": 8, "shrinkage": 0.05}}), clicks
    )
    assert result.report["parity"]["max_abs_diff"] <= 1e-5


def test_threads_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLAB_TRAIN_THREADS", "1")
    assert train_threads() == 1 and train_threads(3) == 3
    monkeypatch.setenv("MLAB_TRAIN_THREADS", "0")
    assert train_threads() == len(__import__("os").sched_getaffinity(0))
    monkeypatch.setenv("MLAB_TRAIN_THREADS", "many")
    with pytest.raises(Exception, match="MLAB_TRAIN_THREADS must be a whole number"):
        train_threads()


# -- degenerate data: a plain reason, or a model and a note saying what it could not use -----------------


def test_a_constant_feature_trains_and_the_report_says_so(clicks):
    columns = {
        **clicks.columns,
        "hour": np.full(len(clicks.label), 7.0),
        "city_tier": np.full(len(clicks.label), "2", dtype=object),
    }
    report = train(
        builtin_payload("binary-gbdt", {"train": {"treeCount": 20}}), SampleData(columns, clicks.label)
    ).report
    assert report["parity"]["max_abs_diff"] <= 1e-5
    notes = " ".join(report["notes"])
    assert "Column 'hour' has the same value in every row" in notes and "Column 'city_tier'" in notes
    importance = {row["feature"]: row["importance"] for row in report["feature_importance"]}
    assert importance["hour"] == 0 and importance["city_tier"] == 0


@pytest.mark.parametrize("name", ["price", "category"])
def test_an_all_missing_column_fails_naming_it(clicks, name):
    columns = dict(clicks.columns)
    columns[name] = (
        np.full(len(clicks.label), np.nan) if name == "price" else TextColumn.encode([None] * len(clicks.label))
    )
    with pytest.raises(TrainingDataError, match=f"Column '{name}' is empty in every row of the sample"):
        train(builtin_payload("binary-gbdt"), SampleData(columns, clicks.label))


def test_one_class_only_fails_in_plain_words(clicks):
    with pytest.raises(TrainingDataError, match="has one class only"):
        train(builtin_payload("binary-gbdt"), SampleData(clicks.columns, np.zeros(len(clicks.label))))
