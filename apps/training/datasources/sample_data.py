"""The sample as the training engine receives it: column-typed numpy arrays, and its .npz file form.

- numeric features: float64, NaN for NULL;
- categorical features: :class:`~apps.training.text_column.TextColumn`, dictionary-encoded (int32 codes into
  the column's distinct strings, -1 for NULL), as they stay until the trainer one-hot encodes them;
- the label: float64 (binary: 0/1; regression: the value). Rows with a NULL label are not in the sample.

The file form (``save_sample`` / ``load_sample``) loads with ``np.load(allow_pickle=False)``: categorical
columns are stored as their distinct strings (a unicode array) and their codes, and the column lists as
JSON text.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apps.training.text_column import NULL, TextColumn

FORMAT = "mlab.sample/2"


def _fix_mmap_threshold() -> None:
    """Keep glibc serving blocks of 1 MiB and more with mmap.

    glibc raises that threshold on the fly after large blocks are freed; blocks then come from the heap,
    where growing a column copies it and freed memory is not given back. With mmap, growing a column is a
    remap (no copy) and freeing returns the pages, so a fetch peaks near the size of its result.
    """
    name = ctypes.util.find_library("c")
    if name is None:  # no C library found: nothing to tune
        return
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    m_mmap_threshold = -3
    mallopt(m_mmap_threshold, 1 << 20)


_fix_mmap_threshold()


@dataclass(frozen=True)
class SampleColumns:
    """The output columns of a sample query, in SELECT order: numeric features, categorical features, label.

    Output names equal the source column names (the allow-list guarantees they are unique in the sample).
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    label: str
    task: str  # "binary" | "regression"

    @property
    def names(self) -> list[str]:
        return [*self.numeric, *self.categorical, self.label]

    def describe(self) -> list[dict[str, str]]:
        """[{name, kind}] with kind "number", "string" or "label", in SELECT order."""
        return [
            *({"name": n, "kind": "number"} for n in self.numeric),
            *({"name": n, "kind": "string"} for n in self.categorical),
            {"name": self.label, "kind": "label"},
        ]


