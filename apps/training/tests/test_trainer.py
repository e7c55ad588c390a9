"""The trainer end to end in-process: model quality on data from known models, ONNX parity for every
built-in template, the artifact's signature and metadata, and predictions a client makes from raw values."""

from __future__ import annotations

import json
import time

import numpy as np
import onnx
import onnxruntime
import pytest
from sklearn.metrics import roc_auc_score

from apps.templates.payload import build_payload
from apps.templates.validation import template_specs, validate_run_params
from apps.training.text_column import TextColumn
from apps.training.trainer import STAGES, score_raw, train, training
from apps.training.trainer.data import FeatureBlocks
from apps.training.trainer.plan import train_threads
from mlab_client import contract

from .trainer_data import CATEGORIES, builtin_payload, click_sample, price_sample

FAST = {  # few trees: these tests check behaviour, not the best model
    "binary-gbdt": {"train": {"treeCount": 30}},
    "binary-rf": {"train": {"treeNum": 20}},
}
BINARY = ["binary-lr", "binary-gbdt", "binary-rf"]


@pytest.fixture(scope="module")
def clicks():
    return click_sample(3000, seed=1)


@pytest.fixture(scope="module")
def trained(clicks):
    sample, _ = clicks
    return {slug: train(builtin_payload(slug, FAST.get(slug)), sample) for slug in BINARY}


def session(result) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(result.onnx_bytes, providers=["CPUExecutionProvider"])


def metadata(result) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load_model_from_string(result.onnx_bytes).metadata_props}


def client_score(sess: onnxruntime.InferenceSession, meta: dict[str, str], features: dict) -> float:
    """What a client does with one dict of raw values, knowing only the artifact's metadata."""
    feed = {}
    for entry in json.loads(meta[contract.META_SIGNATURE]):
        value = features.get(entry["name"])
        if entry["type"] == contract.NUMBER:
            feed[entry["name"]] = np.array([[np.nan if value is None else value]], dtype=np.float32)
        else:
            feed[entry["name"]] = np.array([[contract.MISSING_CATEGORY if value is None else value]], dtype=object)
    out = sess.run([meta[contract.META_SCORE_OUTPUT]], feed)[0]
    return float(out[0, 1] if meta[contract.META_TASK] == "binary" else out[0, 0])


@pytest.mark.parametrize("slug", BINARY)
def test_binary_model_reaches_the_auc_of_the_true_model(clicks, trained, slug):
    sample, probability = clicks
    oracle = roc_auc_score(sample.label, probability)
    report = trained[slug].report
    # 600 held-out rows: the sampling noise of an AUC is about 0.02.
    assert oracle - 0.07 <= report["metrics"]["auc"] <= oracle + 0.04
    assert report["rows"] == {"train": 2400, "test": 600}
    assert report["parity"]["max_abs_diff"] <= 1e-5


def test_a_model_of_noise_has_no_skill(clicks):
    sample, _ = clicks
    noise = np.random.default_rng(5).permutation(sample.label)
    shuffled = type(sample)(columns=sample.columns, label=noise)
    report = train(builtin_payload("binary-lr"), shuffled).report
    assert 0.4 < report["metrics"]["auc"] < 0.6


def test_regression_recovers_a_linear_target():
    report = train(builtin_payload("regression-linear"), price_sample(2000, noise=2.0)).report
    assert report["metrics"]["r2"] > 0.9
    assert 1.5 < report["metrics"]["rmse"] < 2.6  # the noise's standard deviation is 2
    histogram = report["residual_histogram"]
    assert sum(histogram["counts"]) == report["rows"]["test"] == 400
    assert len(histogram["counts"]) == 30 and len(histogram["edges"]) == 31
    assert report["parity"]["max_abs_diff"] <= 1e-5


@pytest.mark.parametrize(
    "kind, level",
    [("l1", 0.5), ("l2", 10.0), ("None", 1.0), ("l2", 0.0)],
)
def test_logistic_regression_regularization_variants(clicks, kind, level):
    sample, _ = clicks
    payload = builtin_payload("binary-lr", {"train": {"regularizedType": kind, "regularizedLevel": level}})
    result = train(payload, sample)
    estimator = result.model.named_steps["model"]
    assert estimator.C == (np.inf if kind == "None" or level == 0 else 1 / level)
    assert estimator.l1_ratio == (1.0 if kind == "l1" and level else 0.0)
    assert result.report["metrics"]["auc"] > 0.72
    assert result.report["parity"]["max_abs_diff"] <= 1e-5


