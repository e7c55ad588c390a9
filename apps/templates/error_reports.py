"""Where a request carries values of parameters declared ``secret=True``, for error reports to mask them.

Registered with ``mlabsite.error_reports`` when the app is ready. Secrets are found by the node metadata (the
names of the parameters some node type declares secret), never by what a name looks like, in the two shapes
parameters arrive in:

- form fields named ``<node>__<param>`` (the Launch page), or ``params.<node>.<param>`` (a form posted to the
  API);
- JSON bodies ``{"params": {node: {param: value}}}`` (the API), as its parser kept them.

A secret's value may be anything a client sent (text, a number, a list…): every text and number in it counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from django.http import HttpRequest

from mlabsite.parsers import parsed_json_body

from .forms import SEPARATOR
from .nodes import registry

_FIELD_SEPARATORS = re.compile(rf"{re.escape(SEPARATOR)}|\.")


def secret_param_names() -> frozenset[str]:
    """The names of the parameters some node type declares secret."""
    return frozenset(param.name for node_type in registry for param in node_type.params if param.secret)


def request_secret_values(request: HttpRequest) -> Iterator[str]:
    """Every value the request carries for a parameter declared secret."""
    names = secret_param_names()
    try:
        post = request.POST
    except Exception:  # the body was read as a stream already, or is malformed: nothing to find there
        post = None
    if post is not None:
        for key, values in post.lists():
            parts = _FIELD_SEPARATORS.split(key)
            if len(parts) > 1 and parts[-1] in names:
                yield from _texts(values)
    body = parsed_json_body(request)
    params = body.get("params") if isinstance(body, Mapping) else None
    if isinstance(params, Mapping):
        for node_values in params.values():
            if isinstance(node_values, Mapping):
                for name in names & set(node_values):
                    yield from _texts(node_values[name])


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)
        yield repr(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _texts(key)
            yield from _texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)
