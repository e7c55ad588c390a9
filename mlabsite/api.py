"""Project-wide API conventions."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import FieldErrors


def exception_handler(exc, context):
    """DRF's handler, plus the refusals services raise (Django's ValidationError, FieldErrors) turned into 400s
    naming the field, so that views need not catch them."""
    if isinstance(exc, FieldErrors):
        exc = exceptions.ValidationError(exc.as_response_body())
    elif isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            exc = exceptions.ValidationError(exc.message_dict)
        else:
            exc = exceptions.ValidationError({"non_field_errors": exc.messages})
    return drf_exception_handler(exc, context)


class BodylessAction(APIView):
    """Base of POST actions that take no body (cancel, retry): a body sent anyway is parsed like any other, so
    that a malformed or too deep one is the same 400 here as on every other POST route."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        request.data  # noqa: B018  (parsing is the point)
