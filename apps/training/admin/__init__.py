"""Admin of the training app. Each module registers its pages."""

from . import datasources  # noqa: F401  (registration side effect)
