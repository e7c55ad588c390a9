"""mlabsite/error_reports.py: which values error reports mask, and the forms they are found in."""

from __future__ import annotations

import html
import json
from pprint import pformat
from urllib.parse import quote, quote_plus

import pytest
from django.template.defaultfilters import pprint
from django.test import RequestFactory

from mlabsite.error_reports import SECRET_SETTING, Masker, register_secret_finder, request_secrets

MASK = "********************"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("MLAB_PAI_ACCESS_KEY_SECRET", True),
        ("MLAB_OSS_ACCESS_KEY_SECRET", True),
        ("MLAB_OSS_STS_TOKEN", True),
        ("MLAB_PAI_SECURITY_TOKEN", True),
        ("MLAB_OSS_PASSWORD", True),
        ("MLAB_PAI_ENDPOINT", False),
        ("MLAB_PAI_ACCESS_KEY_ID", False),
        ("MLAB_OSS_BUCKET", False),
        ("MLAB_TRAINING_TIMEOUT_SECONDS", False),
    ],
)
def test_secret_settings_are_the_pai_and_oss_ones_named_secret_token_or_password(name, secret):
    assert bool(SECRET_SETTING.match(name)) == secret


def test_request_secrets_come_from_settings_environment_authorization_and_finders(settings, monkeypatch):
    settings.MLAB_PAI_ACCESS_KEY_SECRET = "pai-secret"
    settings.MLAB_OSS_STS_TOKEN = "sts-token"  # a setting other branches add: found by its name alone
    settings.MLAB_PAI_ACCESS_KEY_ID = "key-id"
    monkeypatch.setenv("MLAB_DS_WAREHOUSE", "ds-password")
    request = RequestFactory().post("/x/", HTTP_AUTHORIZATION="Token user-token")
    register_secret_finder("test", lambda request: ["found-by-finder"])
    register_secret_finder("test-broken", lambda request: 1 / 0)
    try:
        found = request_secrets(request)
    finally:
        register_secret_finder("test", lambda request: [])
        register_secret_finder("test-broken", lambda request: [])
    assert {"pai-secret", "sts-token", "ds-password", "user-token", "found-by-finder"} <= found
    assert "key-id" not in found and "" not in found
    assert "user-token" not in request_secrets(None)


AWKWARD = "two 'words\" & <b>é/?x=1\n"


@pytest.mark.parametrize(
    "printed",
    [
        AWKWARD,
        repr(AWKWARD),
        repr({"k": AWKWARD}),
        repr(["'", AWKWARD]),
        json.dumps({"k": AWKWARD}),
        json.dumps({"k": AWKWARD}, ensure_ascii=False),
        repr(AWKWARD.encode()),
        quote(AWKWARD),
        quote_plus(AWKWARD),
        quote(AWKWARD).lower(),
        html.escape(repr({"k": AWKWARD})),
        html.escape(quote(AWKWARD, safe="/?=")),
        "two+%27words%22+&+<b>%c3%a9/?x=1\\n",  # a mix no single encoder writes
    ],
)
def test_every_printed_form_of_a_secret_is_masked(printed):
    masked = Masker([AWKWARD], MASK).text(printed)
    assert MASK in masked
    assert "words" not in masked


def test_a_value_is_kept_unless_its_print_out_shows_a_secret():
    masker = Masker(["s3cret"], MASK)
    clean = {"a": [1, 2]}
    assert masker.value(clean) is clean
    assert masker.value("the s3cret here") == f"the {MASK} here"


def test_a_secret_pprint_would_split_across_lines_is_masked_whole():
    """pprint breaks long strings at spaces: the secret is looked for in a one-line print-out."""
    secret = "two words"
    value = next(v for n in range(80) if secret not in pformat(v := {"note": "x " * n + secret + " y" * 60}))
    assert "two '" in pformat(value)  # Django's pprint splits it...
    shown = pprint(Masker([secret], MASK).value(value))
    assert MASK in shown and "two" not in shown  # ...the report shows it masked


def test_error_log_records_have_the_secrets_of_their_request_masked(settings):
    """The console's "Internal Server Error" record: its message and traceback pass through the log filter."""
    import logging
    import sys

    from mlabsite.error_reports import SecretMaskingLogFilter

    settings.MLAB_PAI_ACCESS_KEY_SECRET = "pai-secret-in-log"
    request = RequestFactory().post("/x/", {"sample__access_token": "tok-in-log"})
    try:
        raise ValueError("bad token tok-in-log, signed with pai-secret-in-log")
    except ValueError:
        record = logging.LogRecord(
            "django.request", logging.ERROR, __file__, 1, "Error: %s", ("tok-in-log",), sys.exc_info()
        )
    record.request = request
    assert SecretMaskingLogFilter().filter(record)
    line = logging.Formatter("%(message)s").format(record)
    assert "tok-in-log" not in line and "pai-secret-in-log" not in line and MASK in line
    assert "ValueError: bad token" in line
