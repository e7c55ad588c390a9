"""Alibaba Cloud credentials for PAI and OSS: an AccessKey pair, an STS token, or the default chain.

Three sources, chosen by ``MLAB_PAI_CREDENTIALS`` (see :func:`credentials_from_settings`):

- ``access-key``: ``MLAB_PAI_ACCESS_KEY_ID`` + ``MLAB_PAI_ACCESS_KEY_SECRET`` (a RAM user's AccessKey pair);
- ``sts``: the same two plus ``MLAB_PAI_SECURITY_TOKEN`` (temporary credentials from STS AssumeRole); PAI
  requests then carry ``x-acs-security-token``, OSS requests ``x-oss-security-token``, both signed;
- ``default-chain``: Alibaba's ``alibabacloud-credentials`` default chain (the ``ALIBABA_CLOUD_*``
  environment variables, the ``~/.alibabacloud/credentials`` file, the ECS instance's RAM role), asked
  again before each request so that rotated STS tokens are picked up.

Left empty, the source is ``access-key`` (or ``sts`` when a token is set) if a key id is configured.

A secret lives in a :class:`Credentials` only: its ``repr`` and ``str`` mask it, it is not a dataclass field
that ``vars``/``asdict`` would show, and nothing here puts it in a message or a log line.
"""

from __future__ import annotations

from typing import Any, Protocol

from .errors import CredentialsUnavailable, PaiConfigurationError

ACCESS_KEY, STS, DEFAULT_CHAIN = "access-key", "sts", "default-chain"
SOURCES = (ACCESS_KEY, STS, DEFAULT_CHAIN)
MASK = "********"


class Credentials:
    """One set of credentials: the key id (not secret), and the secret and STS token, masked everywhere."""

    __slots__ = ("access_key_id", "_secret", "_token")

    def __init__(self, access_key_id: str, access_key_secret: str, security_token: str = ""):
        self.access_key_id = access_key_id
        self._secret = access_key_secret
        self._token = security_token or ""

    def secret(self) -> str:
        """The AccessKey secret, for a signer and nothing else."""
        return self._secret

    def token(self) -> str:
        """The STS security token ("" for a long-term AccessKey pair)."""
        return self._token

    def __repr__(self) -> str:
        token = f", security_token='{MASK}'" if self._token else ""
        return f"Credentials(access_key_id={self.access_key_id!r}, access_key_secret='{MASK}'{token})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("Credentials are not picklable: they must not be stored or sent anywhere.")


class CredentialsProvider(Protocol):
    """Where credentials come from; asked before each request (a provider may refresh them)."""

    def get(self) -> Credentials: ...

    def describe(self) -> str: ...


class StaticCredentials:
    """An AccessKey pair, or an STS triple, given once."""

    def __init__(self, access_key_id: str, access_key_secret: str, security_token: str = ""):
        if not access_key_id or not access_key_secret:
            raise PaiConfigurationError("An AccessKey id and secret are both needed.")
        self._credentials = Credentials(access_key_id, access_key_secret, security_token)

    def get(self) -> Credentials:
        return self._credentials

    def describe(self) -> str:
        kind = "STS token" if self._credentials.token() else "AccessKey"
        return f"{kind} {self._credentials.access_key_id}"

    def __repr__(self) -> str:
        return f"StaticCredentials({self._credentials!r})"


class DefaultChainCredentials:
    """``alibabacloud-credentials``' default chain: environment, credentials file, ECS RAM role."""

    def __init__(self, client: Any = None):
        self._client = client

    def _chain(self) -> Any:
        if self._client is None:
            # Imported here: only deployments that choose the default chain need the package loaded.
            from alibabacloud_credentials.client import Client

            try:
                self._client = Client()
            except Exception as exc:
                raise CredentialsUnavailable(_chain_failure(exc)) from None
        return self._client

    def get(self) -> Credentials:
        try:
            found = self._chain().get_credential()
        except CredentialsUnavailable:
            raise
        except Exception as exc:
            raise CredentialsUnavailable(_chain_failure(exc)) from None
        if not found.access_key_id or not found.access_key_secret:
            raise CredentialsUnavailable(_chain_failure(None))
        return Credentials(found.access_key_id, found.access_key_secret, found.security_token or "")

    def describe(self) -> str:
        return "the alibabacloud-credentials default chain"

    def __repr__(self) -> str:
        return "DefaultChainCredentials()"


def _chain_failure(exc: Exception | None) -> str:
    # The exception's type only: its text could quote a credentials file line.
    why = f" ({type(exc).__name__})" if exc is not None else ""
    return (
        "The alibabacloud-credentials default chain found no credentials" + why + ": set ALIBABA_CLOUD_ACCESS_KEY_ID "
        "and ALIBABA_CLOUD_ACCESS_KEY_SECRET, write ~/.alibabacloud/credentials, or run on an ECS instance "
        "with a RAM role (ALIBABA_CLOUD_ECS_METADATA)."
    )


def credentials_from_settings(settings: Any) -> CredentialsProvider:
    """The provider ``MLAB_PAI_CREDENTIALS`` and the ``MLAB_PAI_ACCESS_KEY_*`` settings describe."""
    source = (getattr(settings, "MLAB_PAI_CREDENTIALS", "") or "").strip().lower()
    key_id = getattr(settings, "MLAB_PAI_ACCESS_KEY_ID", "") or ""
    secret = getattr(settings, "MLAB_PAI_ACCESS_KEY_SECRET", "") or ""
    token = getattr(settings, "MLAB_PAI_SECURITY_TOKEN", "") or ""
    if source and source not in SOURCES:
        raise PaiConfigurationError(f"MLAB_PAI_CREDENTIALS is {source!r}; expected one of {', '.join(SOURCES)}.")
    if source == DEFAULT_CHAIN:
        return DefaultChainCredentials()
    missing = [
        name
        for name, value in (("MLAB_PAI_ACCESS_KEY_ID", key_id), ("MLAB_PAI_ACCESS_KEY_SECRET", secret))
        if not value
    ]
    if source == STS and not token:
        missing.append("MLAB_PAI_SECURITY_TOKEN")
    if missing:
        raise PaiConfigurationError(
            f"PAI is not configured: set {', '.join(missing)} (or MLAB_PAI_CREDENTIALS=default-chain)."
        )
    return StaticCredentials(key_id, secret, token if source in ("", STS) else "")
