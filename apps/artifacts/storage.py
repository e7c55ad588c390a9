"""Artifact storage: model files in the database as checksummed chunks, and their Redis cache.

The database is the source of truth. An artifact is content-addressed (sha256 of its bytes) and stored as
chunks of ``CHUNK_SIZE`` bytes, each with its own sha256, the row and all chunks in one transaction. A chunk
is far below MariaDB's default ``max_allowed_packet`` (16 MiB) even when the driver escapes binary data
(at worst doubling it).

The Redis cache uses the keys of ``mlab_client.contract`` (clients read them directly): a JSON meta key and one
key per chunk, chunked exactly like the database so that each cached chunk can be checked against the
database's chunk checksum. The meta key is written last, so a reader never sees meta without its chunks.
Any missing or mismatching cached piece is a cache miss; a database chunk that fails its checksum is a
corrupt artifact: logged and refused (``ArtifactCorrupt``), never served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NoReturn

from django.db import IntegrityError, transaction
from redis import Redis
from redis.exceptions import RedisError

from mlab_client.contract import artifact_chunk_key, artifact_meta_key
from mlabsite.locks import redis_bytes, redis_connection

from .models import Artifact, ArtifactChunk

logger = logging.getLogger(__name__)

CHUNK_SIZE = 4 * 1024 * 1024
CACHE_TTL_SECONDS = 30 * 24 * 3600


class ArtifactCorrupt(Exception):
    """The database copy of an artifact does not match its checksums. It is reported and never served."""

    def __init__(self, artifact: Artifact, detail: str) -> None:
        super().__init__(f"artifact {artifact.sha256} is corrupt in the database: {detail}")
        self.artifact = artifact
        self.detail = detail


class _AlreadyStored(Exception):
    def __init__(self, sha256: str) -> None:
        self.sha256 = sha256


def _pieces(data: bytes | BinaryIO, size: int) -> Iterator[bytes]:
    """Fixed-size pieces of bytes or of a file-like object (the last one shorter)."""
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for start in range(0, len(view), size):
            yield bytes(view[start : start + size])
        return
    while True:
        piece = data.read(size)
        # A raw stream may return short reads before the end: fill each piece to keep chunks aligned.
        while piece and len(piece) < size:
            more = data.read(size - len(piece))
            if not more:
                break
            piece += more
        if not piece:
            return
        yield bytes(piece)


def artifact_store(data: bytes | BinaryIO, *, format: str = "onnx", chunk_size: int = CHUNK_SIZE) -> Artifact:
    """Store ``data`` (bytes or a binary file-like object, read once, chunk by chunk) and return its Artifact.

    Content-addressed: storing bytes that are already stored returns the existing artifact. The row and its
    chunks are written in one transaction; on any failure nothing is left behind.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        existing = Artifact.objects.filter(sha256=hashlib.sha256(data).hexdigest()).first()
        if existing is not None:
            return existing
    try:
        return _artifact_insert(data, format=format, chunk_size=chunk_size)
    except _AlreadyStored as stored:
        return Artifact.objects.get(sha256=stored.sha256)


def _artifact_insert(data: bytes | BinaryIO, *, format: str, chunk_size: int) -> Artifact:
    digest = None
    try:
        with transaction.atomic():
            # Until every chunk is in, the row carries a placeholder address that no reader asks for.
            artifact = Artifact(
                sha256=f"pending-{uuid.uuid4().hex}", size=0, format=format, chunk_size=chunk_size, chunk_count=0
            )
            artifact.full_clean()
            artifact.save()
            overall, size, count = hashlib.sha256(), 0, 0
            for count, piece in enumerate(_pieces(data, chunk_size), start=1):
                chunk = ArtifactChunk(
                    artifact=artifact, index=count - 1, sha256=hashlib.sha256(piece).hexdigest(), data=piece
                )
                chunk.full_clean(validate_unique=False, validate_constraints=False)
                chunk.save()
                overall.update(piece)
                size += len(piece)
            digest = overall.hexdigest()
            if Artifact.objects.filter(sha256=digest).exists():
                raise _AlreadyStored(digest)
            artifact.sha256, artifact.size, artifact.chunk_count = digest, size, count
            artifact.full_clean()
            artifact.save(update_fields=["sha256", "size", "chunk_count"])
            return artifact
    except IntegrityError:
        # A concurrent store of the same bytes committed first (unique sha256): theirs is ours.
        if digest is None:
            raise
        raise _AlreadyStored(digest) from None


# --- reading from the database ------------------------------------------------------------------------


def artifact_chunk_checksums(artifact: Artifact) -> list[str]:
    """The sha256 of each chunk in order, after checking that the chunks are all there (one query, no data)."""
    rows = list(ArtifactChunk.objects.filter(artifact=artifact).order_by("index").values_list("index", "sha256"))
    if [index for index, _ in rows] != list(range(artifact.chunk_count)):
        _report(artifact, f"expected chunks 0..{artifact.chunk_count - 1}, found {[i for i, _ in rows]}")
    return [checksum for _, checksum in rows]


def artifact_db_chunk(artifact: Artifact, index: int, checksum: str) -> bytes:
    """One chunk read from the database and verified against ``checksum``."""
    data = ArtifactChunk.objects.filter(artifact=artifact, index=index).values_list("data", flat=True).first()
    if data is None:
        _report(artifact, f"chunk {index} is missing")
    data = bytes(data)
    if hashlib.sha256(data).hexdigest() != checksum:
        _report(artifact, f"chunk {index} does not match its sha256")
    return data


def artifact_db_chunks(artifact: Artifact) -> Iterator[bytes]:
    """Stream the artifact from the database, one verified chunk per query; the whole is verified at the end."""
    checksums = artifact_chunk_checksums(artifact)
    overall, size = hashlib.sha256(), 0
    for index, checksum in enumerate(checksums):
        data = artifact_db_chunk(artifact, index, checksum)
        overall.update(data)
        size += len(data)
        yield data
    if size != artifact.size or overall.hexdigest() != artifact.sha256:
        _report(artifact, "the chunks do not add up to the recorded size and sha256")


def _report(artifact: Artifact, detail: str) -> NoReturn:
    error = ArtifactCorrupt(artifact, detail)
    logger.error("%s", error)
    raise error


# --- the Redis cache --------------------------------------------------------------------------------------


def cache_meta(artifact: Artifact) -> dict:
    return {"size": artifact.size, "chunk_size": artifact.chunk_size, "chunks": artifact.chunk_count}


def cache_meta_matches(artifact: Artifact, raw: bytes | None) -> bool:
    if raw is None:
        return False
    try:
        meta = json.loads(raw)
    except ValueError:
        return False
    return isinstance(meta, dict) and {k: meta.get(k) for k in ("size", "chunk_size", "chunks")} == cache_meta(artifact)


def artifact_cache_warm(artifact: Artifact, *, connection: Redis | None = None) -> None:
    """Copy the artifact from the database into Redis (verified chunk by chunk), meta last."""
    _cache_write(artifact, artifact_db_chunks(artifact), connection=connection or redis_connection())


def _cache_write(artifact: Artifact, chunks: Iterable[bytes], *, connection: Redis) -> None:
    sha = artifact.sha256
    connection.delete(artifact_meta_key(sha))
    for index, data in enumerate(chunks):
        connection.set(artifact_chunk_key(sha, index), data, ex=CACHE_TTL_SECONDS)
    connection.set(artifact_meta_key(sha), json.dumps(cache_meta(artifact)), ex=CACHE_TTL_SECONDS)


def artifact_cache_present(artifact: Artifact, *, connection: Redis | None = None) -> bool:
    """True when the meta key matches and every chunk key exists (contents are checked when read)."""
    connection = connection or redis_connection()
    sha = artifact.sha256
    keys = [artifact_chunk_key(sha, index) for index in range(artifact.chunk_count)]
    pipe = connection.pipeline(transaction=False)
    pipe.get(artifact_meta_key(sha))
    if keys:
        pipe.exists(*keys)
    replies = pipe.execute()
    return cache_meta_matches(artifact, replies[0]) and (not keys or replies[1] == len(keys))


def artifact_cache_ensure(artifact: Artifact, *, connection: Redis | None = None) -> bool:
    """Warm the cache unless it already holds the artifact. Returns True when it had to warm."""
    connection = connection or redis_connection()
    if artifact_cache_present(artifact, connection=connection):
        return False
    artifact_cache_warm(artifact, connection=connection)
    return True


def artifact_read(artifact: Artifact) -> bytes:
    """The artifact's bytes, verified: from the cache when it is intact, else from the database (re-warming
    the cache). Raises ArtifactCorrupt when the database copy is corrupt."""
    try:
        connection = redis_connection()
        data = _cache_read(artifact, connection)
    except RedisError as exc:
        logger.warning("artifact cache unavailable, reading %s from the database: %s", artifact.sha256[:12], exc)
        return b"".join(artifact_db_chunks(artifact))
    if data is not None:
        return data
    data = b"".join(artifact_db_chunks(artifact))
    try:
        _cache_write(artifact, _pieces(data, artifact.chunk_size), connection=connection)
    except RedisError as exc:
        logger.warning("could not re-warm the cache of %s: %s", artifact.sha256[:12], exc)
    return data


def _cache_read(artifact: Artifact, connection: Redis) -> bytes | None:
    sha = artifact.sha256
    if not cache_meta_matches(artifact, redis_bytes(connection.get(artifact_meta_key(sha)))):
        return None
    keys = [artifact_chunk_key(sha, index) for index in range(artifact.chunk_count)]
    pieces: list[bytes] = []
    for reply in connection.mget(keys) if keys else []:
        piece = redis_bytes(reply)
        if piece is None:
            return None
        pieces.append(piece)
    data = b"".join(pieces)
    if hashlib.sha256(data).hexdigest() != sha:
        logger.warning("cached copy of artifact %s fails its sha256; reading the database", sha[:12])
        return None
    return data
