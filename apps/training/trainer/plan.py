"""From a training payload to a plan: what to fit, learned from the nodes' ``local_step`` hooks.

Each node type says what its parameters mean for the local engine by calling one method of the
:class:`LocalPlan` it is handed (``plan.standardize(...)``, ``plan.use_estimator(...)``); the plan then
decides how the pieces compose, which is where the rules that span nodes live: no scaler in front of tree
models, one-hot vocabularies learned from the data, the float type each model is fed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.templates.nodes import NodeKind, ParamError, Task, registry
from apps.templates.validation import chain_errors

from .errors import PayloadError

LOCAL = "local"
THREADS_VARIABLE = "MLAB_TRAIN_THREADS"


def train_threads(threads: int | None = None) -> int:
    """How many threads a fit may use: ``threads`` when given (the local engine passes its setting), else the
    environment variable MLAB_TRAIN_THREADS (what a PAI job or the command line sets), else every core this
    process may run on. 0 or empty means every core too."""
    if threads is None:
        text = os.environ.get(THREADS_VARIABLE, "").strip()
        try:
            threads = int(text) if text else 0
        except ValueError:
            raise PayloadError(f"{THREADS_VARIABLE} must be a whole number of threads, not {text!r}.") from None
    if threads < 0:
        raise PayloadError(f"{THREADS_VARIABLE} must be 0 (every core) or a positive number of threads.")
    return threads or len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class SplitSpec:
    test_ratio: float
    seed: int
    stratify: bool


@dataclass(frozen=True)
class NumericFill:
    strategy: str
    fill_value: float


@dataclass
class LocalPlan:
    """What the trainer will do, as the payload's nodes describe it."""

    template: str
    task: Task
    label: str
    numeric: list[str]
    categorical: list[str]
    numeric_fill: NumericFill | None = None
    categorical_fill: str | None = None
    scaling: tuple[bool, bool] | None = None  # (with_mean, with_std)
    max_categories: int | None = None
    split: SplitSpec | None = None
    estimator: Any = None
    trees: bool = False
    train_node: str = ""
    threads: int = 1  # what the estimator may use (train_threads)
    evaluation: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # -- what the nodes' local_step hooks call ----------------------------------------------------
    def fill_missing(self, *, numeric_strategy: str, numeric_fill_value: float, categorical_fill_value: str) -> None:
        self.numeric_fill = NumericFill(numeric_strategy, numeric_fill_value)
        self.categorical_fill = categorical_fill_value

    def standardize(self, *, with_mean: bool, with_std: bool) -> None:
        self.scaling = (with_mean, with_std)

    def one_hot(self, *, max_categories: int) -> None:
        self.max_categories = max_categories

    def split_rows(self, *, test_ratio: float, seed: int, stratify: bool) -> None:
        self.split = SplitSpec(test_ratio, seed, stratify and self.task == Task.BINARY)

    def use_estimator(self, estimator: Any, *, trees: bool) -> None:
        """``trees``: the estimator compares feature values against thresholds (it gets float32 inputs
        and no scaler, which it does not need and which would make ONNX and scikit-learn disagree)."""
        self.estimator, self.trees = estimator, trees

    def evaluate_binary(self, *, threshold: float, bin_count: int) -> None:
        self.evaluation = {"threshold": threshold, "bin_count": bin_count}

    def evaluate_regression(self, *, histogram_bins: int) -> None:
        self.evaluation = {"histogram_bins": histogram_bins}

    # -- what the trainer reads --------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return self.split.seed if self.split else _default("split", "seed")

    @property
    def scaled(self) -> bool:
        return self.scaling is not None and not self.trees

    @property
    def features(self) -> list[str]:
        """Raw features in graph input order: numeric ones, then categorical ones."""
        return [*self.numeric, *self.categorical]


def _default(node_type: str, param: str) -> Any:
    return registry.get(node_type).param_map[param].default


def _node_params(node: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The node type and its parameters for the local engine: defaults filled in, each value checked
    against its declaration, PAI-only parameters left out."""
    key, type_key = node.get("key", "?"), node.get("type")
    if not isinstance(type_key, str) or type_key not in registry:
        raise PayloadError(f"Node '{key}' has an unknown type {type_key!r}.")
    node_type = registry.get(type_key)
    given = node.get("params") or {}
    if not isinstance(given, Mapping):
        raise PayloadError(f"Node '{key}': parameters must be an object.")
    unknown = sorted(set(given) - set(node_type.param_map))
    if unknown:
        raise PayloadError(f"Node '{key}' ({type_key}) has unknown parameters: {', '.join(unknown)}.")
    params: dict[str, Any] = {}
    for param in node_type.params:
        if LOCAL not in param.engines or not param.in_payload:
            continue
        value = given.get(param.name, param.default)
        if value is not None:
            try:
                value = param.validate(value)
            except ParamError as exc:
                raise PayloadError(f"Node '{key}', parameter {param.name}: {exc}") from None
        params[param.name] = value
    return node_type, params


def plan_from_payload(payload: Mapping[str, Any], *, threads: int | None = None) -> LocalPlan:
    """Read a payload made by ``apps.templates.payload.build_payload`` into a :class:`LocalPlan`; the
    estimator gets ``train_threads(threads)`` threads."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("nodes"), list):
        raise PayloadError('The payload must be an object with a "nodes" list.')
    try:
        task = Task(payload["task"])
    except (KeyError, ValueError):
        raise PayloadError(f"Unknown task {payload.get('task')!r}; expected binary or regression.") from None
    nodes = payload["nodes"]
    if not all(isinstance(node, Mapping) for node in nodes):
        raise PayloadError("Each node of the payload must be an object.")
    if not all(isinstance(node.get("type"), str) for node in nodes):
        raise PayloadError('Each node of the payload must name its type, a string, in "type".')
    problems = chain_errors(task.value, [node.get("type") for node in nodes])
    if problems:
        raise PayloadError(" ".join(problems))

    sample_type, sample = _node_params(nodes[0])
    assert sample_type.kind == NodeKind.SAMPLE  # chain_errors guarantees it
    if not sample.get("label"):
        raise PayloadError("The sample node names no label column.")
    plan = LocalPlan(
        template=str(payload.get("template", "")),
        task=task,
        label=sample["label"],
        numeric=list(sample.get("features") or []),
        categorical=list(sample.get("categorical_features") or []),
        threads=train_threads(threads),
    )
    if not plan.features:
        raise PayloadError("The sample node names no feature column.")
    for node in nodes[1:]:
        node_type, params = _node_params(node)
        node_type.local_step(params, plan)
        if node_type.kind == NodeKind.TRAIN:
            plan.train_node = node_type.key
    _finish(plan)
    return plan


def _finish(plan: LocalPlan) -> None:
    if plan.split is None:
        test_ratio = _default("split", "test_ratio")
        plan.split_rows(test_ratio=test_ratio, seed=_default("split", "seed"), stratify=True)
        plan.notes.append(f"No split node: {test_ratio:g} of the rows are held out for evaluation.")
    if plan.categorical and plan.max_categories is None:
        raise PayloadError(f"Categorical features ({', '.join(plan.categorical)}) need a one-hot node in the template.")
    if plan.trees and plan.scaling is not None:
        plan.notes.append(
            "Standardization is skipped for tree models: trees do not need it, and a scaler in front of "
            "a tree model makes the exported model disagree with the trained one."
        )
