"""The API's request parsers (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``).

Imported by DRF while ``rest_framework.views`` is still being defined: nothing here may import that module.
"""

from __future__ import annotations

from rest_framework import exceptions, parsers
from rest_framework.utils import json as drf_json

from . import jsonlimits


class DepthLimitedJSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing bodies nested deeper than ``mlabsite.jsonlimits.MAX_DEPTH`` with a 400 before
    parsing them (deeper bodies used to end in a RecursionError, a 500). The default parser of every API view."""

    def parse(self, stream, media_type=None, parser_context=None):
        # DRF 3.18 refuses non-text codecs here (a bz2 "charset" would inflate the body); its stubs lack it.
        encoding = parsers.get_encoding(parser_context or {})  # type: ignore[attr-defined]
        parse_constant = drf_json.strict_constant if self.strict else None
        try:
            return jsonlimits.loads(stream.read().decode(encoding), parse_constant=parse_constant)
        except ValueError as exc:  # a syntax error, a body too deep, or bytes not in the declared charset
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
