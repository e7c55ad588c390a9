"""Project-wide API conventions: how refusals read. Who may call the API is ``mlabsite.api_access``."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from django.views import defaults
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


# Error pages for what no API view answers itself (no route matched, a refused Host or body, a crash): JSON
# under /api/, as API clients parse it; Django's pages elsewhere. (With DEBUG on, Django shows its technical
# pages instead, whatever the path.)
def _api_error(request, status: int, detail: str) -> JsonResponse | None:
    return JsonResponse({"detail": detail}, status=status) if request.path.startswith("/api/") else None


def bad_request(request, exception):
    return _api_error(request, 400, "Bad request.") or defaults.bad_request(request, exception)


def permission_denied(request, exception):
    return _api_error(request, 403, "You do not have permission to perform this action.") or defaults.permission_denied(
        request, exception
    )


def page_not_found(request, exception):
    return _api_error(request, 404, "Not found.") or defaults.page_not_found(request, exception)


def server_error(request):
    return _api_error(request, 500, "Server error.") or defaults.server_error(request)
