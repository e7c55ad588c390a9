"""Admin of the training app. Each module registers its pages."""

from . import datasources, runs  # noqa: F401  (registration side effect)
