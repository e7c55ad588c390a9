"""Alibaba Cloud request signing, version 3 (ACS3-HMAC-SHA256), and its verifier.

The algorithm, as Alibaba documents it ("Request syntax and signature method V3"):

1. CanonicalRequest = method + "\\n" + CanonicalURI + "\\n" + CanonicalQueryString + "\\n" + CanonicalHeaders
   + "\\n" + SignedHeaders + "\\n" + HashedRequestPayload, where
   - CanonicalURI is the path with each segment percent-encoded (RFC 3986: letters, digits and ``-_.~``
     stay; space is %20, never +); RPC-style APIs use "/", ROA-style APIs (PAI) their path;
   - CanonicalQueryString is the query parameters sorted by name, each ``encode(name)=encode(value)``,
     joined by ``&`` (empty when there is none);
   - CanonicalHeaders are ``host``, ``content-type`` and every ``x-acs-*`` header, names lowercased and sorted,
     values trimmed, each as ``name:value\\n``; SignedHeaders are their names joined by ``;``;
   - HashedRequestPayload is the lowercase hex SHA-256 of the body (of b"" when there is none), also sent as
     ``x-acs-content-sha256``.
2. StringToSign = "ACS3-HMAC-SHA256\\n" + hex(SHA-256(CanonicalRequest)).
3. Signature = hex(HMAC-SHA256(AccessKeySecret, StringToSign)).
4. Authorization: ``ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<SignedHeaders>,Signature=<Signature>``.

The verifier (:func:`verify_request`) rebuilds the canonical request with the same functions from what arrived,
so the client and the emulator cannot drift apart. The secret is an argument of the functions that need it
and is never part of a return value, an exception message or a log line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

ALGORITHM = "ACS3-HMAC-SHA256"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Alibaba refuses a request whose x-acs-date is more than 15 minutes away from its clock.
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
# Headers a verifier insists on seeing signed: without them a replayed or redirected request would pass.
REQUIRED_SIGNED_HEADERS = (
    "host",
    "x-acs-action",
    "x-acs-content-sha256",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-version",
)
_AUTHORIZATION_RE = re.compile(
    r"^ACS3-HMAC-SHA256 Credential=(?P<key>[^,\s]+),SignedHeaders=(?P<headers>[a-z0-9;-]+),"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as Alibaba specifies it: only letters, digits and ``-_.~`` stay as they are."""
    return quote(value, safe="-_.~")


def canonical_uri(path: str) -> str:
    """Each path segment decoded once, then encoded: the same result for a raw and an encoded path."""
    if not path:
        return "/"
    return "/".join(percent_encode(unquote(segment)) for segment in path.split("/"))


