"""What Django's error reports (the debug page, the error e-mails) must never show: Mlab's secrets.

Django's SafeExceptionReporterFilter hides settings by the shape of their names, and what a view marks with
``@sensitive_variables`` / ``@sensitive_post_parameters``. Mlab knows its secrets otherwise, and by value:

- parameters declared ``secret=True`` by node metadata, wherever a request carries them. mlabsite knows no
  apps, so the app that owns the metadata registers a *secret finder* (``register_secret_finder``): a callable
  given the request that yields the secret values in it (apps/templates/error_reports.py);
- the PAI and OSS credentials among the settings (``MLAB_PAI_*`` / ``MLAB_OSS_*`` whose names say secret,
  token, password or credential; read with getattr, whichever exist), the data-source passwords in
  ``MLAB_DS_*`` environment variables, and the credential of the request's ``Authorization`` header.

``SecretMaskingFilter`` (``DEFAULT_EXCEPTION_REPORTER_FILTER``) replaces every occurrence of those values with
Django's mask, in POST data, META, cookies, settings and the variables of every traceback frame: inside
strings, dicts, lists and objects' reprs, as the report prints them. ``SecretMaskingReporter``
(``DEFAULT_EXCEPTION_REPORTER``) also masks the exception message, GET data and the URL, which no filter sees,
and masks what is left anywhere in the rendered page or text. ``SecretMaskingLogFilter`` does the same for the
message and traceback of error log records (the console's ``Internal Server Error`` lines). Each value is masked in whatever form a report
prints it: as is, or with any of its characters escaped as Python's repr, JSON or URL encoding write them, and
HTML-escaped.

Any secret is masked, however short; a one-character secret makes a report hard to read, not leaky.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from pprint import pformat
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

SecretFinder = Callable[[HttpRequest], Iterable[str]]

SECRET_SETTING = re.compile(r"^MLAB_(?:PAI|OSS)_\w*(?:SECRET|TOKEN|PASSWORD|CREDENTIAL)")
SECRET_ENVIRONMENT_PREFIX = "MLAB_DS_"

_finders: dict[str, SecretFinder] = {}


def register_secret_finder(uid: str, finder: SecretFinder) -> None:
    """Add (or replace, under the same ``uid``) a callable yielding the secret values a request carries."""
    _finders[uid] = finder


def request_secrets(request: HttpRequest | None) -> set[str]:
    """Every secret value a report about ``request`` might show (the request may be None: a report without one)."""
    found: set[Any] = {getattr(settings, name, None) for name in dir(settings) if SECRET_SETTING.match(name)}
    found |= {value for name, value in os.environ.items() if name.startswith(SECRET_ENVIRONMENT_PREFIX)}
    if request is not None:
        authorization = str(getattr(request, "META", {}).get("HTTP_AUTHORIZATION", ""))
        found.add(authorization.partition(" ")[2].strip())
        for finder in list(_finders.values()):
            try:
                found.update(finder(request))
            except Exception:  # a finder that fails must not take the error report down with it
                continue
    return {value for value in found if isinstance(value, str) and value}


def _char_forms(char: str) -> set[str]:
    """The ways a report may print one character of a secret: as is, escaped by Python's repr (of text or
    bytes), by JSON or by URL encoding (either case of hex digits; ``+`` for a space), and each of those
    HTML-escaped."""
    utf8 = char.encode()
    forms = {
        char,
        repr(char)[1:-1],
        json.dumps(char)[1:-1],
        repr(utf8)[2:-1],
        "".join(f"%{byte:02X}" for byte in utf8),
        "".join(f"%{byte:02x}" for byte in utf8),
    }
    if char == "'":
        forms.add("\\'")  # repr's escape when the text holds both quotes
    if char == " ":
        forms.add("+")
    return forms | {html.escape(form) for form in forms}


def _secret_pattern(secret: str) -> str:
    """A regular expression matching ``secret`` however each of its characters is printed (mixed forms too:
    URL encoders differ in which characters they leave alone)."""
    groups = []
    for char in secret:
        forms = sorted(_char_forms(char), key=len, reverse=True)
        groups.append(f"(?:{'|'.join(map(re.escape, forms))})")
    return "".join(groups)


def _printed(value: Any) -> str:
    """``value`` as a report prints it (Django's ``pprint``), on one line: pprint breaks long strings at spaces,
    which could split a secret in two."""
    try:
        return pformat(value, width=sys.maxsize)
    except Exception as exc:
        return f"Error in formatting: {exc.__class__.__name__}: {exc}"


class Masker:
    """Replaces every printed form of the given secrets with ``mask``."""

    def __init__(self, secrets: Iterable[str], mask: str) -> None:
        self.mask = mask
        # Longest first, so that a secret containing another is masked whole.
        ordered = sorted(set(secrets), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(_secret_pattern, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(self.mask, text)

    def value(self, value: Any) -> Any:
        """``value`` itself when the report would print it without a secret; else what it would print, masked."""
        if self._pattern is None:
            return value
        # str(): a lazy object standing for a string passes isinstance(…, str) but is not one to ``re``.
        printed = str(value) if isinstance(value, str) else _printed(value)
        if not self._pattern.search(printed):
            return value
        return self.text(printed) if isinstance(value, str) else _Printed(self.text(printed))


class _Printed:
    """A frame variable or setting replaced by its masked print-out; the report prints it as it is."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class SecretMaskingFilter(SafeExceptionReporterFilter):
    """Django's filter, plus every secret value (see the module docstring) masked wherever the report shows it."""

    def masker(self, request: HttpRequest | None) -> Masker:
        return Masker(request_secrets(request), self.cleansed_substitute)

    def get_post_parameters(self, request):
        post = super().get_post_parameters(request)
        masker = self.masker(request)
        if not masker or not isinstance(post, MultiValueDict):
            return post
        masked = post.copy()
        for key, values in post.lists():
            masked.setlist(key, [masker.value(v) for v in values])
        return masked

    def get_safe_request_meta(self, request):
        masker = self.masker(request)
        return {k: masker.value(v) for k, v in super().get_safe_request_meta(request).items()}

    def get_safe_cookies(self, request):
        masker = self.masker(request)
        return {k: masker.value(v) for k, v in super().get_safe_cookies(request).items()}

    def get_safe_settings(self):
        masker = self.masker(None)
        return {k: masker.value(v) for k, v in super().get_safe_settings().items()}

    def get_traceback_frame_variables(self, request, tb_frame):
        masker = self.masker(request)
        return [(name, masker.value(value)) for name, value in super().get_traceback_frame_variables(request, tb_frame)]


class SecretMaskingReporter(ExceptionReporter):
    """Django's reporter with the secrets masked where no filter reaches: the exception message, GET data, the
    URL, and (a last pass) anything left in the rendered page or text."""

    def _masker(self) -> Masker:
        if isinstance(self.filter, SecretMaskingFilter):
            return self.filter.masker(self.request)
        return Masker(request_secrets(self.request), SafeExceptionReporterFilter.cleansed_substitute)

    def get_traceback_data(self):
        data = super().get_traceback_data()
        masker = self._masker()
        if masker:
            for key in ("exception_value", "exception_notes", "request_insecure_uri", "unicode_hint"):
                if isinstance(data.get(key), str):
                    data[key] = masker.text(data[key])
            if "request_GET_items" in data:
                data["request_GET_items"] = [(k, masker.value(v)) for k, v in data["request_GET_items"]]
        return data

    def get_traceback_html(self):
        return self._masker().text(super().get_traceback_html())

    def get_traceback_text(self):
        return self._masker().text(super().get_traceback_text())


class SecretMaskingLogFilter(logging.Filter):
    """For log handlers (the console's): masks the secrets of an error record's request, and the secret settings,
    in its message and traceback, as the error reports do. Records below ERROR without a traceback pass as they
    are (finding the secrets is not free)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR and not record.exc_info:
            return True
        masker = Masker(
            request_secrets(getattr(record, "request", None)), SafeExceptionReporterFilter.cleansed_substitute
        )
        if masker:
            record.msg, record.args = masker.text(record.getMessage()), None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = masker.text(record.exc_text)
        return True
