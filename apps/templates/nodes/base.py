"""Node types: parameter declarations as data, and the template method every node type follows.

A node type declares its parameters as :class:`Param` rows. From those rows alone come the Launch form,
the API validation, the JSON Schema of a template and the training payload. The base class
:class:`NodeType` runs the same steps for every node (``resolve``): apply defaults and the template's
overrides, refuse unknown and locked parameters, check each value against its declaration, then call the
``clean`` hook for rules that span parameters. ``payload`` applies the exclusion flags; ``local_step`` is
the hook the local engine calls.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
IDENTIFIER_PATTERN = IDENTIFIER_RE.pattern
MASK = "********"


class Group(StrEnum):
    """The three tabs a PAI Designer user knows."""

    FIELDS = "fields"
    PARAMETERS = "parameters"
    TUNING = "tuning"

    @property
    def label(self) -> str:
        return {"fields": "Fields setting", "parameters": "Parameters setting", "tuning": "Execution tuning"}[
            self.value
        ]


class ParamType(StrEnum):
    INT = "int"
    FLOAT = "float"
    STR = "str"
    BOOL = "bool"
    CHOICE = "choice"
    DATE = "date"
    COLUMN = "column"
    COLUMNS = "columns"
    TABLE = "table"
    CONDITIONS = "conditions"
    JOINS = "joins"


class NodeKind(StrEnum):
    SAMPLE = "sample"
    PREPROCESS = "preprocess"
    SPLIT = "split"
    TRAIN = "train"
    EVALUATE = "evaluate"


class Task(StrEnum):
    BINARY = "binary"
    REGRESSION = "regression"


# Filter operators of the condition-list type, and the shape of the value each one takes.
SCALAR_OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
LIST_OPERATORS = ("in", "not in")
NULL_OPERATORS = ("is null", "is not null")
OPERATORS = (*SCALAR_OPERATORS, *LIST_OPERATORS, "between", "like", *NULL_OPERATORS)
MAX_CONDITIONS = 50
MAX_LIST_VALUES = 1000
MAX_STR_LENGTH = 1000

# The dates every door can hand to every back end. MySQL and MariaDB document DATE and DATETIME for 1000-01-01
# to 9999-12-31 (MariaDB turns a later literal into NULL, silently emptying a sample); Python's dates end on the
# same day, as do Hive's, Spark's and MaxCompute's; DuckDB's range is far wider. A date parameter's declared
# bounds (``Param.min`` / ``Param.max``) lie within these.
DATE_MIN = "1000-01-01"
DATE_MAX = "9999-12-31"


class ParamError(ValueError):
    """A value does not satisfy its parameter's declaration. The message never quotes a secret."""


class NodeValidationError(Exception):
    """Raised by a node's ``clean`` hook: ``errors`` maps a parameter name (or ``non_field_errors``)
    to messages."""

    def __init__(self, errors: Mapping[str, list[str] | str]):
        self.errors = {k: [v] if isinstance(v, str) else list(v) for k, v in errors.items()}
        super().__init__(self.errors)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar(value: Any) -> str | int | float | bool:
    if isinstance(value, bool | str) or _is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamError("Values must be finite numbers.")
        if isinstance(value, str) and len(value) > MAX_STR_LENGTH:
            raise ParamError(f"Values are at most {MAX_STR_LENGTH} characters.")
        return value
    raise ParamError("Values must be a string, a number or a boolean.")