@pytest.mark.parametrize("kind, expected", [("None", "LinearRegression"), ("l1", "Lasso"), ("l2", "Ridge")])
def test_linear_regression_variants(kind, expected):
    payload = builtin_payload("regression-linear", {"train": {"regularizedType": kind, "regularizedLevel": 0.1}})
    result = train(payload, price_sample(1000))
    assert type(result.model.named_steps["model"]).__name__ == expected
    assert result.report["metrics"]["r2"] > 0.85
    assert result.report["parity"]["max_abs_diff"] <= 1e-5


def test_node_parameters_reach_the_estimators(clicks):
    sample, _ = clicks
    ps_smart = {"treeCount": 7, "maxDepth": 2, "shrinkage": 0.3, "l1": 0.5, "l2": 2.0, "sampleRatio": 0.8,
                "featureRatio": 0.5, "minLeafSampleCount": 30}  # fmt: skip
    gbdt = train(builtin_payload("binary-gbdt", {"train": ps_smart}), sample, threads=1).model.named_steps["model"]
    assert type(gbdt).__name__ == "LGBMClassifier"
    assert gbdt.get_params() | {
        "n_estimators": 7, "max_depth": 2, "num_leaves": 4, "learning_rate": 0.3, "reg_alpha": 0.5,
        "reg_lambda": 2.0, "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.5,
        "min_child_samples": 30, "n_jobs": 1, "deterministic": True, "importance_type": "gain",
    } == gbdt.get_params()  # fmt: skip
    trees = gbdt.booster_.dump_model()["tree_info"]
    assert len(trees) == 7 and all(tree["num_leaves"] <= 4 for tree in trees)
    full_rows = train(builtin_payload("binary-gbdt", {"train": {"treeCount": 3}}), sample).model.named_steps["model"]
    assert full_rows.subsample_freq == 0  # sampleRatio 1: no bagging at all
    assert full_rows.n_jobs == train_threads()
    rf = train(
        builtin_payload("binary-rf", {"train": {"treeNum": 5, "maxTreeDeep": 3, "minNumObj": 7, "randomColNum": 999}}),
        sample,
    ).model.named_steps["model"]
    assert (rf.n_estimators, rf.max_depth, rf.min_samples_leaf, rf.n_jobs) == (5, 3, 7, train_threads())
    assert rf.max_features == rf.n_features_in_  # more features per split than columns: all columns
    assert max(tree.get_depth() for tree in rf.estimators_) <= 3


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["binary-lr", "binary-gbdt", "binary-rf", "regression-linear"])
def test_every_builtin_template_payload_exports_with_parity(builtin_templates, slug):
    template = builtin_templates[slug]
    specs = template_specs(template)
    cleaned = validate_run_params(template, FAST.get(slug, {}), specs=specs)
    payload = build_payload(template_slug=slug, task=template.task_type, specs=specs, cleaned=cleaned)
    sample = price_sample(800) if slug == "regression-linear" else click_sample(1500, seed=3)[0]
    result = train(json.loads(json.dumps(payload)), sample)
    assert result.report["parity"]["max_abs_diff"] <= 1e-5
    assert result.report["parity"]["rows"] == result.report["rows"]["test"]


