"""A local-engine training run against a plain script, on 1,000,000 demo impressions: time and peak RSS.

    python -m bench.train_local [--rows 1000000] [--templates binary-lr,binary-gbdt] [--repeats N]

Mlab's side: a real TrainingRun of the built-in template (default parameters), created by
``training_run_create`` on a DuckDB data source, executed by the job function an RQ worker calls
(``apps.training.jobs.run_training``): the recorded sample SQL streamed from DuckDB, the pipeline fitted
(LightGBM for binary-gbdt), evaluated (AUC, KS, log loss, … ROC points, feature importance), exported to
ONNX with its raw-feature signature, parity-checked with onnxruntime on the test split, and the artifact
stored in the database. Timed from the job's start to the run's success.

The plain script: the same query written by hand and fetched with DuckDB's ``fetchnumpy()`` (one thread, as
Mlab reads, so that rows come in the same order), the same rows held out (a stratified draw with the same
seed, written out in numpy), median imputation and (for the linear model) standardization in numpy,
scikit-learn's OneHotEncoder, the same estimator with the same hyperparameters (taken from the template's
plan), and its ONNX export (skl2onnx; onnxmltools' ``convert_lightgbm`` for LightGBM). Timed from
connecting to DuckDB to the ONNX bytes; its AUC on the held-out rows is computed after the clock stops (to
show both fit the same model).

For binary-gbdt a third side is the model Mlab used before (issue 13): the plain script with scikit-learn's
GradientBoostingClassifier, same trees, depth, learning rate and row sampling, exported with skl2onnx; Mlab
must be at least 20 times faster than it.

Each side runs in a fresh child process, so that peak RSS (``ru_maxrss``, imports included) is its own.
Targets: time ratio ≤ 1.2, peak RSS ratio ≤ 1.5, and ≥ 20× faster than scikit-learn's GBDT. The warehouse
is built once under var/bench/ by the project's builder and reused (the same file bench.sample_sql reads).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench._report import Report, exit_code
from bench.sample_sql import HAND_WRITTEN  # the same query as a person would write it

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ("binary-lr", "binary-gbdt")
TIME_TARGET, RSS_TARGET, SKLEARN_GBDT_TARGET = 1.2, 1.5, 20.0
# Runs per side (medians are compared): both train in seconds, where another process's burst weighs most.
REPEATS = {"binary-lr": 3, "binary-gbdt": 3}

NUMERIC = ("age", "signup_days", "is_vip", "price", "seller_rating", "discount", "position", "hour")
CATEGORICAL = ("gender", "city_tier", "category")
LABEL = "clicked"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def warehouse(rows: int) -> Path:
    from apps.demo.warehouse import build_demo_warehouse

    path = ROOT / "var" / "bench" / f"warehouse-{rows}.duckdb"
    started = time.perf_counter()
    if build_demo_warehouse(path, impressions=rows).created:
        print(f"built {path} ({rows:,} impressions) in {time.perf_counter() - started:.1f} s", flush=True)
    return path


# -- Mlab's side (a child process) -------------------------------------------------------------------------
def platform_side(template_slug: str, path: str) -> dict:
    from bench.deploy_site import BenchSite

    site = BenchSite()  # its own SQLite and embedded Redis under a temporary var/
    try:
        from django.contrib.auth import get_user_model

        from apps.templates.services import builtin_templates_sync
        from apps.training.jobs import run_training
        from apps.training.models import DataSource, TrainingRun
        from apps.training.services import training_run_create

        user = get_user_model().objects.create_user("bench", is_staff=True)
        template = {t.slug: t for t in builtin_templates_sync()}[template_slug]
        source = DataSource.objects.create(name="bench", kind=DataSource.Kind.DUCKDB, options={"path": path})
        # Committed at once (no atomic block): its on-commit enqueue reaches the bench's own queue, which no
        # worker reads; this process runs the job function itself, as a worker's horse would.
        run = training_run_create(template=template, params={}, engine="local", datasource=source, user=user)
        # Modules are loaded before the clock starts, as the plain script's are. (A forking worker whose
        # parent has not imported the trainer pays this in every job's horse: 1-2 s, see the README.)
        import apps.training.engines.local  # noqa: F401

        before = _peak_rss_mib()
        started = time.perf_counter()
        run_training(run.pk)
        seconds = time.perf_counter() - started
        peak = _peak_rss_mib()
        run = TrainingRun.objects.get(pk=run.pk)
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise RuntimeError(f"the run did not succeed: {run.status}: {run.error}")
        report = run.report or {}
        signature = report.get("signature") or []
        return {
            "seconds": seconds,
            "rss_mib": peak,
            "rss_before_mib": before,
            "auc": run.metrics.get("auc"),
            "rows": report.get("rows"),
            "timings": report.get("timings"),
            # the columns of the float32 matrix the model is fed: numbers, then one-hot columns
            "matrix_columns": sum(len(s.get("categories") or [None]) for s in signature),
            "threads": report.get("threads"),
        }
    finally:
        site.close()


# -- the plain script (a child process) --------------------------------------------------------------------
def plain_side(path: str, estimator_json: str) -> dict:
    import duckdb
    import numpy as np
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import OneHotEncoder

    spec = json.loads(estimator_json)
    estimator = _estimator_class(spec["class"])(**spec["params"])
    trees, split = spec["trees"], spec["split"]
    before = _peak_rss_mib()
    clock = _Clock()
    con = duckdb.connect(path, read_only=True)
    con.execute("SET threads = 1")  # DuckDB's row order as Mlab reads it: the same rows land in the same split
    # fetchnumpy gives masked arrays where a column has NULLs: fill them (NaN, the missing marker).
    columns = {
        name: np.ma.filled(values, _fill(values)) for name, values in con.execute(HAND_WRITTEN).fetchnumpy().items()
    }
    con.close()
    label = columns.pop(LABEL).astype(np.float64)
    clock.lap("query")
    train_rows, test_rows = _stratified_split(label, split["test_ratio"], split["seed"])
    numeric = np.column_stack([columns[n].astype(np.float64) for n in NUMERIC])
    medians = np.nanmedian(numeric[train_rows], axis=0)
    numeric = np.where(np.isnan(numeric), medians, numeric)
    if not trees:
        numeric = (numeric - numeric[train_rows].mean(axis=0)) / numeric[train_rows].std(axis=0)
    categorical = np.column_stack([columns[n].astype(object) for n in CATEGORICAL])
    del columns
    # No max_categories: every demo column has fewer than the template's 50, so the encoding is the same, and
    # scikit-learn's infrequent-category pass would cost the plain script seconds it does not need to spend.
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    encoder.fit(categorical[train_rows])
    matrix = np.hstack([numeric, encoder.transform(categorical)]).astype(np.float32 if trees else np.float64)
    del numeric, categorical
    clock.lap("preparing")
    estimator.fit(matrix[train_rows], label[train_rows])
    clock.lap("fitting")
    if type(estimator).__module__.startswith("lightgbm"):
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType as LgbmFloat

        initial = [("X", LgbmFloat([None, matrix.shape[1]]))]
        onnx_model = convert_lightgbm(estimator, initial_types=initial, target_opset=15, zipmap=False)
    else:
        onnx_model = to_onnx(
            estimator,
            initial_types=[("X", FloatTensorType([None, matrix.shape[1]]))],
            target_opset={"": 17, "ai.onnx.ml": 3},
            options={id(estimator): {"zipmap": False}},
        )
    size = len(onnx_model.SerializeToString())
    clock.lap("exporting")
    seconds = clock.total()
    peak = _peak_rss_mib()
    auc = roc_auc_score(label[test_rows], estimator.predict_proba(matrix[test_rows])[:, 1])  # after the clock
    return {
        "seconds": seconds,
        "rss_mib": peak,
        "rss_before_mib": before,
        "auc": float(auc),
        "onnx_bytes": size,
        "timings": clock.laps,
    }


class _Clock:
    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name], self.last = round(now - self.last, 3), now

    def total(self) -> float:
        return time.perf_counter() - self.started


def _stratified_split(label, test_ratio: float, seed: int):
    """ceil(test_ratio × rows) rows held out, each class giving its share, drawn with ``seed`` (as the trainer
    draws them, so that both sides hold out the same rows)."""
    import numpy as np

    groups = [np.flatnonzero(label == 0), np.flatnonzero(label != 0)]
    total = int(np.ceil(test_ratio * len(label)))
    exact = [total * len(rows) / len(label) for rows in groups]
    shares = [int(share) for share in exact]
    for i in sorted(range(2), key=lambda i: (shares[i] - exact[i], i))[: total - sum(shares)]:
        shares[i] += 1
    rng = np.random.default_rng(seed)
    held_out = np.zeros(len(label), dtype=bool)
    for rows, share in zip(groups, shares, strict=True):
        held_out[rows[rng.permutation(len(rows))[:share]]] = True
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)


def _fill(values) -> object:
    return "__missing__" if values.dtype == object else float("nan")


def _estimator_class(name: str):
    module, _, cls = name.rpartition(".")
    return getattr(__import__(module, fromlist=[cls]), cls)


def estimator_spec(template_slug: str) -> dict:
    """The estimator, hyperparameters, split and one-hot settings the template's run will use."""
    from apps.training.tests.trainer_data import builtin_payload
    from apps.training.trainer.plan import plan_from_payload

    plan = plan_from_payload(builtin_payload(template_slug))
    estimator = plan.estimator
    return {
        "class": f"{type(estimator).__module__}.{type(estimator).__name__}",
        "params": estimator.get_params(),
        "trees": plan.trees,
        "split": {"test_ratio": plan.split.test_ratio, "seed": plan.split.seed},
    }


