"""Where the project's database, ``.env`` and running demo are, whichever folder of the project a command runs in.

The rule (README, "How the CLI finds the database"): the project folder is the nearest folder, from the current one
upward, that holds ``credit-gateway.db`` or a ``pyproject.toml`` naming the ``credit-gateway`` project; outside any
project it is the current folder. Its ``.env`` is read, and when CREDIT_GATEWAY_DATABASE_URL is set nowhere the
database is its ``credit-gateway.db``. Without the rule a command run in ``docs/`` would make a second, empty
database there.

``serve --sandbox`` (the demo) writes ``<database file>.sandbox.json`` beside its SQLite database while it runs:
the sandbox's base URL and the server's process id. Other commands on that database point every target whose base
URL is not configured at that sandbox (``targets reconcile national`` then reaches the demo's platforms, not the
standalone sandbox's port); a marker whose process has gone is ignored.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DATABASE_FILE = "credit-gateway.db"
PROJECT_NAME = "credit-gateway"


def _declares_project(pyproject: Path) -> bool:
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(data.get("project", {}).get("name") == PROJECT_NAME)


def root(start: Path) -> Path:
    """The project folder seen from ``start`` (the rule above)."""
    here = start.resolve()
    for folder in (here, *here.parents):
        if (folder / DATABASE_FILE).is_file() or _declares_project(folder / "pyproject.toml"):
            return folder
    return here


def default_database_url(folder: Path) -> str:
    return f"sqlite:///{folder / DATABASE_FILE}"


def shown(url: str) -> str:
    """The URL for a message: any password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or SQLite in memory)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def _marker(url: str) -> Path | None:
    file = sqlite_file(url)
    return None if file is None else file.with_name(file.name + ".sandbox.json")


@contextmanager
def announce_sandbox(url: str, base_url: str) -> Iterator[None]:
    """While the demo runs, say beside its database where its sandbox is (removed when it stops)."""
    marker = _marker(url)
    if marker is None:
        yield
        return
    temporary = marker.with_name(marker.name + ".tmp")
    temporary.write_text(json.dumps({"base_url": base_url, "pid": os.getpid()}), encoding="utf-8")
    temporary.replace(marker)
    try:
        yield
    finally:
        with suppress(OSError):
            marker.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def demo_sandbox(url: str) -> str | None:
    """The base URL of the sandbox a running ``serve --sandbox`` on this database serves, if one does."""
    marker = _marker(url)
    if marker is None:
        return None
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        base, pid = str(data["base_url"]), int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return base if _alive(pid) else None