def test_report_is_json_and_complete(trained):
    result = trained["binary-gbdt"]
    report = json.loads(json.dumps(result.report, allow_nan=False))
    assert report["task"] == "binary" and report["algorithm"] == "train.gbdt" and report["label"] == "clicked"
    metrics = report["metrics"]
    for name in ("auc", "ks", "log_loss", "accuracy", "precision", "recall", "f1"):
        assert 0 <= metrics[name] <= (10 if name == "log_loss" else 1), name
    confusion = report["confusion"]
    assert sum(confusion.values()) == report["rows"]["test"]
    assert metrics["accuracy"] == pytest.approx((confusion["tp"] + confusion["tn"]) / report["rows"]["test"])
    roc = report["roc"]
    assert 2 <= len(roc["fpr"]) == len(roc["tpr"]) <= 200
    assert roc["fpr"][0] == 0 and roc["fpr"][-1] == 1 and roc["tpr"][-1] == 1
    assert all(np.diff(roc["fpr"]) >= 0)
    assert metrics["ks"] == pytest.approx(max(np.subtract(roc["tpr"], roc["fpr"])), abs=0.05)
    importance = report["feature_importance"]
    assert {row["feature"] for row in importance} == set(result.plan.features)
    assert sum(row["importance"] for row in importance) == pytest.approx(1.0)
    assert importance[0]["feature"] in {"position", "seller_rating", "discount"}  # the strongest true effects
    assert set(report["timings"]) == {"preparing", "fitting", "evaluating", "exporting", "checking_parity", "total"}


def test_roc_points_follow_the_evaluate_node(clicks):
    sample, _ = clicks
    report = train(builtin_payload("binary-lr", {"evaluate": {"binCount": 10}}), sample).report
    assert len(report["roc"]["fpr"]) == 10


def test_threshold_decides_the_confusion_counts(clicks):
    sample, _ = clicks
    low = train(builtin_payload("binary-lr", {"evaluate": {"threshold": 0.1}}), sample).report
    high = train(builtin_payload("binary-lr", {"evaluate": {"threshold": 0.9}}), sample).report
    assert low["confusion"]["tp"] + low["confusion"]["fp"] > high["confusion"]["tp"] + high["confusion"]["fp"]
    assert low["metrics"]["recall"] > high["metrics"]["recall"]
    assert low["metrics"]["auc"] == high["metrics"]["auc"]


def test_linear_importance_is_on_the_standardized_scale(clicks):
    sample, _ = clicks
    # Unpenalized, a linear model's fit is the same with or without standardization, and so are its
    # importances when measured as |coef| × the column's spread. (Numeric features only: a full one-hot
    # block plus an intercept leaves categorical weights unidentified without a penalty.)
    params = {"train": {"regularizedType": "None", "maxIter": 5000}, "sample": {"categorical_features": []}}
    scaled = train(builtin_payload("binary-lr", params), sample).report
    payload = builtin_payload("binary-lr", params)
    payload["nodes"] = [node for node in payload["nodes"] if node["type"] != "preprocess.standardize"]
    raw = train(payload, sample).report
    as_dict = lambda report: {row["feature"]: row["importance"] for row in report["feature_importance"]}  # noqa: E731
    assert as_dict(raw) == pytest.approx(as_dict(scaled), abs=0.01)
    assert raw["metrics"]["auc"] == pytest.approx(scaled["metrics"]["auc"], abs=0.002)


def test_progress_reports_each_stage_in_order(clicks):
    sample, _ = clicks
    calls = []
    train(builtin_payload("binary-lr"), sample, progress=lambda *args: calls.append(args))
    assert [stage for stage, _, _ in calls] == list(STAGES)
    percents = [percent for _, percent, _ in calls]
    assert percents == sorted(percents) and percents[-1] == 100
    assert all(isinstance(message, str) and message for _, _, message in calls)


def test_boosting_rounds_move_the_bar_while_fitting(clicks, monkeypatch):
    sample, _ = clicks
    calls = []
    monkeypatch.setattr(training, "ROUND_MOVE_SECONDS", 0.0)  # every round that moves the bar is reported
    train(builtin_payload("binary-gbdt", {"train": {"treeCount": 20}}), sample, progress=lambda *a: calls.append(a))
    stages = [stage for stage, _, _ in calls]
    assert list(dict.fromkeys(stages)) == list(STAGES)
    rounds = [(percent, message) for stage, percent, message in calls if stage == "fitting"][1:]
    assert len(rounds) == 20  # 60 points of the bar for 20 rounds: every round moves it
    assert rounds[-1] == (70, "Fitting the model: round 20 of 20")
    percents = [percent for _, percent, _ in calls]
    assert percents == sorted(percents)