def sklearn_gbdt_spec(spec: dict) -> dict:
    """The model binary-gbdt trained before LightGBM, with the same trees, depth, learning rate and rows."""
    params = spec["params"]
    return {
        **spec,
        "class": "sklearn.ensemble.GradientBoostingClassifier",
        "params": {
            "n_estimators": params["n_estimators"],
            "max_depth": params["max_depth"],
            "learning_rate": params["learning_rate"],
            "subsample": params["subsample"],
            "random_state": params["random_state"],
        },
    }


# -- the parent ---------------------------------------------------------------------------------------------
def _child(args: list[str]) -> dict:
    env = {**os.environ, "MLAB_LOG_LEVEL": os.environ.get("MLAB_LOG_LEVEL", "WARNING")}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # what Mlab's trainer sets for itself: the same for every side
    done = subprocess.run(
        [sys.executable, "-m", "bench.train_local", *args], cwd=ROOT, capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.train_local {' '.join(args[:3])} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_template(report: Report, template: str, path: Path, repeats: int) -> None:
    spec = estimator_spec(template)
    results: dict[str, list[dict]] = {"plain": [], "mlab": []}
    for _ in range(repeats):  # interleaved, so that drift hits both sides alike
        results["plain"].append(_child(["--side", "plain", "--warehouse", str(path), "--estimator", json.dumps(spec)]))
        results["mlab"].append(_child(["--side", "mlab", "--warehouse", str(path), "--template", template]))
    plain, mlab = results["plain"], results["mlab"]
    p_time = statistics.median(r["seconds"] for r in plain)
    m_time = statistics.median(r["seconds"] for r in mlab)
    p_rss, m_rss = max(r["rss_mib"] for r in plain), max(r["rss_mib"] for r in mlab)
    print(f"{template}: {path.name}, median of {repeats} (threads: {mlab[-1]['threads']})")
    print(
        f"  plain script  {p_time:7.2f} s   peak RSS {p_rss:6.0f} MiB   AUC {plain[-1]['auc']:.4f}   {_spread(plain)}"
    )
    print(f"  Mlab run      {m_time:7.2f} s   peak RSS {m_rss:6.0f} MiB   AUC {mlab[-1]['auc']:.4f}   {_spread(mlab)}")
    print(f"  plain stages  {plain[-1]['timings']}")
    print(f"  Mlab stages   {mlab[-1]['timings']}  rows {mlab[-1]['rows']}")
    time_ok = report.check(f"{template} time ratio", m_time / p_time, at_most=TIME_TARGET, unit="×")
    rss_ok = report.check(f"{template} peak RSS ratio", m_rss / p_rss, at_most=RSS_TARGET, unit="×")
    report.note(f"{template} Mlab run", m_time, unit="s")
    report.note(f"{template} plain script", p_time, unit="s")
    report.note(f"{template} Mlab peak RSS", m_rss, unit="MiB")
    report.note(f"{template} plain peak RSS", p_rss, unit="MiB")
    print(f"  time ratio {m_time / p_time:.2f} (target ≤ {TIME_TARGET}) {'ok' if time_ok else 'MISSED'}")
    print(f"  peak RSS ratio {m_rss / p_rss:.2f} (target ≤ {RSS_TARGET}) {'ok' if rss_ok else 'MISSED'}", flush=True)
    if spec["class"].startswith("lightgbm."):
        bench_sklearn_gbdt(report, template, path, spec, m_time)


def bench_sklearn_gbdt(report: Report, template: str, path: Path, spec: dict, mlab_seconds: float) -> None:
    """The scikit-learn GradientBoostingClassifier path binary-gbdt used before, once (it takes minutes)."""
    old = _child(["--side", "plain", "--warehouse", str(path), "--estimator", json.dumps(sklearn_gbdt_spec(spec))])
    print(f"  scikit-learn GBDT (the path replaced) {old['seconds']:7.2f} s   peak RSS {old['rss_mib']:6.0f} MiB   "
          f"AUC {old['auc']:.4f}   stages {old['timings']}")  # fmt: skip
    speedup = old["seconds"] / mlab_seconds
    ok = report.check(f"{template} speed-up vs scikit-learn GBDT", speedup, at_least=SKLEARN_GBDT_TARGET, unit="×")
    report.note(f"{template} scikit-learn GBDT script", old["seconds"], unit="s")
    print(f"  Mlab is {speedup:.1f}× faster (target ≥ {SKLEARN_GBDT_TARGET:g}×) {'ok' if ok else 'MISSED'}", flush=True)


def _spread(results: list[dict]) -> str:
    times = sorted(r["seconds"] for r in results)
    return f"runs {', '.join(f'{t:.2f}' for t in times)} s" if len(times) > 1 else ""


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--templates", default=",".join(TEMPLATES))
    parser.add_argument("--repeats", type=int, help="runs per side (default: 3 for binary-lr, 1 otherwise)")
    parser.add_argument("--side", choices=["mlab", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", help=argparse.SUPPRESS)
    parser.add_argument("--template", help=argparse.SUPPRESS)
    parser.add_argument("--estimator", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:  # a child: print one JSON line
        if args.side == "mlab":
            result = platform_side(args.template, args.warehouse)
        else:
            result = plain_side(args.warehouse, args.estimator)
        print(json.dumps(result))
        return Report("train_local")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlabsite.settings.base")
    path = warehouse(args.rows)
    report = Report("train_local")
    for template in args.templates.split(","):
        bench_template(report, template, path, args.repeats or REPEATS.get(template, 1))
    return report


if __name__ == "__main__":
    result = main()
    raise SystemExit(0 if "--side" in sys.argv else exit_code(result, "train_local"))
