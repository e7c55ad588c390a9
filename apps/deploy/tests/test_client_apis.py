"""What clients call, in process: the config (ETag, 304, scope) and artifacts (cache, fallback, repair).

Long-polling is tested against a real uvicorn process in test_live.py.
"""

from __future__ import annotations

import hashlib
import time
import warnings

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from django.urls import reverse
from rest_framework.test import APIClient

from apps.artifacts.models import ArtifactChunk
from apps.artifacts.storage import artifact_cache_present
from apps.deploy.models import ConfigEntry
from apps.deploy.services import client_token_create, deployment_create, scene_create, scene_publish
from conftest import api_key, token_client
from mlab_client.contract import artifact_chunk_key, artifact_meta_key

from .onnx_models import binary_model

pytestmark = pytest.mark.django_db


def config_url(scene) -> str:
    return reverse("api:config", kwargs={"name": scene.name})


def artifact_url(scene, version: int) -> str:
    return reverse("api:scene-version-artifact", kwargs={"name": scene.name, "version": version})


def as_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def published(scene, versions, user):
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 90}, {"version": 2, "weight": 10}], user=user)
    scene_publish(scene_id=scene.pk)
    return ConfigEntry.objects.get(scene=scene)


def test_config_is_served_with_its_etag_and_304_when_unchanged(api, scene, published):
    response = api.get(config_url(scene))
    assert response.status_code == 200
    assert response.json() == published.content
    assert response["ETag"] == published.etag and response["Cache-Control"] == "no-cache"
    unchanged = api.get(config_url(scene), HTTP_IF_NONE_MATCH=published.etag)
    assert unchanged.status_code == 304 and unchanged["ETag"] == published.etag and unchanged.content == b""
    stale = api.get(config_url(scene), HTTP_IF_NONE_MATCH='"something-older"')
    assert stale.status_code == 200


def test_config_before_any_publication_is_404(api, scene):
    response = api.get(config_url(scene))
    assert response.status_code == 404 and "no published deployment" in response.json()["detail"]


@pytest.mark.parametrize("wait", ["61", "-1", "soon", "nan", "inf"])
def test_a_bad_wait_is_400_naming_it(api, scene, published, wait):
    response = api.get(config_url(scene), {"wait": wait}, HTTP_IF_NONE_MATCH=published.etag)
    assert response.status_code == 400 and "wait" in response.json()


def test_config_scope(scene, published, user, other_business_user, anon_api):
    other = scene_create(name="other-scene", user=user)
    _, key_a = client_token_create(name="a", scenes=[scene], user=user)
    _, key_b = client_token_create(name="b", scenes=[other], user=user)
    assert as_client(key_a).get(config_url(scene)).status_code == 200
    refused = as_client(key_b).get(config_url(scene))
    assert refused.status_code == 403 and "cannot read scene" in refused.json()["detail"]
    assert as_client("mlc_not-a-token").get(config_url(scene)).status_code == 401
    assert token_client(other_business_user).get(config_url(scene)).status_code == 404  # bob does not own it
    missing = anon_api.get(config_url(scene))
    assert missing.status_code == 401 and missing["WWW-Authenticate"] == "Token"


def test_config_refuses_other_methods(api, scene, published):
    assert api.post(config_url(scene), {}).status_code == 405


def _aget(path: str, key: str, **headers) -> tuple[int, dict, bytes]:
    """GET through Django's async client, the streamed body read in the same event loop (as under ASGI)."""

    async def fetch():
        response = await AsyncClient().get(path, headers={"Authorization": f"Token {key}", **headers})
        if response.streaming:
            body = b"".join([chunk async for chunk in response.streaming_content])
        else:
            body = response.content
        return response.status_code, dict(response.headers), body

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        return async_to_sync(fetch)()


@pytest.fixture
def user_key(business_user):
    return api_key(business_user)


def test_artifact_is_streamed_with_its_sha256_as_etag(scene, versions, user_key, redis):
    status, headers, body = _aget(artifact_url(scene, 2), user_key)
    assert status == 200
    assert body == binary_model(2).onnx_bytes
    assert headers["ETag"] == f'"{hashlib.sha256(body).hexdigest()}"' and int(headers["Content-Length"]) == len(body)
    assert artifact_cache_present(versions[1].artifact)  # the miss re-warmed the cache
    status, _, body = _aget(artifact_url(scene, 2), user_key, **{"If-None-Match": headers["ETag"]})
    assert (status, body) == (304, b"")


def test_a_corrupt_cached_chunk_is_replaced_from_the_database_and_repaired(scene, make_run, user, user_key, redis):
    from apps.artifacts.storage import artifact_cache_warm
    from apps.deploy.services import model_version_register

    data = bytes(range(256)) * 40_000  # 10 MB: three chunks
    run = make_run(data=data, format="bin")
    artifact = run.artifact
    model_version_register(run=run, scene=scene, user=user)
    artifact_cache_warm(artifact)
    redis.set(artifact_chunk_key(artifact.sha256, 1), b"tampered")
    status, _, body = _aget(artifact_url(scene, 1), user_key)
    assert status == 200 and body == data
    assert redis.get(artifact_chunk_key(artifact.sha256, 1)) == bytes(
        ArtifactChunk.objects.get(artifact=artifact, index=1).data
    )


