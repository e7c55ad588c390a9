"""The sample, checked and shaped for training: plain-word errors, the split, and feature blocks.

Raw features are held as two blocks that keep their own types: numbers in a float32 matrix (what a client
feeds the ONNX graph, so the model sees exactly the same values) and categories as dictionary-encoded
columns (:class:`TextColumn`: int32 codes, each distinct string once), which become strings only where
scikit-learn or onnxruntime needs them. The numeric block is column-major, so one feature's column is a
contiguous (n, 1) view: what an ONNX graph input wants, without a copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from apps.templates.nodes import Task
from apps.training.text_column import NULL, TextColumn
from mlab_client.contract import MISSING_CATEGORY

from .errors import TrainingDataError
from .plan import LocalPlan
from .sample import SampleData

MIN_ROWS = 20


class FeatureBlocks:
    """Rows of raw features, numeric block then categorical columns, indexed by column like a 2-D array.

    scikit-learn's ColumnTransformer selects each transformer's columns with ``X[:, columns]``; every
    transformer here takes either numeric or categorical columns, so a selection is a block (or part of
    one) and keeps its type: float32 numbers, or strings (an object array; a missing category is
    MISSING_CATEGORY, as a client feeds it). Materializing the whole as one mixed array is refused: it would
    cost an object per number.
    """

    ndim = 2

    def __init__(self, numeric: np.ndarray, categorical: list[TextColumn]):
        if any(len(column) != len(numeric) for column in categorical):
            raise ValueError("both blocks need the same rows")
        self.numeric, self.categorical = numeric, categorical
        self.width = numeric.shape[1]
        self.shape = (len(numeric), numeric.shape[1] + len(categorical))

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError("FeatureBlocks holds numbers and categories apart; select columns with [:, columns].")

    def __getitem__(self, key: Any) -> np.ndarray:
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None)):
            raise TypeError("FeatureBlocks supports column selection only: blocks[:, columns].")
        columns = key[1]
        if isinstance(columns, int | np.integer):
            return self[:, [int(columns)]][:, 0]
        columns = [int(c) for c in np.asarray(columns).ravel()]
        if columns and all(0 <= c < self.width for c in columns):
            return self.numeric if columns == list(range(self.width)) else self.numeric[:, columns]
        if columns and all(self.width <= c < self.shape[1] for c in columns):
            texts = np.empty((len(self), len(columns)), dtype=object, order="F")
            for j, c in enumerate(columns):
                texts[:, j] = self.categorical[c - self.width].to_objects(MISSING_CATEGORY)
            return texts
        raise TypeError("A column selection mixes numeric and categorical features.")

    def rows(self, start: int, stop: int) -> FeatureBlocks:
        return FeatureBlocks(self.numeric[start:stop], [c.take(slice(start, stop)) for c in self.categorical])

    def onnx_feed(self, plan: LocalPlan) -> dict[str, np.ndarray]:
        """One (n, 1) array per raw feature, as the ONNX graph takes them."""
        feed: dict[str, np.ndarray] = {}
        for j, name in enumerate(plan.numeric):
            feed[name] = np.ascontiguousarray(self.numeric[:, j : j + 1])
        for name, column in zip(plan.categorical, self.categorical, strict=True):
            feed[name] = column.to_objects(MISSING_CATEGORY).reshape(-1, 1)
        return feed


@dataclass
class PreparedSample:
    """Checked columns: numeric ones as float64 (NaN for missing), categorical ones as TextColumns whose
    values are distinct non-empty strings (a missing value, or the empty string, is code NULL); the label
    as float64."""

    numeric: list[np.ndarray]
    categorical: list[TextColumn]
    label: np.ndarray

    def blocks(self, rows: np.ndarray) -> FeatureBlocks:
        numeric = np.empty((len(rows), len(self.numeric)), dtype=np.float32, order="F")
        for j, column in enumerate(self.numeric):
            numeric[:, j] = column[rows]
        return FeatureBlocks(numeric, [column.take(rows) for column in self.categorical])


def _first_bad_number(values: np.ndarray) -> Any:
    for value in values.tolist():
        if value is None:
            continue
        try:
            float(value)
        except (TypeError, ValueError):
            return value
    return None


def _as_numbers(name: str, values: np.ndarray, what: str) -> np.ndarray:
    if values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    if values.dtype.kind in "OUS":
        bad = _first_bad_number(values)
        if bad is None:
            return np.fromiter(
                (np.nan if v is None else float(v) for v in values.tolist()), dtype=np.float64, count=len(values)
            )
        shown = str(bad)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise TrainingDataError(f"Column '{name}' is {what} but holds non-numeric values such as {shown!r}.")
    raise TrainingDataError(f"Column '{name}' is {what} but holds {values.dtype} values, not numbers.")


def _numeric_feature(name: str, values: np.ndarray, plan: LocalPlan, fitting: bool) -> np.ndarray:
    column = _as_numbers(name, values, "a numeric feature")
    if not fitting:
        return column
    missing = np.isnan(column)
    if missing.all():
        raise TrainingDataError(f"Column '{name}' is empty in every row of the sample; remove it from the features.")
    if np.isinf(column).any():
        raise TrainingDataError(f"Column '{name}' holds infinite values; filter them out or fix the source.")
    if plan.numeric_fill is None and missing.any():
        raise TrainingDataError(
            f"Column '{name}' is empty in {int(missing.sum())} rows and the template has no node to fill "
            "missing values: add a 'Fill missing values' node or filter those rows out."
        )
    return column


def _categorical_feature(name: str, values: Any, fitting: bool) -> TextColumn:
    column = values if isinstance(values, TextColumn) else TextColumn.encode(np.asarray(values).tolist())
    column = _distinct_texts(column)
    if fitting and not (column.codes != NULL).any():
        raise TrainingDataError(f"Column '{name}' is empty in every row of the sample; remove it from the features.")
    return column


def _distinct_texts(column: TextColumn) -> TextColumn:
    """``column`` with values that are distinct, non-empty ``str`` (the empty string is a missing category, as
    in the client contract); its codes are reused when nothing changes."""
    code_of: dict[str, int] = {}
    remap = np.empty(len(column.values) + 1, dtype=np.int32)
    remap[-1] = NULL  # code -1 picks the last slot
    for i, value in enumerate(column.values.tolist()):
        text = value if isinstance(value, str) else str(value)
        remap[i] = NULL if text == MISSING_CATEGORY else code_of.setdefault(text, len(code_of))
    distinct = np.empty(len(code_of), dtype=object)
    distinct[:] = list(code_of)
    if np.array_equal(remap[:-1], np.arange(len(column.values))):
        return TextColumn(distinct, column.codes.astype(np.int32, copy=False))
    return TextColumn(distinct, remap[column.codes])


def _label(plan: LocalPlan, values: np.ndarray) -> np.ndarray:
    name = plan.label
    label = _as_numbers(name, np.asarray(values), "the label")
    missing = int(np.isnan(label).sum())
    if missing:
        raise TrainingDataError(f"The label column '{name}' is empty in {missing} rows; filter them out.")
    if np.isinf(label).any():
        raise TrainingDataError(f"The label column '{name}' holds infinite values; filter them out.")
    if plan.task == Task.BINARY:
        other = label[(label != 0) & (label != 1)]
        if len(other):
            raise TrainingDataError(
                f"The label column '{name}' must be 1 (positive) or 0 (negative); it holds {other[0]:g} too."
            )
        positives = int(label.sum())
        if positives in (0, len(label)):
            only = "positive (1)" if positives else "negative (0)"
            raise TrainingDataError(
                f"The label column '{name}' has one class only: every row is {only}. A model needs both "
                "positive and negative examples; widen the filters or the date window."
            )
    return label


def features(
    plan: LocalPlan, columns: Mapping[str, np.ndarray | TextColumn], *, rows: int | None = None, fitting: bool = True
) -> PreparedSample:
    """The raw feature columns in the trainer's types, checked (``fitting``: also the rules that only matter
    for training, such as a column that is empty throughout). Raises TrainingDataError."""
    for name in plan.features:
        if name not in columns:
            raise TrainingDataError(f"Column '{name}' is missing from the sample.")
        rows = len(columns[name]) if rows is None else rows
        if len(columns[name]) != rows:
            raise TrainingDataError(f"Column '{name}' has {len(columns[name])} values for {rows} rows.")
    numeric = [_numeric_feature(name, np.asarray(columns[name]), plan, fitting) for name in plan.numeric]
    categorical = [_categorical_feature(name, columns[name], fitting) for name in plan.categorical]
    return PreparedSample(numeric=numeric, categorical=categorical, label=np.zeros(rows or 0))


def prepare(plan: LocalPlan, sample: SampleData) -> PreparedSample:
    """Check the sample against the plan and return its columns in the trainer's types.
    Raises TrainingDataError naming the column at fault."""
    rows = len(sample.label)
    if rows == 0:
        raise TrainingDataError(
            "The sample is empty: the query returned no rows. Widen the filters or the date window."
        )
    if rows < MIN_ROWS:
        raise TrainingDataError(
            f"The sample has {rows} rows; at least {MIN_ROWS} are needed to train on some and evaluate on the rest."
        )
    label = _label(plan, sample.label)
    prepared = features(plan, sample.columns, rows=rows)
    prepared.label = label
    return prepared


def constant_features(plan: LocalPlan, prepared: PreparedSample) -> list[str]:
    """Features that hold one value in every row where they are not missing: no model can use them."""
    names = []
    for name, column in zip(plan.numeric, prepared.numeric, strict=True):
        if np.nanmin(column) == np.nanmax(column):
            names.append(name)
    for name, text in zip(plan.categorical, prepared.categorical, strict=True):
        present = text.codes[text.codes != NULL]
        if present.min() == present.max():
            names.append(name)
    return names


def split(plan: LocalPlan, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training and test parts, each in ascending order.

    ``ceil(test_ratio × rows)`` rows are held out, drawn at random with the split's seed; stratified, each
    class gives its share (largest remainders get the rounding). Linear in the rows: scikit-learn's
    stratified train_test_split sorts the labels and took 6 s of ten million rows.
    """
    spec = plan.split
    assert spec is not None
    n = len(label)
    if spec.stratify:
        minority = int(min(label.sum(), n - label.sum()))
        if minority < 2:
            raise TrainingDataError(
                f"The label column '{plan.label}' has a single row of one class; at least 2 are needed to put "
                "one on each side of the train/test split."
            )
        groups = [np.flatnonzero(label == 0), np.flatnonzero(label != 0)]
    else:
        groups = [np.arange(n)]
    shares = _held_out_per_group(int(np.ceil(spec.test_ratio * n)), [len(rows) for rows in groups])
    rng = np.random.default_rng(spec.seed)
    held_out = np.zeros(n, dtype=bool)
    for rows, share in zip(groups, shares, strict=True):
        held_out[rows[rng.permutation(len(rows))[:share]]] = True
    train_rows, test_rows = np.flatnonzero(~held_out), np.flatnonzero(held_out)
    if plan.task == Task.BINARY and len(np.unique(label[train_rows])) < 2:
        raise TrainingDataError(
            f"The training part of the split has one class only in '{plan.label}'; turn on stratify in the "
            "split node or use a larger sample."
        )
    return train_rows, test_rows


def _held_out_per_group(total: int, sizes: list[int]) -> list[int]:
    """``total`` held-out rows shared among groups in proportion to their ``sizes``, rounding by largest
    remainder (the earlier group on a tie)."""
    exact = [total * size / sum(sizes) for size in sizes]
    shares = [int(share) for share in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (shares[i] - exact[i], i))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares
