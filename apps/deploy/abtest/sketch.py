"""Distinct units per (scene, revision, version, day): HyperLogLog sketches kept in the database, computed by Redis.

A sketch is Redis' own HLL string (GET/SET move it like any string). It lives in the database
(``ExposureDay.sketch`` per day, ``VersionSketch.sketch`` per revision and version), so that a Redis restart
loses none, with its estimate beside it, so that reading results needs no Redis at all. Redis only does the
arithmetic: ``sketch_add`` loads a sketch into a scratch key, PFADDs the units and reads it back with its
estimate (PFADD is idempotent: a replayed batch changes nothing), and ``sketch_union_count`` is PFCOUNT over
several loaded sketches, i.e. the distinct units of their union (days merged into a range). Redis' HLL has a
standard error of 0.81 %.
"""

from __future__ import annotations

import uuid

from redis import Redis

from mlabsite.locks import redis_bytes

_SCRATCH_PREFIX = "mlab:events:hll-scratch:"

# A HyperLogLog kept in the database, updated in Redis: load its bytes into a scratch key, add the units, read
# the bytes back, drop the key. PFADD is idempotent, so replaying a batch never changes a sketch twice.
_SKETCH_ADD = """
if ARGV[1] ~= '' then
    redis.call('SET', KEYS[1], ARGV[1])
else
    redis.call('DEL', KEYS[1])
end
for i = 2, #ARGV, 1000 do
    redis.call('PFADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
local sketch = redis.call('GET', KEYS[1])
local estimate = redis.call('PFCOUNT', KEYS[1])
redis.call('DEL', KEYS[1])
return {sketch, estimate}
"""

# The cardinality of the union of sketches kept in the database.
_SKETCH_UNION = """
for i = 1, #ARGV do
    redis.call('SET', KEYS[1] .. ':' .. i, ARGV[i])
end
local keys = {}
for i = 1, #ARGV do
    keys[i] = KEYS[1] .. ':' .. i
end
local count = redis.call('PFCOUNT', unpack(keys))
redis.call('DEL', unpack(keys))
return count
"""


def sketch_add(connection: Redis, sketch: bytes, units: list[str]) -> tuple[bytes, int]:
    """The HyperLogLog ``sketch`` (Redis' HLL string; empty: a new one) with ``units`` added, and its estimate
    of the distinct units it holds."""
    scratch = _SCRATCH_PREFIX + uuid.uuid4().hex
    updated, estimate = connection.eval(_SKETCH_ADD, 1, scratch, sketch, *units)
    return redis_bytes(updated) or b"", int(estimate)


def sketch_union_count(connection: Redis, sketches: list[bytes]) -> int:
    """Estimated distinct units over all ``sketches`` (PFCOUNT of their union); 0 for none."""
    sketches = [s for s in sketches if s]
    if not sketches:
        return 0
    scratch = _SCRATCH_PREFIX + uuid.uuid4().hex
    return int(connection.eval(_SKETCH_UNION, 1, scratch, *sketches))
