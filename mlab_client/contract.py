"""What the server and the client agree on, in one place. Both sides import these names.

Model artifacts are ONNX files written by the trainer (apps/training/trainer) and read by the client.
One graph input per raw feature, named like the feature, shape [None, 1]: ``tensor(float)`` for numeric
features, ``tensor(string)`` for categorical ones. Preprocessing (imputation, scaling, one-hot with the
training vocabulary) is inside the graph, so a client feeds raw values.

``metadata_props`` of the ONNX model carry:

- ``mlab.signature``: JSON list ``[{"name": …, "type": "number" | "string", "categories": [...]?}]`` in
  graph input order; ``categories`` is the vocabulary a one-hot encoder learned (others encode as zeros).
- ``mlab.task``: ``"binary"`` or ``"regression"``.
- ``mlab.threshold``: binary only; a score at or above it is label 1.
- ``mlab.score_output``: the name of the graph output holding the score: for binary the probability
  tensor ``[N, 2]`` (score = column 1), for regression the prediction ``[N, 1]``.
- ``mlab.format_version``: ``"1"``.

Missing values as fed to the graph: a missing number is NaN (float32); a missing category is the empty
string ``MISSING_CATEGORY``, which the graph's categorical imputer replaces by the template's marker.

Artifacts cached in Redis (written by the server, read by clients given ``redis_url``), raw bytes, no pickle:

- ``artifact_meta_key(sha256)`` → JSON ``{"size": int, "chunk_size": int, "chunks": int}``
- ``artifact_chunk_key(sha256, i)`` → bytes of chunk ``i`` (0-based); the concatenation must hash to sha256.
  Readers verify the sha256 and treat any missing or mismatching piece as a cache miss. Readers rely on
  ``chunks`` and ``size``; ``chunk_size`` (every chunk's size but the last) is informational. The server
  writes the chunks before the meta, so a reader that finds the meta finds a complete entry.

The config a client polls, ``GET /api/v1/config/{scene}/`` with ``Authorization: Token <key>`` (what
``mlab_client.config.SceneConfig.parse`` checks, naming the field at fault):

- ``scene`` (str), ``revision`` (int ≥ 0, only grows), ``salt`` (str), ``buckets`` (``BUCKETS``);
- ``allocation``: ``[[start, end, version], …]`` half-open ranges covering every bucket exactly once;
- ``versions``: ``[{"version", "sha256" (64 lowercase hex), "size", "format": "onnx", "url"}, …]``, every
  version the allocation or the overrides name; ``url`` is on the same server (the client sends its token
  nowhere else) and answers the artifact's bytes;
- ``overrides``: ``{unit_id: version}``, winning over buckets.

Answered with an ``ETag``; ``If-None-Match`` with the current ETag → 304; adding ``?wait=N`` (N ≤
``MAX_WAIT_SECONDS``) holds the request until a new revision (200) or N seconds (304).

Bucketing (see ``routing``): a unit's bucket is
``int.from_bytes(sha256(f"{salt}:{unit_id}".encode()).digest()[:8], "big") % BUCKETS``.
"""

BUCKETS = 10_000
FORMAT_VERSION = "1"
MAX_WAIT_SECONDS = 60

META_SIGNATURE = "mlab.signature"
META_TASK = "mlab.task"
META_THRESHOLD = "mlab.threshold"
META_SCORE_OUTPUT = "mlab.score_output"
META_FORMAT_VERSION = "mlab.format_version"

NUMBER = "number"
STRING = "string"

MISSING_CATEGORY = ""


def artifact_meta_key(sha256: str) -> str:
    return f"mlab:artifact:{sha256}:meta"


def artifact_chunk_key(sha256: str, index: int) -> str:
    return f"mlab:artifact:{sha256}:{index}"
