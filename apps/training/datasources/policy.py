"""Where a data source may point, decided by the server's settings and never by the source itself.

- A DuckDB file must lie under one of ``MLAB_DUCKDB_ROOTS`` (symlinks and ``..`` resolved first).
- A MySQL host must match ``MLAB_DATASOURCE_HOSTS``: exact names, ``*.`` patterns, IP addresses, CIDR ranges.
  A name is matched as written and never resolved here, so DNS cannot move it into or out of a range.
- A MySQL source's TLS files (``ssl_ca``, ``ssl_cert``, ``ssl_key``) must lie under ``MLAB_DATASOURCE_TLS_PATHS``.
- A password comes only from an environment variable whose name starts with ``MLAB_DS_``, so that a source
  cannot name ``DJANGO_SECRET_KEY`` or a cloud key and have it sent to a server.

Each check runs when a source is saved (the model's ``clean``) and again when it is opened (the back ends), so
a row saved before a rule existed, or written around the model, is refused too. A refusal names the setting
or option to change and says nothing about what lies behind it (whether a file exists, a port is open).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from django.conf import settings

from .errors import DataSourceUnavailable
from .options import options_problems

PASSWORD_ENV_PREFIX = "MLAB_DS_"
DEFAULT_MYSQL_HOST = "127.0.0.1"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A host name: dot-separated labels of letters, digits and inner hyphens; its last label starts with a letter,
# so that the resolver never reads it as a number ("2130706433", "127.1", "0x7f.1" all mean 127.0.0.1).
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")


class SourceRefused(DataSourceUnavailable):
    """A source's settings point where the server's settings do not allow. ``option`` names the field to fix
    (an options key, or ``password_env``)."""

    def __init__(self, message: str, *, option: str):
        super().__init__(message)
        self.option = option


def _resolved(path: str | Path) -> Path:
    # strict=False: a file that does not exist yet still resolves (its existing parents' symlinks included).
    return Path(path).expanduser().resolve(strict=False)


def _under(path: Path, roots) -> bool:
    for root in roots:
        root = _resolved(root)
        if path == root or path.is_relative_to(root):
            return True
    return False


def duckdb_path_allowed(path, *, source: str = "") -> Path:
    """The resolved path of a DuckDB file a source may open; raises SourceRefused (naming the ``path`` option and
    MLAB_DUCKDB_ROOTS) when it lies outside every root. Open the returned path, not the one given."""
    if not isinstance(path, str | Path) or not str(path).strip() or "\0" in str(path):
        raise SourceRefused(_named(source, "the path option must be the path of a DuckDB file."), option="path")
    resolved = _resolved(path)
    if not _under(resolved, settings.MLAB_DUCKDB_ROOTS):
        raise SourceRefused(
            _named(
                source,
                f"the DuckDB file {path} is outside the directories the server allows (MLAB_DUCKDB_ROOTS); "
                "put it under one of them, or have an administrator add its directory to MLAB_DUCKDB_ROOTS.",
            ),
            option="path",
        )
    return resolved


def tls_path_allowed(path, *, option: str, source: str = "") -> Path:
    """The resolved path of a TLS file (CA, client certificate or key); raises SourceRefused naming ``option``
    and MLAB_DATASOURCE_TLS_PATHS when it is neither one of its files nor under one of its directories."""
    if not isinstance(path, str | Path) or not str(path).strip() or "\0" in str(path):
        raise SourceRefused(_named(source, f"the {option} option must be the path of a file."), option=option)
    resolved = _resolved(path)
    if not _under(resolved, settings.MLAB_DATASOURCE_TLS_PATHS):
        raise SourceRefused(
            _named(
                source,
                f"the {option} file {path} is outside the TLS files and directories the server allows "
                "(MLAB_DATASOURCE_TLS_PATHS).",
            ),
            option=option,
        )
    return resolved


def host_allowed(host, *, source: str = "") -> str:
    """The host, normalized (lower case; an IP address in its canonical form), when it matches
    MLAB_DATASOURCE_HOSTS; raises SourceRefused naming the ``host`` option otherwise. Checked before any
    connection, so a refused host is never contacted."""
    name = host.strip().lower().rstrip(".") if isinstance(host, str) else ""
    address = _address(name)
    if address is None and not _HOST_NAME.match(name):
        raise SourceRefused(_named(source, f"the host {host!r} is not a host name or an IP address."), option="host")
    for entry in settings.MLAB_DATASOURCE_HOSTS:
        if _matches(name, address, str(entry).strip().lower()):
            return str(address) if address is not None else name
    raise SourceRefused(
        _named(
            source,
            f"the host {host!r} is not one the server allows data sources to connect to (MLAB_DATASOURCE_HOSTS).",
        ),
        option="host",
    )


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def _matches(name: str, address, entry: str) -> bool:
    if not entry:
        return False
    if address is not None:
        try:
            return address in ipaddress.ip_network(entry.removeprefix("[").removesuffix("]"), strict=False)
        except ValueError:
            return False  # a name pattern never matches an address
    if entry.startswith("*."):
        return name.endswith(entry[1:]) and len(name) > len(entry) - 1
    return name == entry.rstrip(".")


def password_env_allowed(name: str, *, source: str = "") -> str:
    """``name`` when a password may be read from it (an MLAB_DS_ variable); raises SourceRefused otherwise."""
    if not _ENV_NAME.match(name or "") or not name.startswith(PASSWORD_ENV_PREFIX) or name == PASSWORD_ENV_PREFIX:
        raise SourceRefused(
            _named(
                source,
                f"the password variable (password_env) must be named {PASSWORD_ENV_PREFIX}… (e.g. "
                f"{PASSWORD_ENV_PREFIX}WAREHOUSE_PASSWORD): no other environment variable is ever sent to a data source.",
            ),
            option="password_env",
        )
    return name


def _named(source: str, message: str) -> str:
    return f"Data source {source!r}: {message}" if source else message[0].upper() + message[1:]


def datasource_problems(*, kind: str, options, password_env: str = "") -> dict[str, list[str]]:
    """Everything wrong with a source's settings, by field (``options``, ``password_env``); {} when nothing is.

    The shape of the options first (known keys and types, no secret at any depth), then where they point.
    """
    problems: dict[str, list[str]] = {}
    shape = options_problems(kind, options)
    if shape:
        problems["options"] = shape
    else:
        try:
            destination_check(kind, options)
        except SourceRefused as refused:
            problems["options"] = [str(refused)]
    if password_env:
        try:
            password_env_allowed(password_env)
        except SourceRefused as refused:
            problems["password_env"] = [str(refused)]
    return problems


def destination_check(kind: str, options) -> None:
    """Raise SourceRefused when a source of ``kind`` with these options points where the settings do not allow."""
    if kind == "duckdb":
        duckdb_path_allowed(options.get("path"))
    elif kind == "mysql":
        host_allowed(options.get("host", DEFAULT_MYSQL_HOST))
        for option in ("ssl_ca", "ssl_cert", "ssl_key"):
            if option in options:
                tls_path_allowed(options[option], option=option)