@dataclass
class SampleData:
    """A fetched sample. All arrays have the same length."""

    columns: SampleColumns
    numeric: dict[str, np.ndarray]
    categorical: dict[str, TextColumn]
    label: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.label.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays, counting each distinct categorical string once."""
        total = self.label.nbytes + sum(a.nbytes for a in self.numeric.values())
        return total + sum(column.nbytes for column in self.categorical.values())

    def rows(self, limit: int | None = None) -> list[list[Any]]:
        """The first ``limit`` rows as JSON values in SELECT order (NULL/NaN → None)."""
        n = len(self) if limit is None else min(limit, len(self))
        arrays = [
            *(self.numeric[c][:n] for c in self.columns.numeric),
            *(self.categorical[c].take(slice(0, n)).to_objects() for c in self.columns.categorical),
            self.label[:n],
        ]
        return [[_json_value(a[i]) for a in arrays] for i in range(n)]


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        value = float(value)
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return value


# A growing column starts at this size, where glibc serves it with mmap (see _fix_mmap_threshold): smaller
# blocks come from the heap, and each column would leave a heap hole behind when it outgrows them.
_MIN_CAPACITY_BYTES = 1 << 20


class _Growing:
    """A column that grows in place: capacity doubles with ``ndarray.resize``, which reallocates (large
    blocks are remapped, not copied; see _fix_mmap_threshold) and whose untouched capacity is not resident."""

    def __init__(self, dtype) -> None:
        self.array = np.empty(0, dtype=dtype)
        self.size = 0

    def append(self, values: np.ndarray) -> None:
        k = len(values)
        if self.size + k > len(self.array):
            self.array.resize(
                max(2 * len(self.array), self.size + k, _MIN_CAPACITY_BYTES // self.array.itemsize), refcheck=False
            )
        self.array[self.size : self.size + k] = values
        self.size += k

    def finish(self) -> np.ndarray:
        array, self.array = self.array, np.empty(0, dtype=self.array.dtype)
        array.resize(self.size, refcheck=False)
        return array


class _Categories:
    """A categorical column as codes into its own vocabulary of distinct strings (None is code NULL)."""

    def __init__(self) -> None:
        self.codes = _Growing(np.int32)
        self.strings: list[str] = []
        self.code_of: dict[Any, int] = {None: NULL}

    def code(self, value: Any) -> int:
        code = self.code_of.get(value)
        if code is None:
            text = _to_text(value)
            assert text is not None  # None is in code_of already, as NULL
            code = self.code_of.get(text)
            if code is None:
                code = self.code_of[text] = len(self.strings)
                self.strings.append(text)
            self.code_of[value] = code
        return code

    def finish(self) -> TextColumn:
        return TextColumn(_object_array(self.strings), self.codes.finish())


class SampleBuilder:
    """Collects a sample chunk by chunk with bounded extra memory.

    Numbers are copied straight into growing float64 columns and categories into growing code columns, so
    each fetched chunk can be freed at once and the peak stays near the size of the result. Categorical
    columns stay codes: each distinct string is stored once, and no object is made per row.
    """

    def __init__(self, columns: SampleColumns):
        self.columns = columns
        self._numeric = {c: _Growing(np.float64) for c in columns.numeric}
        self._categorical = {c: _Categories() for c in columns.categorical}
        self._label = _Growing(np.float64)

    def add_numeric(self, name: str, values: np.ndarray) -> None:
        self._numeric[name].append(values)

    def add_label(self, values: np.ndarray) -> None:
        self._label.append(values)

    def add_categorical_values(self, name: str, values: Iterable[Any]) -> None:
        """Raw values (any type; None for NULL)."""
        column = self._categorical[name]
        column.codes.append(np.fromiter((column.code(v) for v in values), dtype=np.int32))

    def add_categorical_codes(self, name: str, vocabulary: list[Any], codes: np.ndarray) -> None:
        """A dictionary-encoded chunk: ``vocabulary[codes[i]]``; code ``len(vocabulary)`` means NULL."""
        column = self._categorical[name]
        table = np.array([column.code(v) for v in vocabulary] + [NULL], dtype=np.int32)
        column.codes.append(table[codes])

    def finish(self, meta: dict[str, Any] | None = None) -> SampleData:
        label = self._label.finish()
        numeric = {name: self._numeric.pop(name).finish() for name in self.columns.numeric}
        categorical = {name: self._categorical.pop(name).finish() for name in self.columns.categorical}
        sample = SampleData(self.columns, numeric, categorical, label, meta or {})
        missing = np.isnan(label)
        if missing.any():  # the query excludes them; a source that ignores the filter must not leak them
            keep = ~missing
            sample = SampleData(
                self.columns,
                {k: v[keep] for k, v in numeric.items()},
                {k: v.take(keep) for k, v in categorical.items()},
                label[keep],
                sample.meta,
            )
        return sample


def _to_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _object_array(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


# -- the file form -----------------------------------------------------------------------------------------
def save_sample(path: str | Path, sample: SampleData) -> None:
    """Write ``sample`` as an .npz file that ``load_sample`` reads with allow_pickle=False."""
    cols = sample.columns
    arrays: dict[str, np.ndarray] = {
        "meta": np.array(
            json.dumps(
                {
                    "format": FORMAT,
                    "numeric": list(cols.numeric),
                    "categorical": list(cols.categorical),
                    "label": cols.label,
                    "task": cols.task,
                    "meta": sample.meta,
                }
            )
        ),
        "label": sample.label,
    }
    for i, name in enumerate(cols.numeric):
        arrays[f"numeric_{i}"] = sample.numeric[name]
    for i, name in enumerate(cols.categorical):
        column = sample.categorical[name]
        arrays[f"categorical_{i}_values"] = np.array(column.values.tolist(), dtype=str)
        arrays[f"categorical_{i}_codes"] = column.codes
    np.savez(path, allow_pickle=False, **arrays)  # refuse object arrays: load_sample could not read them


def load_sample(path: str | Path) -> SampleData:
    """Read a file written by ``save_sample``; never unpickles anything."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"Not an Mlab sample file (format {meta.get('format')!r}).")
        columns = SampleColumns(tuple(meta["numeric"]), tuple(meta["categorical"]), meta["label"], meta["task"])
        numeric = {name: data[f"numeric_{i}"].astype(np.float64) for i, name in enumerate(columns.numeric)}
        categorical = {
            name: TextColumn(
                _object_array(data[f"categorical_{i}_values"].tolist()), data[f"categorical_{i}_codes"].astype(np.int32)
            )
            for i, name in enumerate(columns.categorical)
        }
        return SampleData(columns, numeric, categorical, data["label"].astype(np.float64), meta.get("meta") or {})