def _is_iso_date(text: str) -> bool:
    """``YYYY-MM-DD``, and a day of the calendar."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _identifier(value: Any, what: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER_RE.match(value):
        raise ParamError(
            f"{what} must be a name of letters, digits and underscores (not starting with a digit), "
            "at most 64 characters."
        )
    return value


@dataclass(frozen=True)
class Param:
    """One parameter of a node type, declared as data."""

    name: str
    type: ParamType
    label: str = ""
    default: Any = None  # None: no default
    required: bool = False
    min: float | str | None = None  # a date parameter's bounds are ISO dates, DATE_MIN and DATE_MAX by default
    max: float | str | None = None
    exclusive_min: bool = False
    exclusive_max: bool = False
    choices: tuple[str, ...] = ()
    help: str = ""
    group: Group = Group.PARAMETERS
    pai_name: str | None = None
    serialize: bool = True  # False: UI-only, never in a training payload
    secret: bool = False  # True: never serialized, never logged, never shown back
    engines: tuple[str, ...] = ("local", "pai")
    max_items: int | None = None
    # Column pickers: the kinds of column offered (empty: every column; see ColumnAllowList.column_traits), and
    # sibling parameters whose chosen column is not offered (a feature picker leaves out the label).
    accepts: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " ").capitalize())
        if self.type == ParamType.CHOICE and not self.choices:
            raise TypeError(f"choice parameter {self.name} declares no choices")
        if self.type == ParamType.DATE:
            self._declare_date_bounds()
        elif isinstance(self.min, str) or isinstance(self.max, str):
            raise TypeError(f"parameter {self.name}: only date parameters have dates as bounds")
        if self.default is not None:
            self.validate(self.default)  # a declaration with an invalid default is a programming error

    def _declare_date_bounds(self) -> None:
        low, high = self.min or DATE_MIN, self.max or DATE_MAX
        if not all(isinstance(b, str) and _is_iso_date(b) and DATE_MIN <= b <= DATE_MAX for b in (low, high)):
            raise TypeError(f"date parameter {self.name}: bounds are dates from {DATE_MIN} to {DATE_MAX}")
        if str(low) > str(high):
            raise TypeError(f"date parameter {self.name}: min is after max")
        object.__setattr__(self, "min", low)
        object.__setattr__(self, "max", high)

    @property
    def in_payload(self) -> bool:
        return self.serialize and not self.secret

    @property
    def payload_name(self) -> str:
        return self.pai_name or self.name

    @property
    def is_list(self) -> bool:
        return self.type in (ParamType.COLUMNS, ParamType.CONDITIONS, ParamType.JOINS)

    # -- validation of one value ------------------------------------------------------------------
    def validate(self, value: Any) -> Any:
        """Return the value in canonical form or raise ParamError. ``value`` is JSON-typed."""
        checker = getattr(self, f"_validate_{self.type.value}")
        return checker(value)

    def _validate_int(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ParamError("Expected a whole number.")
        self._check_bounds(value)
        return value

    def _validate_float(self, value: Any) -> float:
        if not _is_number(value):
            raise ParamError("Expected a number.")
        value = float(value)
        if not math.isfinite(value):
            raise ParamError("Expected a finite number.")
        self._check_bounds(value)
        return value

    def _check_bounds(self, value: float) -> None:
        low, high = self.min, self.max
        # Numeric parameters have numeric bounds (__post_init__ refuses dates on them).
        assert not isinstance(low, str) and not isinstance(high, str)
        if low is not None:
            if self.exclusive_min and value <= low:
                raise ParamError(f"Must be greater than {low:g}.")
            if not self.exclusive_min and value < low:
                raise ParamError(f"Must be at least {low:g}.")
        if high is not None:
            if self.exclusive_max and value >= high:
                raise ParamError(f"Must be less than {high:g}.")
            if not self.exclusive_max and value > high:
                raise ParamError(f"Must be at most {high:g}.")

    def _validate_str(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ParamError("Expected text.")
        if len(value) > MAX_STR_LENGTH:
            raise ParamError(f"At most {MAX_STR_LENGTH} characters.")
        return value

    def _validate_bool(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ParamError("Expected true or false.")
        return value

    def _validate_choice(self, value: Any) -> str:
        if value not in self.choices or not isinstance(value, str):
            raise ParamError(f"Must be one of: {', '.join(self.choices)}.")
        return value

    def _validate_date(self, value: Any) -> str:
        if not isinstance(value, str) or not _is_iso_date(value):
            raise ParamError("Expected a date as YYYY-MM-DD.")
        # ISO dates of four-digit years compare as text in date order; the bounds were set by __post_init__.
        assert isinstance(self.min, str) and isinstance(self.max, str)
        if not self.min <= value <= self.max:
            raise ParamError(f"Must be a date from {self.min} to {self.max}.")
        return value

    def _validate_column(self, value: Any) -> str:
        return _identifier(value, "A column")

    def _validate_table(self, value: Any) -> str:
        return _identifier(value, "A table")

    def _validate_columns(self, value: Any) -> list[str]:
        items = self._list(value)
        columns = [_identifier(item, "Each column") for item in items]
        if len(set(columns)) != len(columns):
            raise ParamError("A column is listed twice.")
        return columns

    def _validate_conditions(self, value: Any) -> list[dict[str, Any]]:
        return [self._condition(item) for item in self._list(value)]

    def _validate_joins(self, value: Any) -> list[dict[str, str]]:
        joins = []
        for item in self._list(value):
            if not isinstance(item, dict) or set(item) != {"table", "on"}:
                raise ParamError('Each join is an object {"table": …, "on": …}.')
            joins.append({"table": _identifier(item["table"], "A table"), "on": _identifier(item["on"], "A column")})
        return joins

    def _list(self, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise ParamError("Expected a list.")
        limit = self.max_items or MAX_CONDITIONS
        if len(value) > limit:
            raise ParamError(f"At most {limit} items.")
        return value

    @staticmethod
    def _condition(item: Any) -> dict[str, Any]:
        if not isinstance(item, dict) or not {"column", "op"} <= set(item) <= {"column", "op", "value"}:
            raise ParamError('Each condition is an object {"column": …, "op": …, "value": …}.')
        column = _identifier(item["column"], "A condition's column")
        op = item["op"]
        if op not in OPERATORS:
            raise ParamError(f"Operator must be one of: {', '.join(OPERATORS)}.")
        value = item.get("value")
        if op in NULL_OPERATORS:
            if value is not None:
                raise ParamError(f"'{op}' takes no value.")
        elif op in LIST_OPERATORS:
            if not isinstance(value, list) or not value or len(value) > MAX_LIST_VALUES:
                raise ParamError(f"'{op}' takes a list of 1 to {MAX_LIST_VALUES} values.")
            value = [_scalar(v) for v in value]
        elif op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise ParamError("'between' takes a list of two values [low, high].")
            value = [_scalar(v) for v in value]
        elif op == "like":
            if not isinstance(value, str):
                raise ParamError("'like' takes text; it matches as 'contains' with wildcards escaped.")
            value = _scalar(value)
        else:
            if value is None:
                raise ParamError(f"'{op}' needs a value.")
            value = _scalar(value)
        return {"column": column, "op": op, "value": value}

    # -- text input (command line: --set node.param=value) ---------------------------------------
    def parse_text(self, text: str) -> Any:
        """Turn command-line text into a JSON-typed value; validation comes after."""
        if self.type == ParamType.INT:
            try:
                return int(text)
            except ValueError:
                raise ParamError("Expected a whole number.") from None
        if self.type == ParamType.FLOAT:
            try:
                return float(text)
            except ValueError:
                raise ParamError("Expected a number.") from None
        if self.type == ParamType.BOOL:
            lowered = text.strip().lower()
            if lowered in ("true", "yes", "1", "on"):
                return True
            if lowered in ("false", "no", "0", "off"):
                return False
            raise ParamError("Expected true or false.")
        if self.type == ParamType.COLUMNS:
            text = text.strip()
            if text.startswith("["):
                return self._json(text)
            return [c.strip() for c in text.split(",") if c.strip()]
        if self.type in (ParamType.CONDITIONS, ParamType.JOINS):
            return self._json(text)
        return text

    @staticmethod
    def _json(text: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParamError(f"Expected JSON ({exc.msg}).") from None
        except RecursionError:
            # Thousands of levels. Node metadata travels with the trainer, alone: it uses no site module (such
            # as mlabsite.jsonlimits) to count them first. Validation refuses whatever shallower nesting parses.
            raise ParamError("Expected JSON (nested too deep).") from None

    # -- metadata for people and clients ----------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The declaration as the API shows it."""
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type.value,
            "group": self.group.value,
            "default": None if self.secret else self.default,
            "required": self.required,
            "min": self.min,
            "max": self.max,
            "exclusive_min": self.exclusive_min,
            "exclusive_max": self.exclusive_max,
            "choices": list(self.choices),
            "help": self.help,
            "pai_name": self.pai_name,
            "serialize": self.serialize,
            "secret": self.secret,
            "engines": list(self.engines),
        }


