"""Artifact storage: chunking around the limits, checksums, the Redis cache in the contract's keys."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os

import pytest

from apps.artifacts.models import Artifact, ArtifactChunk
from apps.artifacts.storage import (
    CHUNK_SIZE,
    ArtifactCorrupt,
    artifact_cache_present,
    artifact_cache_warm,
    artifact_db_chunks,
    artifact_read,
    artifact_store,
)
from mlab_client.contract import artifact_chunk_key, artifact_meta_key

pytestmark = pytest.mark.django_db


def _cached_bytes(redis, artifact) -> bytes:
    meta = json.loads(redis.get(artifact_meta_key(artifact.sha256)))
    assert meta == {"size": artifact.size, "chunk_size": artifact.chunk_size, "chunks": artifact.chunk_count}
    return b"".join(redis.get(artifact_chunk_key(artifact.sha256, i)) for i in range(meta["chunks"]))


@pytest.mark.parametrize(
    ("size", "chunks"),
    [(0, 0), (1, 1), (CHUNK_SIZE - 1, 1), (CHUNK_SIZE, 1), (CHUNK_SIZE + 1, 2), (2 * CHUNK_SIZE, 2)],
    ids=["empty", "one-byte", "one-chunk-less-a-byte", "exactly-one-chunk", "one-byte-over", "two-chunks"],
)
def test_chunking_around_the_limit_round_trips(size, chunks, redis):
    data = os.urandom(size)
    artifact = artifact_store(data, format="onnx")
    assert (artifact.size, artifact.chunk_count, artifact.sha256) == (size, chunks, hashlib.sha256(data).hexdigest())
    rows = list(ArtifactChunk.objects.filter(artifact=artifact).order_by("index"))
    assert [len(row.data) for row in rows] == [min(CHUNK_SIZE, size - i * CHUNK_SIZE) for i in range(chunks)]
    assert all(row.sha256 == hashlib.sha256(row.data).hexdigest() for row in rows)
    assert b"".join(artifact_db_chunks(artifact)) == data
    artifact_cache_warm(artifact)
    assert _cached_bytes(redis, artifact) == data
    assert artifact_read(artifact) == data


def test_storing_the_same_bytes_twice_returns_the_same_artifact():
    data = b"model bytes" * 100
    first = artifact_store(data)
    assert artifact_store(data).pk == first.pk
    assert artifact_store(io.BytesIO(data), chunk_size=64).pk == first.pk
    assert Artifact.objects.count() == 1


class _Trickle(io.RawIOBase):
    """A raw stream returning at most 7 bytes per read, like a slow socket."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        piece = self.data.read(min(7, len(buffer)))
        buffer[: len(piece)] = piece
        return len(piece)


def test_a_stream_with_short_reads_is_stored_in_full_chunks():
    data = os.urandom(1000)
    artifact = artifact_store(_Trickle(data), chunk_size=64)
    sizes = list(ArtifactChunk.objects.filter(artifact=artifact).order_by("index").values_list("data", flat=True))
    assert [len(piece) for piece in sizes] == [64] * 15 + [40]
    assert b"".join(artifact_db_chunks(artifact)) == data


class _Failing(io.RawIOBase):
    def __init__(self) -> None:
        self.reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self.reads += 1
        if self.reads > 3:
            raise OSError("the upload was cut")
        buffer[:10] = b"x" * 10
        return 10


def test_a_failed_store_leaves_nothing_behind():
    with pytest.raises(OSError, match="cut"):
        artifact_store(_Failing(), chunk_size=10)
    assert not Artifact.objects.exists()
    assert not ArtifactChunk.objects.exists()


def test_a_corrupt_database_chunk_is_reported_and_never_served(caplog):
    data = os.urandom(300)
    artifact = artifact_store(data, chunk_size=100)
    ArtifactChunk.objects.filter(artifact=artifact, index=1).update(data=b"y" * 100)
    with caplog.at_level(logging.ERROR, logger="apps.artifacts.storage"):
        with pytest.raises(ArtifactCorrupt, match="chunk 1"):
            b"".join(artifact_db_chunks(artifact))
        with pytest.raises(ArtifactCorrupt):
            artifact_read(artifact)
        with pytest.raises(ArtifactCorrupt):
            artifact_cache_warm(artifact)
    assert "corrupt" in caplog.text


def test_a_missing_database_chunk_is_reported():
    artifact = artifact_store(os.urandom(300), chunk_size=100)
    ArtifactChunk.objects.filter(artifact=artifact, index=2).delete()
    with pytest.raises(ArtifactCorrupt, match="expected chunks"):
        artifact_read(artifact)


def test_a_cache_miss_falls_back_to_the_database_and_rewarms(redis):
    data = os.urandom(250)
    artifact = artifact_store(data, chunk_size=100)
    artifact_cache_warm(artifact)
    redis.delete(artifact_chunk_key(artifact.sha256, 1))
    assert not artifact_cache_present(artifact)
    assert artifact_read(artifact) == data
    assert artifact_cache_present(artifact)
    assert _cached_bytes(redis, artifact) == data


def test_a_corrupt_cached_copy_falls_back_to_the_database_and_rewarms(redis):
    data = os.urandom(250)
    artifact = artifact_store(data, chunk_size=100)
    artifact_cache_warm(artifact)
    redis.set(artifact_chunk_key(artifact.sha256, 0), b"z" * 100)
    assert artifact_read(artifact) == data
    assert _cached_bytes(redis, artifact) == data


@pytest.mark.slow
def test_a_100_mib_artifact_round_trips_through_the_database_and_the_cache(redis):
    size = 100 * 1024 * 1024
    data = os.urandom(size)
    artifact = artifact_store(io.BytesIO(data))
    expected = hashlib.sha256(data).hexdigest()
    del data  # read back without holding two copies
    assert (artifact.size, artifact.chunk_count, artifact.sha256) == (size, 25, expected)
    streamed = hashlib.sha256()
    for chunk in artifact_db_chunks(artifact):
        assert len(chunk) <= CHUNK_SIZE
        streamed.update(chunk)
    assert streamed.hexdigest() == expected
    artifact_cache_warm(artifact)
    assert artifact_cache_present(artifact)
    assert hashlib.sha256(artifact_read(artifact)).hexdigest() == expected
