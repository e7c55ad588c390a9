"""JSON from outside, with a nesting limit: every door that parses JSON a person or a program sent uses this.

Python's json module recurses once per level, so a body of ten thousand ``[`` raises RecursionError (a 500)
wherever it is parsed, and a value a few hundred levels deep that does parse breaks whatever walks it next.
No Mlab input needs more than a handful of levels (the deepest, a run's filters, is six:
``{"params": {node: {"filters": [{"value": [...]}]}}}``), so anything deeper than ``MAX_DEPTH`` is refused before
it is parsed: by the API's parser (``mlabsite.parsers.DepthLimitedJSONParser``, a 400) and by the forms' JSON
fields (``mlabsite.formfields.JSONFormField``, a form error). (The command line's ``--set`` goes through node
metadata, which the trainer carries alone; it refuses JSON too deep to parse by itself.)
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 32

# Strings (their brackets do not count) and, outside them, escape pairs. Pairing backslashes outside strings the
# way strings pair them means an unterminated string is scanned once, not once per quote inside it: the whole
# scan stays linear in the length of the text, whatever the text.
_STRINGS_AND_ESCAPES = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|\\.', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JSONTooDeep(ValueError):
    """JSON text nests arrays and objects deeper than allowed."""

    def __init__(self, max_depth: int = MAX_DEPTH) -> None:
        super().__init__(f"nested deeper than {max_depth} levels")


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in JSON text (0 for a scalar), counted on the text without parsing it.

    Brackets inside strings do not count. For text that is not JSON the count is approximate; the parser that
    comes next refuses such text anyway."""
    brackets = _NOT_BRACKETS.sub("", _STRINGS_AND_ESCAPES.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def too_deep(text: str, max_depth: int = MAX_DEPTH) -> bool:
    """Whether JSON text nests deeper than ``max_depth``."""
    # Counting opening brackets is far cheaper than the scan, and settles most texts.
    return text.count("[") + text.count("{") > max_depth and nesting_depth(text) > max_depth


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, **kwargs: Any) -> Any:
    """``json.loads`` that raises JSONTooDeep (a ValueError, like a syntax error) for text nested deeper than
    ``max_depth``, before parsing it."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    if too_deep(text, max_depth):
        raise JSONTooDeep(max_depth)
    return json.loads(text, **kwargs)