def test_fast_rounds_are_reported_a_few_times_a_second_and_the_last_one_always(clicks):
    sample, _ = clicks
    calls = []
    started = time.perf_counter()
    train(builtin_payload("binary-gbdt", {"train": {"treeCount": 200}}), sample, progress=lambda *a: calls.append(a))
    seconds = time.perf_counter() - started
    rounds = [message for stage, _, message in calls if stage == "fitting"][1:]
    assert rounds[-1] == "Fitting the model: round 200 of 200"
    assert len(rounds) <= 1 + seconds / training.ROUND_MOVE_SECONDS


def test_slow_rounds_are_reported_even_when_the_bar_does_not_move():
    calls = []
    stages = training._Stages(lambda *args: calls.append(args))
    stages.enter("fitting")
    for done in range(1, 41):  # 40 of 100,000 rounds, 0.03 s each: the bar stays at its first percent
        time.sleep(0.03)
        stages.rounds(done, 100_000)
    reports = calls[1:]
    assert reports and all(percent == STAGES["fitting"][0] for _, percent, _ in reports)
    assert 1 <= len(reports) <= 1.2 / training.ROUND_REPORT_SECONDS  # about every ROUND_REPORT_SECONDS
    assert training.ROUND_REPORT_SECONDS <= 0.5  # what a cancel waits for at most, besides one round


# -- the artifact -----------------------------------------------------------------------------------


def test_signature_inputs_and_metadata(trained):
    result = trained["binary-lr"]
    model = onnx.load_model_from_string(result.onnx_bytes)
    onnx.checker.check_model(model)
    numeric = ["age", "signup_days", "is_vip", "price", "seller_rating", "discount", "position", "hour"]
    categorical = ["gender", "city_tier", "category"]
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert list(inputs) == numeric + categorical
    for name, tensor in inputs.items():
        expected = onnx.TensorProto.FLOAT if name in numeric else onnx.TensorProto.STRING
        assert tensor.elem_type == expected
        assert [d.dim_value or d.dim_param or None for d in tensor.shape.dim][1] == 1
    meta = metadata(result)
    assert meta[contract.META_TASK] == "binary"
    assert meta[contract.META_FORMAT_VERSION] == contract.FORMAT_VERSION
    assert float(meta[contract.META_THRESHOLD]) == 0.5
    assert meta[contract.META_SCORE_OUTPUT] in [o.name for o in model.graph.output]
    signature = json.loads(meta[contract.META_SIGNATURE])
    assert signature == result.report["signature"]
    assert [s["name"] for s in signature] == numeric + categorical
    assert [s["type"] for s in signature] == ["number"] * 8 + ["string"] * 3
    categories = {s["name"]: s["categories"] for s in signature if s["type"] == "string"}
    assert set(categories["gender"]) == {"f", "m", "u", "__missing__"}
    assert set(categories["category"]) == {*CATEGORIES["category"], "__missing__"}


def test_regression_metadata_has_no_threshold():
    result = train(builtin_payload("regression-linear"), price_sample(500))
    meta = metadata(result)
    assert meta[contract.META_TASK] == "regression" and contract.META_THRESHOLD not in meta
    out = session(result).run(
        [meta[contract.META_SCORE_OUTPUT]],
        {
            "seller_rating": np.array([[3.0]], np.float32),
            "discount": np.array([[0.1]], np.float32),
            "category": np.array([["toys"]], object),
        },
    )[0]
    assert out.shape == (1, 1)


def test_one_hot_keeps_the_most_frequent_categories(clicks):
    sample, _ = clicks
    columns = dict(sample.columns)
    rng = np.random.default_rng(0)
    columns["category"] = np.array(["a"] * 1500 + ["b"] * 900 + ["c"] * 450 + ["d"] * 150, dtype=object)
    columns["category"] = columns["category"][rng.permutation(3000)]
    result = train(
        builtin_payload("binary-lr", {"one_hot": {"max_categories": 2}}), type(sample)(columns, sample.label)
    )
    categories = {s["name"]: s["categories"] for s in result.report["signature"] if s["type"] == "string"}
    assert categories["category"] == ["a", "b"]


