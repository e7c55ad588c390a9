"""Publication under faults, with real processes: concurrent publishers, a paused lock holder, a Redis
restart mid-publication, and a rolled-back deployment. Processes are stopped by pid."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time

import psutil
import pytest
import redis as redis_lib
from django_redis import get_redis_connection

from apps.deploy.models import ConfigEntry, ConfigRevision, Deployment, ModelVersion
from apps.deploy.services import deployment_create, model_version_register, scene_create, scene_publish
from apps.deploy.services.publication import FENCED, PUBLISHED, lock_name
from apps.training.models import TrainingRun
from mlab_client.contract import artifact_chunk_key, artifact_meta_key
from mlabsite.locks import LOCK_PREFIX
from tests.factories import TrainingRunFactory
from tests.live import RedisServer, free_port, python, stop

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROCESSES = 8
PUBLICATIONS = 50


@pytest.fixture
def make_runs(user, builtin_templates):
    def make(count: int) -> list[TrainingRun]:
        # Content does not matter here: small plain artifacts, chunked in several pieces.
        return [
            TrainingRunFactory(owner=user, artifact_bytes=os.urandom(3000), artifact_format="bin", chunk_size=1024)
            for _ in range(count)
        ]

    return make


def _finish(process: subprocess.Popen, timeout: float = 300) -> str:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(process)
        out, err = process.communicate()
        pytest.fail(f"process {process.pid} did not finish:\n{out}\n{err}")
    assert process.returncode == 0, f"process {process.pid} failed:\n{out}\n{err}"
    return out


PUBLISHER = """
import json, os, random
from django_redis import get_redis_connection
from apps.deploy.models import ModelVersion, Scene
from apps.deploy.services import deployment_create, model_version_register, scene_publish
from apps.training.models import TrainingRun