# The traits of a column that pickers filter on (``Param.accepts``): its kind, and FEW_VALUES for an integer
# column with few distinct values (a category in disguise, e.g. a city tier stored as 1..4).
NUMBER, BOOLEAN, TEXT, DATE, TIMESTAMP = "number", "boolean", "text", "date", "timestamp"
FEW_VALUES = "few_values"


class ColumnAllowList(Protocol):
    """The chosen data source's tables and columns, as validation asks for them.

    Templates know no data sources: the app that does (training) supplies this when it validates a run, and
    the sample node hands it the names and values it was given.
    """

    @property
    def columns(self) -> Mapping[str, Mapping[str, str]]:
        """Table name → {column: type}: what pickers offer."""
        ...

    def column_traits(self, table: str, column: str) -> frozenset[str]:
        """The column's kind (NUMBER, BOOLEAN, TEXT, DATE, TIMESTAMP or another word), plus FEW_VALUES when it is
        an integer column with few distinct values."""
        ...

    def check_sample(self, cleaned: Mapping[str, Any], task: str) -> None:
        """Raise NodeValidationError naming each parameter whose tables, columns or values do not fit."""
        ...


@dataclass
class ValidationContext:
    """What nodes learn about the run while it is validated, in chain order.

    ``allowlist`` is the chosen data source's tables and columns when one is known; without it, names are
    checked for their form only.
    """

    task: Task
    allowlist: ColumnAllowList | None = None
    features: list[str] = field(default_factory=list)
    categorical_features: list[str] = field(default_factory=list)
    label: str | None = None


