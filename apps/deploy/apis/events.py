"""``POST /api/v1/scenes/{scene}/events/``: A/B events from clients (exposures and outcomes), in batches.

The SDK's HTTP sink posts ``{"batch": id, "events": [...]}`` with a client token of the scene (an owner's token
works too). Answers, as ``mlab_client.contract`` describes them: 202 accepted (a batch id seen before too: it
is counted once); 413 over the batch limits, decided from ``Content-Length`` before the body is parsed when
the client sends one, else from the body's size and then its event count; 400 naming the fields
(``{"events": {"3": {"unit_id": ["…"]}}}``), nothing kept; 503 with ``Retry-After`` while the scene's stream
holds too many batches not yet counted, or Redis cannot be reached (the SDK retries the same batch).

A plain Django view, not DRF: it is the hot path of every client (one request per 500 events), and DRF's
authentication would try the client token as a user token first.
"""

from __future__ import annotations

import json
import logging

from django.http import HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from redis.exceptions import RedisError

from mlab_client import contract

from .. import services
from ..selectors import scene_id_named
from ..services.event_stream import BacklogFull
from .access import Refused, authorize_events

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2


def _too_large(message: str) -> JsonResponse:
    return JsonResponse({"events": [message]}, status=413)


def _unavailable(message: str) -> JsonResponse:
    return JsonResponse({"detail": message}, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@csrf_exempt
def events_view(request, name: str) -> JsonResponse | HttpResponseNotAllowed:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        authorize_events(request.headers.get("Authorization"), name)
    except Refused as refused:
        return refused.response()
    limit = contract.MAX_BATCH_BYTES
    declared = request.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        return _too_large(f"at most {limit} bytes per batch; this one has {declared}")
    body = request.read(limit + 1)
    if len(body) > limit:
        return _too_large(f"at most {limit} bytes per batch")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return JsonResponse({"non_field_errors": ["The body is not JSON."]}, status=400)
    scene_id = scene_id_named(name)
    if scene_id is None:  # an owner's token for a scene that does not exist is refused above; kept for safety
        return JsonResponse({"detail": "No such scene."}, status=404)
    try:
        accepted = services.events_accept(scene_id=scene_id, scene_name=name, document=document)
    except services.BatchTooLarge as exc:
        return _too_large(str(exc))
    except services.BatchInvalid as exc:
        return JsonResponse(exc.errors, status=400)
    except BacklogFull as exc:
        return _unavailable(f"Events of {name} are waiting to be counted ({exc}); send this batch again shortly.")
    except RedisError as exc:
        logger.warning("events of %s refused: Redis: %s", name, exc)
        return _unavailable("The event stream cannot be reached; send this batch again shortly.")
    return JsonResponse({"batch": accepted.batch, "events": accepted.events}, status=202)