scene = Scene.objects.get(pk={scene_id})
own_runs = list(TrainingRun.objects.filter(pk__in={own_runs}))
shared_run = TrainingRun.objects.get(pk={shared_run})
log = get_redis_connection("default")
rng = random.Random(os.getpid())
for i in range({publications}):
    if i % 10 == 0:
        model_version_register(run=own_runs[i // 10], scene=scene, user=None)
        model_version_register(run=shared_run, scene=scene, user=None)  # everyone races for this one
    known = list(ModelVersion.objects.filter(scene=scene).values_list("version", flat=True))
    first, second = rng.sample(known, 2) if len(known) > 1 else (known[0], None)
    weight = rng.randint(1, 99) if second else 100
    splits = [{{"version": first, "weight": weight}}] + ([{{"version": second, "weight": 100 - weight}}] if second else [])
    deployment_create(scene=scene, splits=splits, user=None, comment=f"{{os.getpid()}}:{{i}}")
    result = scene_publish(scene_id=scene.pk)
    log.rpush("faults:holders", json.dumps(result.as_dict()))
print("done")
"""


def test_concurrent_publishers_never_overlap_and_revisions_only_grow(user, make_runs):
    scene = scene_create(name="race", user=user)
    runs = make_runs(PROCESSES * (PUBLICATIONS // 10) + 1)
    shared, own = runs[0], runs[1:]
    per_process = PUBLICATIONS // 10
    processes = [
        python(
            PUBLISHER.format(
                scene_id=scene.pk,
                own_runs=[run.pk for run in own[i * per_process : (i + 1) * per_process]],
                shared_run=shared.pk,
                publications=PUBLICATIONS,
            )
        )
        for i in range(PROCESSES)
    ]
    for process in processes:
        assert _finish(process, timeout=600).strip() == "done"

    holders = [json.loads(raw) for raw in get_redis_connection("default").lrange("faults:holders", 0, -1)]
    assert len(holders) == PROCESSES * PUBLICATIONS
    holders.sort(key=lambda h: h["acquired_at"])
    for before, after in zip(holders, holders[1:], strict=False):
        assert after["acquired_at"] >= before["released_at"], (before, after)  # no two holders overlap
        assert after["fence"] > before["fence"]

    deployments = list(Deployment.objects.filter(scene=scene).values_list("revision", flat=True))
    assert sorted(deployments) == list(range(1, PROCESSES * PUBLICATIONS + 1))
    published = list(ConfigRevision.objects.filter(scene=scene).order_by("pk").values_list("revision", "fence"))
    revisions, fences = [r for r, _ in published], [f for _, f in published]
    assert revisions == sorted(set(revisions)) and fences == sorted(set(fences))  # strictly increasing
    entry = ConfigEntry.objects.get(scene=scene)
    assert entry.revision == revisions[-1] == PROCESSES * PUBLICATIONS
    assert {h["outcome"] for h in holders} <= {PUBLISHED, "up-to-date"}

    numbers = list(ModelVersion.objects.filter(scene=scene).values_list("version", flat=True))
    assert sorted(numbers) == list(range(1, len(runs) + 1))  # none duplicated, none skipped
    assert ModelVersion.objects.filter(scene=scene, run=shared).count() == 1


PAUSED_PUBLISHER = """
import json, os, signal
from apps.deploy.services import scene_publish

paused = []

def pause(lease):
    if not paused:
        paused.append(lease.fence)
        print(json.dumps({{"fence": lease.fence}}), flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)

result = scene_publish(scene_id={scene_id}, lock_timeout={lock_timeout}, retry_for=60, on_locked=pause)
print(json.dumps(result.as_dict()), flush=True)
"""


def _wait_until_stopped(process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while psutil.Process(process.pid).status() != psutil.STATUS_STOPPED:
        assert time.monotonic() < deadline, "the publisher never paused"
        time.sleep(0.02)


@pytest.fixture
def two_versions(user, make_runs):
    scene = scene_create(name="faults", user=user)
    for run in make_runs(2):
        model_version_register(run=run, scene=scene, user=user)
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user)
    return scene


def test_a_paused_holder_past_its_timeout_is_fenced_off(user, two_versions):
    scene = two_versions
    holder = python(PAUSED_PUBLISHER.format(scene_id=scene.pk, lock_timeout=1.0))
    try:
        paused_fence = json.loads(holder.stdout.readline())["fence"]
        _wait_until_stopped(holder)
        redis = get_redis_connection("default")
        deadline = time.monotonic() + 30
        while redis.exists(LOCK_PREFIX + lock_name(scene.pk)):  # its watchdog is frozen: the lease runs out
            assert time.monotonic() < deadline
            time.sleep(0.05)
        deployment_create(scene=scene, splits=[{"version": 1, "weight": 30}, {"version": 2, "weight": 70}], user=user)
        newer = scene_publish(scene_id=scene.pk)
        assert (newer.outcome, newer.revision) == (PUBLISHED, 2) and newer.fence > paused_fence
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    stale = json.loads(_finish(holder).splitlines()[-1])
    assert (stale["outcome"], stale["revision"], stale["published_revision"]) == (FENCED, 1, 2)
    assert stale["fence"] == paused_fence
    entry = ConfigEntry.objects.get(scene=scene)
    assert (entry.revision, entry.fence) == (2, newer.fence)
    assert list(ConfigRevision.objects.filter(scene=scene).values_list("revision", flat=True)) == [2]


@pytest.mark.parametrize("back_before_resume", [True, False], ids=["restarted-while-paused", "down-while-running"])
def test_redis_restarted_mid_publication_completes_and_the_config_points_at_cached_artifacts(
    user, two_versions, back_before_resume
):
    scene = two_versions
    port = free_port()
    first = RedisServer(port)
    second = None
    holder = python(
        PAUSED_PUBLISHER.format(scene_id=scene.pk, lock_timeout=5.0), REDIS_URL=f"redis://127.0.0.1:{port}/0"
    )
    try:
        json.loads(holder.stdout.readline())
        _wait_until_stopped(holder)
        version = ModelVersion.objects.get(scene=scene, version=1)
        assert first.client.exists(artifact_meta_key(version.sha256))  # warmed before the pause
        first.kill()  # the cache, the lock and the fencing counter are gone with it
        if back_before_resume:
            second = RedisServer(port)
            os.kill(holder.pid, signal.SIGCONT)
        else:
            os.kill(holder.pid, signal.SIGCONT)
            time.sleep(1.5)  # the publisher meets a dead Redis and retries
            second = RedisServer(port)
        result = json.loads(_finish(holder, timeout=120).splitlines()[-1])
        assert (result["outcome"], result["revision"], result["published_revision"]) == (PUBLISHED, 1, 1)
        entry = ConfigEntry.objects.get(scene=scene)
        assert entry.revision == 1 and ConfigRevision.objects.filter(scene=scene).count() == 1
        # every artifact the config points at is in the restarted Redis, whole
        for published in entry.content["versions"]:
            assert _cached_sha(second.client, published["sha256"]) == published["sha256"]
    finally:
        stop(holder)
        for server in (first, second):
            if server is not None:
                server.kill()


@pytest.mark.parametrize("rolled_back", [True, False], ids=["rolled-back", "committed"])
def test_a_deployment_saved_in_a_rolled_back_transaction_publishes_nothing(user, two_versions, rolled_back):
    scene = two_versions
    redis = get_redis_connection("default")
    redis.delete("rq:queue:default")
    script = f"""
from django.db import transaction
from apps.deploy.models import Scene
from apps.deploy.services import deployment_create

class ChangedMyMind(Exception):
    pass

try:
    with transaction.atomic():
        deployment_create(scene=Scene.objects.get(pk={scene.pk}), splits=[{{"version": 2, "weight": 100}}], user=None)
        if {rolled_back}:
            raise ChangedMyMind
except ChangedMyMind:
    pass
print("done")
"""
    assert _finish(python(script)).strip() == "done"
    queued = redis.llen("rq:queue:default")
    if rolled_back:
        assert queued == 0
        assert list(Deployment.objects.filter(scene=scene).values_list("revision", flat=True)) == [1]
    else:
        assert queued == 1  # the same door does enqueue when the transaction commits
        assert Deployment.objects.filter(scene=scene).count() == 2
    assert ConfigEntry.objects.get(scene=scene).revision == 0


def _cached_sha(client: redis_lib.Redis, sha256: str) -> str | None:
    meta = client.get(artifact_meta_key(sha256))
    if meta is None:
        return None
    chunks = json.loads(meta)["chunks"]
    return hashlib.sha256(b"".join(client.get(artifact_chunk_key(sha256, i)) or b"" for i in range(chunks))).hexdigest()