def test_a_corrupt_database_copy_is_refused_with_503(scene, versions, user_key, redis):
    artifact = versions[0].artifact
    redis.delete(artifact_meta_key(artifact.sha256))
    ArtifactChunk.objects.filter(artifact=artifact, index=0).update(data=b"rotten")
    status, _, body = _aget(artifact_url(scene, 1), user_key)
    assert status == 503 and b"failed its checksum" in body


def test_artifact_scope(scene, versions, user, other_business_user):
    other = scene_create(name="other-scene", user=user)
    _, key_a = client_token_create(name="a", scenes=[scene], user=user)
    _, key_b = client_token_create(name="b", scenes=[other], user=user)
    assert _aget(artifact_url(scene, 1), key_a)[0] == 200
    assert _aget(artifact_url(scene, 1), key_b)[0] == 403
    assert _aget(artifact_url(scene, 9), key_a)[0] == 404
    bob = api_key(other_business_user)  # may read versions, but does not own this scene
    assert _aget(artifact_url(scene, 1), bob)[0] == 404


def test_a_new_publication_is_served_at_once_by_the_process_that_published(api, scene, published, user):
    assert api.get(config_url(scene)).json()["revision"] == 1  # now in the process's memo
    deployment_create(scene=scene, splits=[{"version": 3, "weight": 100}], user=user)
    scene_publish(scene_id=scene.pk)
    response = api.get(config_url(scene), HTTP_IF_NONE_MATCH=published.etag)
    assert response.status_code == 200 and response.json()["revision"] == 2


def test_a_revoked_client_token_stops_working_in_this_process_at_once(scene, published, user):
    from apps.deploy.services import client_token_revoke

    token, key = client_token_create(name="short-lived", scenes=[scene], user=user)
    assert as_client(key).get(config_url(scene)).status_code == 200  # its scope is now cached
    client_token_revoke(token=token)
    assert as_client(key).get(config_url(scene)).status_code == 401


def test_the_redis_copy_of_a_config_never_goes_back(redis):
    from apps.deploy.configs import config_cache_key, config_cache_parse, config_cache_set

    assert config_cache_set(redis, scene="s", revision=2, etag='"b"', body=b"{}")
    assert not config_cache_set(redis, scene="s", revision=1, etag='"a"', body=b"{}")
    assert config_cache_parse(redis.get(config_cache_key("s"))) == (2, '"b"', b"{}")
    assert config_cache_set(redis, scene="s", revision=3, etag='"c"', body=b'{"x":1}')
    assert config_cache_parse(redis.get(config_cache_key("s"))) == (3, '"c"', b'{"x":1}')


@pytest.mark.django_db(transaction=True)
def test_a_long_poll_under_wsgi_wakes_on_publish_and_times_out_with_304(scene, versions, user, client_token):
    """The sync view (what gunicorn's sync workers run) waits on a pub/sub subscription of its own."""
    import threading

    from apps.deploy.configs import config_memo

    deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user)
    scene_publish(scene_id=scene.pk)
    client = as_client(client_token[1])
    etag = client.get(config_url(scene))["ETag"]
    assert client.get(config_url(scene), {"wait": "0.5"}, HTTP_IF_NONE_MATCH=etag).status_code == 304

    def publish_soon():
        time.sleep(0.5)
        deployment_create(scene=scene, splits=[{"version": 2, "weight": 100}], user=user)
        scene_publish(scene_id=scene.pk)
        config_memo.clear()  # as if it had happened in another process

    publisher = threading.Thread(target=publish_soon)
    started = time.monotonic()
    publisher.start()
    response = client.get(config_url(scene), {"wait": "30"}, HTTP_IF_NONE_MATCH=etag)
    elapsed = time.monotonic() - started
    publisher.join()
    assert response.status_code == 200 and response.json()["revision"] == 2
    assert elapsed < 15  # woken by the notification, not by the 30-second timer


def test_concurrent_misses_of_one_cache_do_the_work_once():
    import asyncio

    from apps.deploy.apis.access import coalesce

    calls = []

    async def lookup():
        calls.append(1)
        await asyncio.sleep(0.05)
        return "scopes"

    async def herd():
        leaver = asyncio.ensure_future(coalesce("k", lookup))
        await asyncio.sleep(0)
        leaver.cancel()  # a client that goes away does not cancel the work for the others
        answers = await asyncio.gather(*(coalesce("k", lookup) for _ in range(100)))
        again = await coalesce("k", lookup)  # done: the next miss works again
        return answers, again

    answers, again = asyncio.run(herd())
    assert answers == ["scopes"] * 100 and again == "scopes"
    assert len(calls) == 2
