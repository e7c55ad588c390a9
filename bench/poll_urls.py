"""Mlab's URLs plus a bare view returning the config's JSON (no authentication, no database, no Redis): the
baseline the config endpoint is measured against in bench/poll.py."""

import os
from pathlib import Path

from django.http import HttpResponse
from django.urls import path

from mlabsite.urls import urlpatterns as mlab_urlpatterns

_body: list[bytes] = []


def bare_config(request, name: str) -> HttpResponse:
    if not _body:
        _body.append(Path(os.environ["BENCH_BARE_BODY"]).read_bytes())
    return HttpResponse(_body[0], content_type="application/json", headers={"ETag": '"bare"'})


urlpatterns = [*mlab_urlpatterns, path("bench/bare/<slug:name>/", bare_config)]
