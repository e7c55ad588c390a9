"""Training algorithm nodes. Parameter names are those of the PAI algorithm each node stands for, so a
PAI Designer user finds the names they know, and the PAI engine sends them unchanged.

``local_step`` maps those parameters onto the estimator the local trainer fits (scikit-learn's, or LightGBM's
scikit-learn estimator for ``train.gbdt``; imported lazily: the web process never needs them to show a form).
PAI-only parameters are not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Group, NodeKind, NodeType, Param, ParamType, Task, registry

T = ParamType

PAI_ONLY = ("pai",)
MAX_LEAVES = 1024  # train.gbdt: leaves per tree at most, whatever the depth
TUNING = (
    Param(
        "coreNum",
        T.INT,
        "Cores",
        min=1,
        max=800,
        group=Group.TUNING,
        engines=PAI_ONLY,
        help="PAI: number of cores; empty lets PAI decide. The local engine uses this machine's cores.",
    ),
    Param(
        "memSizePerCore",
        T.INT,
        "Memory per core (MB)",
        min=1024,
        max=65_536,
        group=Group.TUNING,
        engines=PAI_ONLY,
        help="PAI: memory per core in MB; empty lets PAI decide.",
    ),
)


@registry.register
class LogisticRegression(NodeType):
    key = "train.logistic_regression"
    kind = NodeKind.TRAIN
    task = Task.BINARY
    pai_algorithm = "logisticregression_binary"
    label = "Logistic regression (binary)"
    description = "A linear model of the log-odds. Fast, robust, and its weights are easy to read."
    params = (
        Param(
            "regularizedType",
            T.CHOICE,
            "Regularization",
            default="l2",
            choices=("l1", "l2", "None"),
            help="l1 drives weak features to zero, l2 shrinks all weights, None fits without a penalty.",
        ),
        Param(
            "regularizedLevel",
            T.FLOAT,
            "Regularization strength",
            default=1.0,
            min=0.0,
            max=1e6,
            help="Larger values mean simpler models. Ignored when regularization is None.",
        ),
        Param(
            "maxIter",
            T.INT,
            "Max iterations",
            default=100,
            min=1,
            max=10_000,
            help="Upper bound on optimizer iterations.",
        ),
        Param(
            "epsilon",
            T.FLOAT,
            "Convergence tolerance",
            default=1e-6,
            min=0.0,
            exclusive_min=True,
            max=1.0,
            help="Optimization stops when the improvement falls below this.",
        ),
        *TUNING,
    )

    def local_step(self, cleaned: Mapping[str, Any], context: Any) -> None:
        import numpy as np
        from sklearn.linear_model import LogisticRegression as Estimator

        kind, level = cleaned["regularizedType"], cleaned["regularizedLevel"]
        common = {"max_iter": cleaned["maxIter"], "tol": cleaned["epsilon"], "random_state": context.seed}
        if kind == "None" or level == 0:
            estimator = Estimator(C=np.inf, solver="lbfgs", **common)
        elif kind == "l1":
            estimator = Estimator(C=1 / level, l1_ratio=1.0, solver="liblinear", **common)
        else:
            estimator = Estimator(C=1 / level, l1_ratio=0.0, solver="lbfgs", **common)
        context.use_estimator(estimator, trees=False)


@registry.register
class GradientBoostedTrees(NodeType):
    key = "train.gbdt"
    kind = NodeKind.TRAIN
    task = Task.BINARY
    pai_algorithm = "ps_smart"
    label = "Gradient-boosted trees (binary)"
    description = "An ensemble of shallow trees, each correcting the previous ones. Strong on tabular data."
    params = (
        Param("treeCount", T.INT, "Trees", default=100, min=1, max=10_000, help="Number of boosting rounds."),
        Param("maxDepth", T.INT, "Max depth", default=5, min=1, max=20, help="Depth of each tree."),
        Param(
            "shrinkage",
            T.FLOAT,
            "Learning rate",
            default=0.1,
            min=0.0,
            exclusive_min=True,
            max=1.0,
            help="Weight of each new tree; smaller needs more trees but generalizes better.",
        ),
        Param("l1", T.FLOAT, "L1 penalty", default=0.0, min=0.0, max=1e6, help="L1 penalty on leaf weights."),
        Param("l2", T.FLOAT, "L2 penalty", default=1.0, min=0.0, max=1e6, help="L2 penalty on leaf weights."),
        Param(
            "sampleRatio",
            T.FLOAT,
            "Row sample ratio",
            default=1.0,
            min=0.0,
            exclusive_min=True,
            max=1.0,
            help="Fraction of rows each tree sees.",
        ),
        Param(
            "featureRatio",
            T.FLOAT,
            "Feature sample ratio",
            default=1.0,
            min=0.0,
            exclusive_min=True,
            max=1.0,
            help="Fraction of features each tree considers.",
        ),
        Param(
            "minLeafSampleCount",
            T.INT,
            "Min rows per leaf",
            default=20,
            min=1,
            max=1_000_000,
            pai_name="minLeafSampleCount",
            help="A leaf holds at least this many training rows; larger values give smoother models.",
        ),
        *TUNING,
    )

    def local_step(self, cleaned: Mapping[str, Any], context: Any) -> None:
        # LightGBM, as PAI's ps_smart is a histogram GBDT too: at a million rows it fits in seconds where
        # scikit-learn's GradientBoostingClassifier takes minutes, at the same AUC. It exports through
        # onnxmltools' converter, which the trainer registers with skl2onnx (apps/training/trainer/export.py).
        from lightgbm import LGBMClassifier

        depth, sample_ratio = cleaned["maxDepth"], cleaned["sampleRatio"]
        estimator = LGBMClassifier(
            boosting_type="gbdt",
            n_estimators=cleaned["treeCount"],
            max_depth=depth,
            # ps_smart grows each level in full; LightGBM grows leaf by leaf, so give it the leaves a full tree
            # of that depth has (capped: deep trees would make huge models for little gain).
            num_leaves=min(2**depth, MAX_LEAVES),
            learning_rate=cleaned["shrinkage"],
            reg_alpha=cleaned["l1"],
            reg_lambda=cleaned["l2"],
            subsample=sample_ratio,
            subsample_freq=1 if sample_ratio < 1 else 0,  # LightGBM samples rows only when told how often
            colsample_bytree=cleaned["featureRatio"],
            min_child_samples=cleaned["minLeafSampleCount"],
            importance_type="gain",  # the report's importances: total gain of each column's splits
            random_state=context.seed,
            n_jobs=context.threads,
            # The same parameters and data give the same trees, bit for bit, hence the same artifact.
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
        context.use_estimator(estimator, trees=True)


@registry.register
class RandomForest(NodeType):
    key = "train.random_forest"
    kind = NodeKind.TRAIN
    task = Task.BINARY
    pai_algorithm = "randomforests"
    label = "Random forest (binary)"
    description = "Many deep trees on random subsets, averaged. Little tuning needed."
    params = (
        Param("treeNum", T.INT, "Trees", default=100, min=1, max=1_000, help="Number of trees."),
        Param("maxTreeDeep", T.INT, "Max depth", default=12, min=1, max=100, help="Depth limit of each tree."),
        Param(
            "minNumObj",
            T.INT,
            "Min rows per leaf",
            default=2,
            min=1,
            max=100_000,
            help="A leaf holds at least this many rows.",
        ),
        Param(
            "randomColNum",
            T.INT,
            "Features per split",
            min=1,
            max=10_000,
            help="Features considered at each split; empty means the square root of the feature count.",
        ),
        *TUNING,
    )

    def local_step(self, cleaned: Mapping[str, Any], context: Any) -> None:
        from sklearn.ensemble import RandomForestClassifier

        estimator = RandomForestClassifier(
            n_estimators=cleaned["treeNum"],
            max_depth=cleaned["maxTreeDeep"],
            min_samples_leaf=cleaned["minNumObj"],
            max_features=cleaned["randomColNum"] or "sqrt",
            random_state=context.seed,
            n_jobs=context.threads,
        )
        context.use_estimator(estimator, trees=True)


@registry.register
class LinearRegression(NodeType):
    key = "train.linear_regression"
    kind = NodeKind.TRAIN
    task = Task.REGRESSION
    pai_algorithm = "linearregression"
    label = "Linear regression"
    description = "A linear model of a numeric target; optional l1 (lasso) or l2 (ridge) penalty."
    params = (
        Param(
            "regularizedType",
            T.CHOICE,
            "Regularization",
            default="None",
            choices=("l1", "l2", "None"),
            help="None: ordinary least squares; l1: lasso; l2: ridge.",
        ),
        Param(
            "regularizedLevel",
            T.FLOAT,
            "Regularization strength",
            default=1.0,
            min=0.0,
            max=1e6,
            help="Penalty weight when regularization is l1 or l2.",
        ),
        Param(
            "maxIter",
            T.INT,
            "Max iterations",
            default=1000,
            min=1,
            max=100_000,
            help="Upper bound on optimizer iterations (l1).",
        ),
        Param(
            "epsilon",
            T.FLOAT,
            "Convergence tolerance",
            default=1e-6,
            min=0.0,
            exclusive_min=True,
            max=1.0,
            help="Optimization stops when the improvement falls below this.",
        ),
        *TUNING,
    )

    def local_step(self, cleaned: Mapping[str, Any], context: Any) -> None:
        from sklearn import linear_model

        kind, level = cleaned["regularizedType"], cleaned["regularizedLevel"]
        iteration = {"max_iter": cleaned["maxIter"], "tol": cleaned["epsilon"]}
        if kind == "None" or level == 0:
            estimator = linear_model.LinearRegression()
        elif kind == "l1":
            estimator = linear_model.Lasso(alpha=level, random_state=context.seed, **iteration)
        else:
            estimator = linear_model.Ridge(alpha=level, **iteration)
        context.use_estimator(estimator, trees=False)