def test_a_client_feeding_raw_dicts_gets_the_trainers_scores(clicks, trained):
    sample, _ = clicks
    rows = [
        {"age": 31, "signup_days": 100, "is_vip": 1, "price": 12.5, "seller_rating": 4.5, "discount": 0.2,
         "position": 3, "hour": 20, "gender": "f", "city_tier": "1", "category": "phones"},
        # missing values everywhere
        {"age": None, "signup_days": None, "is_vip": None, "price": None, "seller_rating": None,
         "discount": None, "position": None, "hour": None, "gender": None, "city_tier": None, "category": None},
        # categories never seen in training
        {"age": 50, "signup_days": 3000, "is_vip": 0, "price": 999.0, "seller_rating": 1.0, "discount": 0.0,
         "position": 20, "hour": 3, "gender": "x", "city_tier": "9", "category": "spaceships"},
    ]  # fmt: skip
    rows += [{name: _py(sample.columns[name][i]) for name in sample.columns} for i in range(20)]
    for slug, result in trained.items():
        sess, meta = session(result), metadata(result)
        expected = score_raw(result, _columns(rows, result.plan))
        got = np.array([client_score(sess, meta, row) for row in rows])
        assert np.isfinite(got).all(), slug
        assert np.abs(got - expected).max() <= 1e-5, slug


def test_missing_and_unseen_categories_encode_as_the_contract_says(trained):
    result = trained["binary-lr"]
    sess, meta = session(result), metadata(result)
    base = {"age": 30, "signup_days": 10, "is_vip": 0, "price": 20.0, "seller_rating": 3.0, "discount": 0.1,
            "position": 5, "hour": 12, "gender": "m", "city_tier": "2", "category": "toys"}  # fmt: skip
    score = lambda **change: client_score(sess, meta, {**base, **change})  # noqa: E731
    # A missing category is the empty string, filled with the template's marker inside the graph.
    assert score(category=None) == score(category="__missing__")
    # Unseen categories all encode as zeros, so they score alike, and unlike a known one.
    assert score(category="spaceships") == score(category="submarines") != score(category="toys")
    # A missing number is imputed with the training median, not treated as zero.
    median = float(np.nanmedian(result.model.named_steps["features"].named_transformers_["numeric"]
                                .named_steps["fill_missing"].statistics_[3:4]))  # fmt: skip
    assert score(price=None) == pytest.approx(score(price=median), abs=1e-6)


def test_feature_named_like_an_output_still_gets_its_score_output():
    sample = price_sample(600)
    sample.columns = {"label": sample.columns["seller_rating"], "variable": sample.columns["discount"],
                      "probabilities": sample.columns["category"]}  # fmt: skip
    payload = builtin_payload("regression-linear", {
        "sample": {"features": ["label", "variable"], "categorical_features": ["probabilities"]}
    })  # fmt: skip
    result = train(payload, sample)
    meta = metadata(result)
    assert meta[contract.META_SCORE_OUTPUT] not in {"label", "variable", "probabilities"}
    value = client_score(session(result), meta, {"label": 3.0, "variable": 0.1, "probabilities": "toys"})
    assert value == pytest.approx(float(score_raw(result, _columns([{"label": 3.0, "variable": 0.1,
                                  "probabilities": "toys"}], result.plan))[0]), abs=1e-5)  # fmt: skip


def _py(value):
    if isinstance(value, float) and np.isnan(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _columns(rows: list[dict], plan) -> dict[str, np.ndarray]:
    columns = {}
    for name in plan.numeric:
        columns[name] = np.array([np.nan if row[name] is None else row[name] for row in rows], dtype=np.float64)
    for name in plan.categorical:
        columns[name] = np.array([row[name] for row in rows], dtype=object)
    return columns


def test_feature_blocks_keep_numbers_and_categories_apart():
    numeric = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(3, 2))
    blocks = FeatureBlocks(numeric, [TextColumn.encode(["a", "b", None])])
    assert blocks.shape == (3, 3)
    assert blocks[:, [0, 1]] is numeric  # a whole block is handed over without a copy
    assert blocks[:, [2]].tolist() == [["a"], ["b"], [""]]  # a missing category as a client feeds it
    assert blocks[:, 1].tolist() == [1.0, 3.0, 5.0]
    with pytest.raises(TypeError, match="mixes numeric and categorical"):
        blocks[:, [1, 2]]
