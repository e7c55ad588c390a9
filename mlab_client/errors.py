"""The errors the SDK raises. All derive from ``MlabClientError``."""

from __future__ import annotations

from collections.abc import Iterable


class MlabClientError(Exception):
    """Base class of every error raised by mlab_client."""


class NotReadyError(MlabClientError):
    """``predict`` was called before any model was loaded (neither the server nor a snapshot answered)."""


class FeatureError(MlabClientError, ValueError):
    """The features given to ``predict`` do not fit the model's signature.

    ``missing`` and ``unknown`` list the feature names at fault; ``invalid`` maps a feature name to why its
    value was refused; ``row`` is the index of the row in ``predict_many`` (None for ``predict``).
    """

    def __init__(
        self,
        *,
        missing: Iterable[str] = (),
        unknown: Iterable[str] = (),
        invalid: dict[str, str] | None = None,
        row: int | None = None,
    ) -> None:
        self.missing = sorted(missing)
        self.unknown = sorted(str(name) for name in unknown)
        self.invalid = dict(invalid or {})
        self.row = row
        parts = []
        if self.missing:
            parts.append(f"missing features: {', '.join(self.missing)}")
        if self.unknown:
            parts.append(f"unknown features: {', '.join(self.unknown)}")
        parts.extend(f"feature {name!r} {why}" for name, why in self.invalid.items())
        prefix = f"row {row}: " if row is not None else ""
        super().__init__(prefix + "; ".join(parts))

    @property
    def fields(self) -> list[str]:
        """Every feature name this error is about, for an API's 400 body."""
        return [*self.missing, *self.unknown, *self.invalid]


class ConfigError(MlabClientError):
    """The config the server sent does not follow the contract; ``field`` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"config {field}: {message}")


class ArtifactError(MlabClientError):
    """A model artifact could not be fetched, failed its sha256 check, or is not a contract-conforming model."""


class RefreshError(MlabClientError):
    """The config endpoint answered with something other than 200 or 304."""


class ConfigTooLarge(RefreshError):
    """The config the server sent is larger than the client accepts (``max_config_bytes``); it was not read."""
