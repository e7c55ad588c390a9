"""The options a data source of each kind takes: known keys, their types, and no secret at any depth.

``options_problems(kind, options)`` lists what is wrong, each message naming the key path
(``tables.users.api_token``); the model's ``clean`` turns the list into a field error on ``options``, so
every door (admin, services, commands) refuses the same things. The keys are the ones the back ends read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from apps.templates.nodes.base import IDENTIFIER_RE

# Words in an option name that say its value would be a secret. Secrets come from the environment
# (password_env), never from the database: refused at any depth, inside lists and nested objects too.
SECRET_OPTION_WORDS = ("password", "passwd", "secret", "token", "access_key", "accesskey", "credential")

SSL_MODES = ("disabled", "preferred", "required", "verify_ca", "verify_identity")
# A declared column type (Hive / MaxCompute spelling): string, bigint, decimal(10,2), array<string>, …
_COLUMN_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\s*[(<][A-Za-z0-9_ ,<>:()]*[)>])?$")


@dataclass(frozen=True)
class Option:
    """One known key: what its value must be (``check`` returns a problem, or None when the value is fine)."""

    check: Callable[[Any], str | None]
    required: bool = False


def _text(value) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "expected a non-empty string"
    if "\0" in value or "\n" in value or len(value) > 1024:
        return "expected a single line of at most 1024 characters"
    return None


def _optional_text(value) -> str | None:
    return None if value == "" else _text(value)


def _integer(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"expected an integer from {low} to {high}"
        return None

    return check


def _identifier(value) -> str | None:
    if not isinstance(value, str) or not IDENTIFIER_RE.match(value):
        return "expected a name of letters, digits and underscores"
    return None


def _ssl_mode(value) -> str | None:
    return None if value in SSL_MODES else f"expected one of {', '.join(SSL_MODES)}"


def _tables(value) -> str | None:
    """{table: {column: type}}, names usable as identifiers, at least one column each."""
    if not isinstance(value, dict) or not value:
        return "expected an object {table: {column: type}}"
    for table, columns in value.items():
        if not IDENTIFIER_RE.match(str(table)):
            return f"table {table!r} is not a name of letters, digits and underscores"
        if not isinstance(columns, dict) or not columns:
            return f"table {table!r}: expected an object {{column: type}} with at least one column"
        for column, type_name in columns.items():
            if not IDENTIFIER_RE.match(str(column)):
                return f"{table}.{column}: not a name of letters, digits and underscores"
            if not isinstance(type_name, str) or len(type_name) > 64 or not _COLUMN_TYPE.match(type_name):
                return f"{table}.{column}: expected a column type such as string, bigint or decimal(10,2)"
    return None


OPTIONS: dict[str, dict[str, Option]] = {
    "duckdb": {
        "path": Option(_text, required=True),
        "schema": Option(_identifier),
        "threads": Option(_integer(1, 64)),
    },
    "mysql": {
        "host": Option(_text),
        "port": Option(_integer(1, 65535)),
        "user": Option(_optional_text),
        "database": Option(_text, required=True),
        "connect_timeout": Option(_integer(1, 300)),
        "ssl_mode": Option(_ssl_mode),
        "ssl_ca": Option(_text),
        "ssl_cert": Option(_text),
        "ssl_key": Option(_text),
    },
    "maxcompute": {"project": Option(_text), "tables": Option(_tables)},
    "hive": {"project": Option(_text), "database": Option(_identifier), "tables": Option(_tables)},
}


def secret_like_keys(value, path: str = "") -> Iterator[str]:
    """Key paths (dotted; list items as [i]) whose name says they hold a secret, at any depth."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if any(word in str(key).lower().replace("-", "_") for word in SECRET_OPTION_WORDS):
                yield here
            yield from secret_like_keys(item, here)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from secret_like_keys(item, f"{path}[{i}]")


def options_problems(kind: str, options) -> list[str]:
    """What is wrong with ``options`` for a source of ``kind``, each problem naming its key; [] when nothing is."""
    if not isinstance(options, dict):
        return ["Expected an object of connection options."]
    secrets = list(secret_like_keys(options))
    if secrets:
        return [
            f"Secrets do not belong in options ({', '.join(secrets)}): put the password in an environment variable "
            "and name it in password_env instead."
        ]
    known = OPTIONS.get(kind)
    if known is None:
        return []  # an unknown kind is the kind field's error
    problems = []
    unknown = [str(k) for k in options if k not in known]
    if unknown:
        problems.append(
            f"Unknown option{'s' if len(unknown) > 1 else ''} for a {kind} source: {', '.join(unknown)} "
            f"(known: {', '.join(known)})."
        )
    for key, option in known.items():
        if key not in options:
            if option.required:
                problems.append(f"A {kind} source needs the option {key}.")
            continue
        problem = option.check(options[key])
        if problem:
            problems.append(f"{key}: {problem}.")
    if kind == "mysql":
        problems.extend(_tls_problems(options))
    return problems


def _tls_problems(options: dict) -> list[str]:
    files = [k for k in ("ssl_ca", "ssl_cert", "ssl_key") if k in options]
    problems = []
    if options.get("ssl_mode") == "disabled" and files:
        problems.append(f"ssl_mode is disabled, yet {', '.join(files)} {'is' if len(files) == 1 else 'are'} set.")
    if ("ssl_cert" in options) != ("ssl_key" in options):
        problems.append("ssl_cert and ssl_key go together (the client certificate and its key).")
    return problems
