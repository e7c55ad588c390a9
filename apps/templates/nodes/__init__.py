"""Node types by key. Importing this package registers the built-in node types."""

from . import evaluate, preprocess, sample, train  # noqa: F401  (registration side effect)
from .base import (
    ColumnAllowList,
    Group,
    NodeKind,
    NodeType,
    NodeValidationError,
    Param,
    ParamError,
    ParamType,
    Task,
    ValidationContext,
    registry,
)

__all__ = [
    "ColumnAllowList",
    "Group",
    "NodeKind",
    "NodeType",
    "NodeValidationError",
    "Param",
    "ParamError",
    "ParamType",
    "Task",
    "ValidationContext",
    "registry",
]