class NodeType:
    """Base class of node types. Subclasses set the class attributes and may fill in the hooks."""

    key: ClassVar[str]
    kind: ClassVar[NodeKind]
    label: ClassVar[str]
    description: ClassVar[str] = ""
    task: ClassVar[Task | None] = None
    pai_algorithm: ClassVar[str | None] = None  # the PAI algorithm whose parameter names this node uses
    params: ClassVar[tuple[Param, ...]] = ()

    def __init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise TypeError(f"{self.key} declares a parameter twice")
        self.param_map: dict[str, Param] = {p.name: p for p in self.params}

    # -- the template method ------------------------------------------------------------------------
    def resolve(
        self,
        submitted: Mapping[str, Any],
        *,
        overrides: Mapping[str, Any],
        locked: frozenset[str] | set[str],
        context: ValidationContext,
    ) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """defaults → template overrides → submitted values, then validation; returns (cleaned, errors)."""
        errors: dict[str, list[str]] = {}
        for name in submitted:
            if name not in self.param_map:
                errors[name] = [f"Unknown parameter. {self.label} has: {', '.join(self.param_map)}."]

        values: dict[str, Any] = {}
        for param in self.params:
            value = overrides.get(param.name, param.default)
            if param.name in submitted and param.name not in errors:
                offered = submitted[param.name]
                if param.name not in locked:
                    value = offered
                elif not self._same_value(param, offered, value):
                    errors[param.name] = ["Locked by the template author; it cannot be changed."]
            values[param.name] = value

        cleaned: dict[str, Any] = {}
        for param in self.params:
            if param.name in errors:
                continue
            value = values[param.name]
            if value is None or (param.is_list and value == [] and param.required):
                if param.required:
                    errors[param.name] = ["This parameter is required."]
                cleaned[param.name] = [] if param.is_list else None
                continue
            try:
                cleaned[param.name] = param.validate(value)
            except ParamError as exc:
                errors[param.name] = [str(exc)]

        if not errors:
            try:
                self.clean(cleaned, context)
            except NodeValidationError as exc:
                errors.update(exc.errors)
        if not errors:
            self.contribute(cleaned, context)
        return cleaned, errors

    @staticmethod
    def _same_value(param: Param, offered: Any, locked_value: Any) -> bool:
        try:
            return param.validate(offered) == (None if locked_value is None else param.validate(locked_value))
        except ParamError:
            return False

    # -- hooks ------------------------------------------------------------------------------------
    def clean(self, cleaned: dict[str, Any], context: ValidationContext) -> None:
        """Rules that span parameters or need the context. Raise NodeValidationError."""

    def contribute(self, cleaned: dict[str, Any], context: ValidationContext) -> None:
        """Tell later nodes what this node decided (the sample node names the features)."""

    def payload(self, cleaned: Mapping[str, Any]) -> dict[str, Any]:
        """The node's part of the training payload: exclusion flags applied."""
        return {p.name: cleaned.get(p.name) for p in self.params if p.in_payload}

    def local_step(self, cleaned: Mapping[str, Any], context: Any) -> Any:
        """Describe this node to the local trainer by calling the matching method of ``context`` (an
        ``apps.training.trainer.plan.LocalPlan``), e.g. ``context.standardize(...)``; train nodes hand it the
        scikit-learn estimator their parameters configure. The sample node has none: its step is the SQL."""
        raise NotImplementedError(f"{self.key} has no local step")

    # -- metadata ---------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "type": self.key,
            "kind": self.kind.value,
            "label": self.label,
            "description": self.description,
            "task": self.task.value if self.task else None,
            "pai_algorithm": self.pai_algorithm,
            "params": [p.describe() for p in self.params],
        }


class Registry:
    """Node types by key. Adding a node type is one class decorated with ``@registry.register``."""

    def __init__(self) -> None:
        self._types: dict[str, NodeType] = {}

    def register(self, cls: type[NodeType]) -> type[NodeType]:
        if cls.key in self._types:
            raise KeyError(f"node type {cls.key} registered twice")
        self._types[cls.key] = cls()
        return cls

    def get(self, key: str) -> NodeType:
        try:
            return self._types[key]
        except KeyError:
            raise KeyError(f"unknown node type {key!r}") from None

    def __contains__(self, key: object) -> bool:
        return key in self._types

    def __iter__(self):
        return iter(self._types.values())

    def choices(self) -> list[tuple[str, str]]:
        return [(t.key, f"{t.key} — {t.label}") for t in self._types.values()]


registry = Registry()
