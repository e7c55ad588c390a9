"""The PAI engine's errors (PAI's API, OSS, credentials). Messages are plain words and never contain a secret."""

from __future__ import annotations


class PaiError(Exception):
    """Base of the PAI engine's errors."""


class PaiRefused(PaiError):
    """PAI answered 4xx: the request is wrong or not allowed. Retrying the same request cannot help."""

    def __init__(self, status: int, code: str, message: str, request_id: str = ""):
        self.status, self.code, self.message, self.request_id = status, code, message, request_id
        super().__init__(f"PAI refused the request ({status} {code}): {message}")


class PaiUnavailable(PaiError):
    """PAI could not be reached or kept failing (5xx, timeouts) after every retry."""


class PaiConfigurationError(PaiError, ValueError):
    """A setting the client needs is missing or wrong."""


class CredentialsUnavailable(PaiConfigurationError):
    """No credentials could be found or fetched (the default chain found nothing, the ECS role answered no)."""
