"""The API's request parsers (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``).

Imported by DRF while ``rest_framework.views`` is still being defined: nothing here may import that module.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework import exceptions, parsers
from rest_framework.utils import json as drf_json

from . import jsonlimits

PARSED_JSON_ATTRIBUTE = "mlab_parsed_json"


class DepthLimitedJSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing bodies nested deeper than ``mlabsite.jsonlimits.MAX_DEPTH`` with a 400 before
    parsing them (deeper bodies used to end in a RecursionError, a 500). The default parser of every API view."""

    def parse(self, stream, media_type=None, parser_context=None):
        # DRF 3.18 refuses non-text codecs here (a bz2 "charset" would inflate the body); its stubs lack it.
        encoding = parsers.get_encoding(parser_context or {})  # type: ignore[attr-defined]
        parse_constant = drf_json.strict_constant if self.strict else None
        try:
            data = jsonlimits.loads(stream.read().decode(encoding), parse_constant=parse_constant)
        except ValueError as exc:  # a syntax error, a body too deep, or bytes not in the declared charset
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        request = (parser_context or {}).get("request")
        if request is not None:
            # DRF keeps the parsed body on its own Request; error reports see only Django's.
            setattr(getattr(request, "_request", request), PARSED_JSON_ATTRIBUTE, data)
        return data


def parsed_json_body(request: HttpRequest) -> Any:
    """The JSON body the API parsed for this (Django) request, or None: what error reports look through for
    secrets (``mlabsite.error_reports``), since the body can no longer be read once DRF has read it."""
    return getattr(request, PARSED_JSON_ATTRIBUTE, None)
