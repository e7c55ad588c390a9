"""The training sample as the trainer receives it, and its file format (.npz, loadable without pickle).

Numeric features are float64 arrays with NaN for NULL; categorical features are dictionary-encoded
:class:`~apps.training.text_column.TextColumn` (what the sample fetch gives) or object arrays of ``str``
with ``None`` for NULL; the label is float64 (0/1 for binary tasks). Which columns are numeric or
categorical is said by the sample node of the payload, not by the arrays.

In the file, numeric columns are stored as they are. Text columns are dictionary-encoded: a unicode array
of the distinct values and an int32 array of codes where -1 marks NULL, which is both the null mask and a
copy of each distinct string only once. Loading gives TextColumns again.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apps.training.text_column import TextColumn

FORMAT_VERSION = 1
_COLUMNS = "__columns__"
_VERSION = "__format__"
_LABEL = "__label__"


@dataclass
class SampleData:
    """Columns by name (numeric: float64 with NaN; categorical: TextColumn, or object arrays of str with
    None) and the label (float64)."""

    columns: dict[str, np.ndarray | TextColumn]
    label: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.label)


def _is_text(values: np.ndarray) -> bool:
    return values.dtype.kind in "OUS"


def save_sample(path: str | os.PathLike[str], sample: SampleData) -> None:
    """Write ``sample`` to ``path`` (.npz), atomically: a reader sees the old file or the complete new one."""
    arrays: dict[str, np.ndarray] = {
        _VERSION: np.array(FORMAT_VERSION),
        _COLUMNS: np.array(list(sample.columns), dtype=str),
        _LABEL: np.asarray(sample.label, dtype=np.float64),
    }
    for i, values in enumerate(sample.columns.values()):
        if not isinstance(values, TextColumn):
            values = np.asarray(values)
            if not _is_text(values):
                arrays[f"n{i}"] = values
                continue
            values = TextColumn.encode(values.tolist())
        arrays[f"t{i}_values"] = np.array(values.values.tolist(), dtype=str)
        arrays[f"t{i}_codes"] = values.codes
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; readers run as other users
        with os.fdopen(fd, "wb") as handle:
            # Every array is numeric or unicode: refuse to pickle one (the format is loadable without pickle).
            np.savez(handle, allow_pickle=False, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_sample(path: str | os.PathLike[str]) -> SampleData:
    """Read a sample written by :func:`save_sample`. Never unpickles: text columns come back as TextColumns."""
    with np.load(path, allow_pickle=False) as data:
        version = int(data[_VERSION]) if _VERSION in data.files else None
        if version != FORMAT_VERSION:
            raise ValueError(f"{path} is not a sample file of format {FORMAT_VERSION}")
        columns: dict[str, np.ndarray | TextColumn] = {}
        for i, name in enumerate(data[_COLUMNS].tolist()):
            if f"n{i}" in data.files:
                columns[name] = data[f"n{i}"]
            else:
                distinct = np.empty(len(data[f"t{i}_values"]), dtype=object)
                distinct[:] = data[f"t{i}_values"].tolist()
                columns[name] = TextColumn(distinct, data[f"t{i}_codes"].astype(np.int32))
        return SampleData(columns=columns, label=data[_LABEL])
