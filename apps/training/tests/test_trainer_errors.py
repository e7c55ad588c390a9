"""Bad data and bad payloads fail with a plain message naming the column or node; the float32 trap is
prevented by construction, and a model that does not score like its ONNX export fails parity."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from apps.training.trainer import ParityError, PayloadError, SampleData, TrainingDataError, train
from apps.training.trainer.export import TARGET_OPSET, parity

from .trainer_data import builtin_payload, click_sample, price_sample


@pytest.fixture(scope="module")
def clicks() -> SampleData:
    return click_sample(400, seed=2)[0]


def with_column(sample: SampleData, name: str, values) -> SampleData:
    return SampleData(columns={**sample.columns, name: values}, label=sample.label)


def train_error(sample: SampleData, slug: str = "binary-lr", params=None, error=TrainingDataError) -> str:
    with pytest.raises(error) as caught:
        train(builtin_payload(slug, params), sample)
    return str(caught.value)


def test_label_with_one_class(clicks):
    message = train_error(SampleData(clicks.columns, np.zeros(len(clicks.label))))
    assert "'clicked'" in message and "one class" in message and "negative (0)" in message


def test_label_that_is_not_binary(clicks):
    label = clicks.label.copy()
    label[7] = 2
    assert "'clicked' must be 1 (positive) or 0 (negative); it holds 2 too" in train_error(
        SampleData(clicks.columns, label)
    )


def test_label_with_missing_values(clicks):
    label = clicks.label.copy()
    label[[1, 2, 3]] = np.nan
    assert train_error(SampleData(clicks.columns, label)) == (
        "The label column 'clicked' is empty in 3 rows; filter them out."
    )


def test_single_positive_row_cannot_be_stratified(clicks):
    label = np.zeros(len(clicks.label))
    label[0] = 1
    assert "single row of one class" in train_error(SampleData(clicks.columns, label))


def test_too_few_rows(clicks):
    small = SampleData({name: values[:12] for name, values in clicks.columns.items()}, clicks.label[:12])
    assert "The sample has 12 rows; at least 20" in train_error(small)


def test_empty_sample(clicks):
    empty = SampleData({name: values[:0] for name, values in clicks.columns.items()}, clicks.label[:0])
    assert "The sample is empty" in train_error(empty)


def test_feature_column_entirely_empty(clicks):
    assert "Column 'price' is empty in every row" in train_error(
        with_column(clicks, "price", np.full(len(clicks.label), np.nan))
    )
    assert "Column 'gender' is empty in every row" in train_error(
        with_column(clicks, "gender", np.full(len(clicks.label), None, dtype=object))
    )


def test_non_numeric_values_in_a_numeric_feature(clicks):
    values = clicks.columns["age"].astype(object)
    values[5] = "thirty"
    message = train_error(with_column(clicks, "age", values))
    assert message == "Column 'age' is a numeric feature but holds non-numeric values such as 'thirty'."


def test_numbers_as_text_are_accepted(clicks):
    values = np.array([None if np.isnan(v) else f"{v:g}" for v in clicks.columns["age"]], dtype=object)
    report = train(builtin_payload("binary-lr"), with_column(clicks, "age", values)).report
    assert report["parity"]["max_abs_diff"] <= 1e-5


def test_infinite_values(clicks):
    values = clicks.columns["discount"].copy()
    values[3] = np.inf
    assert "Column 'discount' holds infinite values" in train_error(with_column(clicks, "discount", values))


def test_missing_feature_column(clicks):
    columns = dict(clicks.columns)
    del columns["hour"]
    assert train_error(SampleData(columns, clicks.label)) == "Column 'hour' is missing from the sample."


def test_column_of_the_wrong_length(clicks):
    assert "Column 'hour' has 10 values for 400 rows" in train_error(with_column(clicks, "hour", np.zeros(10)))


def test_missing_values_without_a_fill_node(clicks):
    payload = builtin_payload("binary-lr")
    payload["nodes"] = [node for node in payload["nodes"] if node["type"] != "preprocess.fill_missing"]
    with pytest.raises(TrainingDataError, match="Column 'age' is empty in \\d+ rows and the template has no node"):
        train(payload, clicks)


def test_regression_label_must_be_numbers():
    sample = price_sample(100)
    label = sample.label.astype(object)
    label[4] = "cheap"
    message = train_error(SampleData(sample.columns, label), slug="regression-linear")
    assert message == "Column 'price' is the label but holds non-numeric values such as 'cheap'."


# -- payloads --------------------------------------------------------------------------------------


def test_payload_errors_name_the_node(clicks):
    payload = builtin_payload("binary-gbdt")
    payload["nodes"][-2]["params"]["treeCount"] = 0
    with pytest.raises(PayloadError, match="Node 'train', parameter treeCount: Must be at least 1"):
        train(payload, clicks)
    payload = builtin_payload("binary-gbdt")
    payload["nodes"][-2]["params"]["trees"] = 10
    with pytest.raises(PayloadError, match="Node 'train' \\(train.gbdt\\) has unknown parameters: trees"):
        train(payload, clicks)
    payload = builtin_payload("binary-gbdt")
    payload["nodes"][-2]["type"] = "train.xgboost"
    with pytest.raises(PayloadError, match="Unknown node type: train.xgboost"):
        train(payload, clicks)
    with pytest.raises(PayloadError, match="task"):
        train({**builtin_payload("binary-lr"), "task": "ranking"}, clicks)
    with pytest.raises(PayloadError, match="Unknown task None"):
        train({k: v for k, v in builtin_payload("binary-lr").items() if k != "task"}, clicks)
    for bad_type in (None, 3, ["train.gbdt"]):  # not a key a registry could hold: a PayloadError, not a TypeError
        payload = builtin_payload("binary-gbdt")
        payload["nodes"][-2]["type"] = bad_type
        with pytest.raises(PayloadError, match='must name its type, a string, in "type"'):
            train(payload, clicks)
    with pytest.raises(PayloadError, match="train.linear_regression is for regression templates"):
        payload = builtin_payload("binary-lr")
        payload["nodes"][-2]["type"] = "train.linear_regression"
        train(payload, clicks)


def test_categorical_features_need_a_one_hot_node(clicks):
    payload = builtin_payload("binary-lr")
    payload["nodes"] = [node for node in payload["nodes"] if node["type"] != "preprocess.one_hot"]
    with pytest.raises(PayloadError, match="Categorical features \\(gender, city_tier, category\\) need a one-hot"):
        train(payload, clicks)


def test_pai_only_parameters_are_ignored(clicks):
    payload = builtin_payload("binary-gbdt", {"train": {"treeCount": 5, "coreNum": 8, "memSizePerCore": 2048}})
    assert {"coreNum", "memSizePerCore"} <= set(payload["nodes"][-2]["params"])
    model = train(payload, clicks).model.named_steps["model"]
    assert model.n_estimators == 5 and "coreNum" not in str(model.get_params())


# -- the float32 trap ------------------------------------------------------------------------------


def trap_sample(n: int = 2000, seed: int = 0) -> SampleData:
    """Large offsets and small spreads: a float64 scaler in front of trees flips some float32 comparisons."""
    rng = np.random.default_rng(seed)
    columns = {f"x{i}": rng.normal(size=n) * 10.0**i + 12345.678 for i in range(4)}
    logit = columns["x0"] - 12345.678
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return SampleData(columns, label)


def trap_payload() -> dict:
    """A random forest behind a standardize node: what a template author could well build."""
    payload = builtin_payload(
        "binary-lr", {"sample": {"features": ["x0", "x1", "x2", "x3"], "categorical_features": []}}
    )
    payload["nodes"][-2] = {"key": "train", "type": "train.random_forest", "kind": "train", "params": {"treeNum": 30}}
    return payload


def test_the_trap_is_real_with_a_naive_pipeline():
    sample = trap_sample()
    matrix = np.column_stack(list(sample.columns.values()))
    naive = Pipeline([("scale", StandardScaler()), ("forest", RandomForestClassifier(30, random_state=0))])
    naive.fit(matrix, sample.label)
    exported = to_onnx(
        naive, initial_types=[("X", FloatTensorType([None, 4]))], options={"zipmap": False}, target_opset=TARGET_OPSET
    )
    session = onnxruntime.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_scores = session.run(["probabilities"], {"X": matrix.astype(np.float32)})[0]
    with pytest.raises(ParityError, match="does not give the same scores"):
        parity(naive.predict_proba(matrix), onnx_scores)


def test_the_trainer_never_puts_a_scaler_in_front_of_trees():
    result = train(trap_payload(), trap_sample())
    numeric = result.model.named_steps["features"].named_transformers_["numeric"]
    assert "standardize" not in getattr(numeric, "named_steps", {})
    assert any("Standardization is skipped for tree models" in note for note in result.report["notes"])
    assert result.report["parity"]["max_abs_diff"] <= 1e-5
    # The same chain with a linear model keeps its scaler.
    linear = train(builtin_payload("binary-lr"), click_sample(300)[0]).model
    assert "standardize" in linear.named_steps["features"].named_transformers_["numeric"].named_steps


def test_parity_passes_within_tolerance_and_catches_nan():
    scores = np.array([[0.25, 0.75], [0.5, 0.5]])
    assert parity(scores, scores + 5e-6) == pytest.approx(5e-6)
    with pytest.raises(ParityError):
        parity(scores, np.full_like(scores, np.nan))
    with pytest.raises(ParityError):
        parity(scores, scores[:1])
