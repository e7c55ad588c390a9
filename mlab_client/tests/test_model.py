"""A loaded model: parity with scikit-learn, feature mapping through the signature, and refused artifacts."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest

from mlab_client import ArtifactError, FeatureError, Model, contract
from mlab_client.tests.builders import MISSING_MARKER, build, reference_scores

ROW = {"age": 31.0, "price": 12.5, "clicks_7d": 4.0, "city": "shanghai", "device": "ios"}


@pytest.fixture(scope="module")
def lr():
    return build("lr")


@pytest.fixture(scope="module")
def lr_model(lr):
    return Model(lr.onnx)


@pytest.mark.parametrize("kind", ["lr", "gbdt", "linear"])
def test_scores_match_scikit_learn_row_by_row_and_in_batch(kind):
    built = build(kind)
    model = Model(built.onnx)
    expected = reference_scores(built)
    batch = np.array([score for score, _ in model.predict_rows(built.rows)])
    one_by_one = np.array([model.predict(row)[0] for row in built.rows[:300]])
    tolerance = 1e-5 if kind != "linear" else 1e-5 * np.abs(expected).max()
    assert np.abs(batch - expected).max() <= tolerance
    assert np.abs(one_by_one - expected[:300]).max() <= tolerance
    assert model.task == ("regression" if kind == "linear" else "binary")


def test_binary_label_is_score_at_or_above_the_threshold(lr, lr_model):
    scored = lr_model.predict_rows(lr.rows)
    assert {label for _, label in scored} == {0, 1}
    assert all(label == int(score >= lr_model.threshold) for score, label in scored)


def test_regression_has_no_label():
    model = Model(build("linear").onnx)
    score, label = model.predict(ROW)
    assert label is None and isinstance(score, float)


def test_signature_comes_from_the_artifact(lr_model):
    assert lr_model.feature_names == ["age", "price", "clicks_7d", "city", "device"]
    city = lr_model.signature[3]
    assert city.type == contract.STRING and "shanghai" in city.categories


def test_missing_numbers_are_fed_as_nan_like_the_trainer(lr, lr_model):
    row = dict(ROW, age=None, price=float("nan"))
    matrix = np.array([[np.nan, np.nan, 4.0, "shanghai", "ios"]], dtype=object)
    assert lr_model.predict(row)[0] == pytest.approx(reference_scores(lr, matrix)[0], abs=1e-6)


def test_a_missing_category_becomes_the_templates_marker(lr, lr_model):
    as_none = lr_model.predict(dict(ROW, city=None))[0]
    as_nan = lr_model.predict(dict(ROW, city=float("nan")))[0]
    marker = np.array([[31.0, 12.5, 4.0, MISSING_MARKER, "ios"]], dtype=object)
    assert as_none == as_nan == pytest.approx(reference_scores(lr, marker)[0], abs=1e-6)
    assert as_none != pytest.approx(lr_model.predict(ROW)[0], abs=1e-6)


def test_an_unseen_category_is_accepted_and_scored_like_scikit_learn(lr, lr_model):
    matrix = np.array([[31.0, 12.5, 4.0, "lhasa", "ios"]], dtype=object)
    assert lr_model.predict(dict(ROW, city="lhasa"))[0] == pytest.approx(reference_scores(lr, matrix)[0], abs=1e-6)


def test_numbers_of_any_numeric_type_are_accepted(lr_model):
    expected = lr_model.predict(ROW)[0]
    assert lr_model.predict(dict(ROW, clicks_7d=4, age=np.float64(31.0), price=np.float32(12.5)))[0] == expected


def test_missing_and_unknown_features_are_named(lr_model):
    row = {k: v for k, v in ROW.items() if k not in ("age", "city")} | {"colour": "red"}
    with pytest.raises(FeatureError) as caught:
        lr_model.predict(row)
    error = caught.value
    assert error.missing == ["age", "city"] and error.unknown == ["colour"]
    assert "missing features: age, city" in str(error) and "unknown features: colour" in str(error)
    assert error.fields == ["age", "city", "colour"]


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("age", "thirty", "expects a number"),
        ("age", "31", "expects a number"),
        ("price", [1.0], "expects a number"),
        ("clicks_7d", 10**400, "too large"),
        ("city", 3.5, "expects a string category"),
        ("device", {"os": "ios"}, "expects a string category"),
    ],
)
def test_unusable_values_are_named(lr_model, name, value, words):
    with pytest.raises(FeatureError) as caught:
        lr_model.predict(dict(ROW, **{name: value}))
    assert list(caught.value.invalid) == [name] and words in str(caught.value)


def test_features_must_be_a_mapping(lr_model):
    with pytest.raises(FeatureError, match="mapping"):
        lr_model.predict([31.0, 12.5])


def test_a_batch_names_the_value_at_fault_like_a_single_row(lr_model):
    with pytest.raises(FeatureError) as caught:
        lr_model.predict_rows([ROW, dict(ROW, clicks_7d=10**400)])
    assert caught.value.row == 1 and caught.value.invalid == {"clicks_7d": "is too large for float32"}


def test_a_batch_names_the_row_at_fault(lr_model):
    rows = [ROW, ROW, {k: v for k, v in ROW.items() if k != "device"}]
    with pytest.raises(FeatureError) as caught:
        lr_model.predict_rows(rows)
    assert caught.value.row == 2 and caught.value.missing == ["device"] and str(caught.value).startswith("row 2:")


def test_integer_categories_are_read_as_their_decimal_string(lr_model):
    assert lr_model.predict(dict(ROW, device=7))[0] == lr_model.predict(dict(ROW, device="7"))[0]


def _with_metadata(data: bytes, **changes) -> bytes:
    model = onnx.load_from_string(data)
    props = {p.key: p.value for p in model.metadata_props}
    props.update({k: v for k, v in changes.items() if v is not None})
    for key in [k for k, v in changes.items() if v is None]:
        props.pop(key, None)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    return model.SerializeToString()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({contract.META_SIGNATURE: None}, contract.META_SIGNATURE),
        ({contract.META_SIGNATURE: "not json"}, contract.META_SIGNATURE),
        ({contract.META_TASK: "multiclass"}, contract.META_TASK),
        ({contract.META_THRESHOLD: None}, contract.META_THRESHOLD),
        ({contract.META_SCORE_OUTPUT: "nope"}, contract.META_SCORE_OUTPUT),
        ({contract.META_FORMAT_VERSION: "2"}, contract.META_FORMAT_VERSION),
    ],
)
def test_artifacts_breaking_the_contract_are_refused(lr, changes, words):
    with pytest.raises(ArtifactError, match=words.replace(".", r"\.")):
        Model(_with_metadata(lr.onnx, **changes))


def test_a_signature_that_does_not_match_the_graph_is_refused(lr):
    signature = json.loads(
        {p.key: p.value for p in onnx.load_from_string(lr.onnx).metadata_props}[contract.META_SIGNATURE]
    )
    swapped = [signature[1], signature[0], *signature[2:]]
    with pytest.raises(ArtifactError, match="does not match the graph inputs"):
        Model(_with_metadata(lr.onnx, **{contract.META_SIGNATURE: json.dumps(swapped)}))
    wrong_type = [dict(signature[0], type=contract.STRING), *signature[1:]]
    with pytest.raises(ArtifactError, match="declared 'string'"):
        Model(_with_metadata(lr.onnx, **{contract.META_SIGNATURE: json.dumps(wrong_type)}))


def test_bytes_that_are_not_onnx_are_refused():
    with pytest.raises(ArtifactError, match="not a loadable ONNX model"):
        Model(b"definitely not a model")


def test_concurrent_predicts_on_one_model_do_not_share_buffers(lr, lr_model):
    import threading

    expected = reference_scores(lr)[:400]
    errors = []

    def work(offset: int) -> None:
        for i in range(offset, 400, 4):
            score = lr_model.predict(lr.rows[i])[0]
            if not math.isclose(score, expected[i], abs_tol=1e-5):
                errors.append((i, score, expected[i]))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
