"""A text column held dictionary-encoded: the sample fetch builds it, the trainer one-hot encodes from it.

Ten million rows of a text column with a few distinct values cost 40 MB of int32 codes this way, instead of
80 MB of object pointers (and a Python loop for every pass over them). Numpy only, no Django: the trainer
imports it too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

NULL = -1  # the code of a NULL (missing) value


@dataclass(frozen=True)
class TextColumn:
    """Row ``i`` holds ``values[codes[i]]``, or NULL where ``codes[i] == NULL``.

    ``values``: object array of distinct ``str``; ``codes``: int32 array, one per row.
    """

    values: np.ndarray
    codes: np.ndarray

    @classmethod
    def encode(cls, items: Iterable[Any]) -> TextColumn:
        """Encode raw values (None is NULL; anything else becomes its ``str``) in order of first appearance."""
        index: dict[str, int] = {}
        codes = np.fromiter(
            (NULL if v is None else index.setdefault(v if isinstance(v, str) else str(v), len(index)) for v in items),
            dtype=np.int32,
        )
        return cls(_objects(list(index)), codes)

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def nbytes(self) -> int:
        """The codes, plus each distinct string once."""
        return self.codes.nbytes + self.values.nbytes + sum(len(v.encode()) + 49 for v in self.values.tolist())

    def take(self, rows: Any) -> TextColumn:
        """The rows ``rows`` (indices, a slice or a mask), sharing the values."""
        return TextColumn(self.values, self.codes[rows])

    def __getitem__(self, rows: Any) -> Any:
        """Like an array: one row's text (None for NULL), or a TextColumn of the rows selected."""
        if isinstance(rows, int | np.integer):
            code = int(self.codes[rows])
            return None if code == NULL else self.values[code]
        return self.take(rows)

    def to_objects(self, missing: Any = None) -> np.ndarray:
        """An object array of the texts, ``missing`` for NULL (every equal text is the same ``str`` object)."""
        table = np.empty(len(self.values) + 1, dtype=object)
        table[:-1] = self.values
        table[-1] = missing  # code -1 picks the last slot
        return table[self.codes]


def _objects(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array
