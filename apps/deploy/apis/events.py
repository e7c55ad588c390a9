"""``POST /api/v1/scenes/{scene}/events/``: A/B events from clients (exposures and outcomes), in batches.

The SDK's HTTP sink posts ``{"batch": id, "events": [...]}`` with a client token of the scene (an owner's token
works too). Answers, as ``mlab_client.contract`` describes them: 202 accepted (a batch id seen before too: it
is counted once); 413 over the batch limits, decided from ``Content-Length`` before the body is parsed when
the client sends one, else from the body's size and then its event count; 400 naming the fields
(``{"events": {"3": {"unit_id": ["…"]}}}``), nothing kept; 503 with ``Retry-After`` while the scene's stream
holds too many batches not yet counted, or Redis cannot be reached (the SDK retries the same batch).

A DRF view without DRF's authentication (which would take the client token for an invalid user token) and
without its parsers: the door reads the body itself, so that the size is checked before anything is parsed.
"""

from __future__ import annotations

import logging

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from redis.exceptions import RedisError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from mlab_client import contract
from mlabsite import jsonlimits
from mlabsite.auth_throttle import client_address

from .. import services
from ..selectors import scene_id_named
from ..services.event_stream import BacklogFull
from .access import Refused, authorize_events

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2


def _too_large(message: str) -> Response:
    return Response({"events": [message]}, status=413)


def _unavailable(message: str) -> Response:
    return Response({"detail": message}, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class EventsApi(APIView):
    """A/B events of the scene (exposures and outcomes) in a batch, from a client token of the scene (or an
    owner): ``{"batch": id, "events": [{"type": "exposure" | "outcome", "unit_id", "revision", "version",
    "score"?, "metric"?, "value"?, "ts"}, …]}``. 202: accepted (a batch id seen before too: it counts once);
    400 naming the fields, per event by its index; 413 over 1,000 events or 1 MiB; 503 (retry after
    ``Retry-After`` seconds) while too many batches wait to be counted."""

    authentication_classes = ()  # the client token is checked below (access.authorize_events), not as a user's
    permission_classes = (AllowAny,)
    parser_classes = ()  # the body is read here, its size checked first

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={
            202: OpenApiTypes.OBJECT,
            400: OpenApiTypes.OBJECT,
            413: OpenApiTypes.OBJECT,
            503: OpenApiTypes.OBJECT,
        },
        examples=[
            OpenApiExample(
                "an exposure and its outcome",
                value={
                    "batch": "5f0c9e2b7d3a4c1e8b6a2d4f9e1c3b5a",
                    "events": [
                        {
                            "type": "exposure",
                            "unit_id": "user-42",
                            "revision": 3,
                            "version": 2,
                            "score": 0.81,
                            "ts": 1790000000.5,
                        },
                        {
                            "type": "outcome",
                            "unit_id": "user-42",
                            "revision": 3,
                            "version": 2,
                            "metric": "click",
                            "value": 1,
                            "ts": 1790000042.0,
                        },
                    ],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request, name: str) -> Response:
        try:
            authorize_events(request.headers.get("Authorization"), name, address=client_address(request.META))
        except Refused as refused:
            return Response(refused.payload, status=refused.status, headers=refused.headers)
        limit = contract.MAX_BATCH_BYTES
        declared = request.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            return _too_large(f"at most {limit} bytes per batch; this one has {declared}")
        body = request._request.read(limit + 1)
        if len(body) > limit:
            return _too_large(f"at most {limit} bytes per batch")
        try:
            document = jsonlimits.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:  # JSONTooDeep included; answered as DRF's parser would
            return Response({"detail": f"JSON parse error - {exc}"}, status=400)
        scene_id = scene_id_named(name)
        if scene_id is None:  # refused above already (no token covers a scene that does not exist)
            return Response({"detail": "No such scene."}, status=404)
        try:
            accepted = services.events_accept(scene_id=scene_id, scene_name=name, document=document)
        except services.BatchTooLarge as exc:
            return _too_large(str(exc))
        except services.BatchInvalid as exc:
            return Response(exc.errors, status=400)
        except BacklogFull as exc:
            return _unavailable(f"Events of {name} are waiting to be counted ({exc}); send this batch again shortly.")
        except RedisError as exc:
            logger.warning("events of %s refused: Redis: %s", name, exc)
            return _unavailable("The event stream cannot be reached; send this batch again shortly.")
        return Response({"batch": accepted.batch, "events": accepted.events}, status=202)