def canonical_query(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """Parameters sorted by name (then value), ``encode(name)=encode(value)`` joined by ``&``."""
    pairs = params.items() if isinstance(params, Mapping) else params
    encoded = sorted((percent_encode(str(k)), percent_encode(str(v))) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def hashed_payload(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(CanonicalHeaders, SignedHeaders) of exactly the headers given: the ones that take part in the signature."""
    chosen = sorted((name.lower(), str(value).strip()) for name, value in headers.items())
    names = [name for name, _ in chosen]
    if len(set(names)) != len(names):
        raise ValueError("a signed header appears twice")
    return "".join(f"{name}:{value}\n" for name, value in chosen), ";".join(names)


def canonical_request(
    *, method: str, path: str, query: str, headers: Mapping[str, str], payload_hash: str
) -> tuple[str, str]:
    """(CanonicalRequest, SignedHeaders). ``query`` is already canonical (see :func:`canonical_query`)."""
    header_block, signed = canonical_headers(headers)
    text = "\n".join([method.upper(), canonical_uri(path), query, header_block, signed, payload_hash])
    return text, signed


def string_to_sign(canonical: str) -> str:
    return f"{ALGORITHM}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"


def signature(access_key_secret: str, text: str) -> str:
    return hmac.new(access_key_secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def format_date(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime(DATE_FORMAT)


def new_nonce() -> str:
    return secrets.token_hex(16)


def sign_request(
    *,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    action: str,
    version: str,
    access_key_id: str,
    access_key_secret: str,
    content_type: str | None = None,
    security_token: str = "",
    date: dt.datetime | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers of a signed request (Authorization included), to send exactly as returned.

    ``host`` is what the request's Host header will carry (``name`` or ``name:port``). ``security_token`` (STS)
    is sent as ``x-acs-security-token`` and signed like every ``x-acs-*`` header. ``date`` and ``nonce``
    default to now and a fresh random value; fix them only to reproduce a known vector.
    """
    payload_hash = hashed_payload(body)
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": format_date(date or dt.datetime.now(dt.UTC)),
        "x-acs-signature-nonce": nonce or new_nonce(),
        "x-acs-content-sha256": payload_hash,
    }
    if content_type:
        headers["content-type"] = content_type
    if security_token:
        headers["x-acs-security-token"] = security_token
    canonical, signed = canonical_request(
        method=method, path=path, query=canonical_query(query), headers=headers, payload_hash=payload_hash
    )
    headers["Authorization"] = (
        f"{ALGORITHM} Credential={access_key_id},SignedHeaders={signed},"
        f"Signature={signature(access_key_secret, string_to_sign(canonical))}"
    )
    return headers


# -- verification (the emulator's side) ------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureRejected(Exception):
    """Why a request's signature was refused: Alibaba's error code, an HTTP status and a message.

    The message names what is wrong; it never contains the secret or the expected signature.
    """

    code: str
    status: int
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class Authorization:
    access_key_id: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str | None) -> Authorization:
    match = _AUTHORIZATION_RE.match((value or "").strip())
    if not match:
        raise SignatureRejected(
            "IncompleteSignature",
            401,
            "The Authorization header is missing or is not 'ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,"
            "Signature=…'.",
        )
    return Authorization(match["key"], tuple(match["headers"].split(";")), match["signature"])


def verify_request(
    *,
    method: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: dt.datetime | None = None,
    nonce_seen: Callable[[str], bool] | None = None,
) -> str:
    """Check an incoming request's ACS3 signature; return the access key id that signed it.

    ``headers`` are the received headers (any case). ``secret_for`` maps an access key id to its secret
    (None: unknown key). ``nonce_seen`` records a nonce and says whether it was used before (replay).
    Raises :class:`SignatureRejected`.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    auth = parse_authorization(lowered.get("authorization"))
    missing = [name for name in REQUIRED_SIGNED_HEADERS if name not in auth.signed_headers]
    for optional in ("content-type", "x-acs-security-token"):
        if optional in lowered and optional not in auth.signed_headers:
            missing.append(optional)
    absent = [name for name in auth.signed_headers if name not in lowered]
    if missing or absent:
        raise SignatureRejected(
            "IncompleteSignature",
            401,
            "Headers that must be signed are not: " + ", ".join(missing)
            if missing
            else "Signed headers are absent from the request: " + ", ".join(absent),
        )
    if list(auth.signed_headers) != sorted(auth.signed_headers):
        raise SignatureRejected("IncompleteSignature", 401, "SignedHeaders must be sorted and lowercase.")

    secret = secret_for(auth.access_key_id)
    if secret is None:
        raise SignatureRejected("InvalidAccessKeyId.NotFound", 401, "Specified access key is not found.")

    try:
        sent_at = dt.datetime.strptime(lowered["x-acs-date"], DATE_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise SignatureRejected(
            "InvalidTimeStamp.Format", 400, "x-acs-date must be UTC as yyyy-MM-ddTHH:mm:ssZ."
        ) from None
    if abs((now or dt.datetime.now(dt.UTC)) - sent_at) > MAX_CLOCK_SKEW:
        raise SignatureRejected(
            "InvalidTimeStamp.Expired", 403, "x-acs-date is more than 15 minutes from the server's clock."
        )
    if lowered["x-acs-content-sha256"] != hashed_payload(body):
        raise SignatureRejected(
            "SignatureDoesNotMatch", 403, "x-acs-content-sha256 is not the SHA-256 of the request body."
        )

    signed = {name: lowered[name] for name in auth.signed_headers}
    canonical, _ = canonical_request(
        method=method,
        path=path,
        query=canonical_query(parse_qsl(raw_query, keep_blank_values=True)),
        headers=signed,
        payload_hash=lowered["x-acs-content-sha256"],
    )
    expected = signature(secret, string_to_sign(canonical))
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureRejected(
            "SignatureDoesNotMatch", 403, "Specified signature is not matched with our calculation."
        )
    # A nonce is spent only by a request that proved it holds the key.
    if nonce_seen is not None and nonce_seen(lowered["x-acs-signature-nonce"]):
        raise SignatureRejected("SignatureNonceUsed", 403, "Specified signature nonce was used already.")
    return auth.access_key_id
