"""What every CLI command starts from: the settings as seen from the project folder, and services on a database
that already exists.

Only ``serve`` and ``migrate`` may create a database (``create=True``); any other command run where no database is
(another folder, a typo in the URL) says which database it looked for in one line and exits 1, instead of
quietly making and migrating an empty one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from gateway import project
from gateway.services.errors import StoreError
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.services.bundle import Services

err = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """One line on standard error; the caller raises the returned exit."""
    err.print(f"[red]error:[/red] {escape(' '.join(message.split()))}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _one_line(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"])
        parts.append(f"{where}: {e['msg']}" if where else e["msg"])
    return "; ".join(parts)


def settings(*, demo: bool = True) -> Settings:
    """The configuration from the environment and the project folder's ``.env``; the default database is the
    project folder's. With ``demo`` (every command but ``serve`` and ``sandbox``), targets without a configured
    base URL point at a running ``serve --sandbox`` on the same database (gateway/project.py)."""
    folder = project.root(Path.cwd())
    try:
        chosen = Settings(_env_file=folder / ".env")
    except ValidationError as exc:
        raise fail(f"configuration error: {_one_line(exc)}", 2) from None
    except ValueError as exc:
        raise fail(f"configuration error: {exc}", 2) from None
    if "database_url" not in chosen.model_fields_set:
        chosen.database_url = project.default_database_url(folder)
    if demo:
        base = project.demo_sandbox(chosen.database_url)
        if base is not None:
            for name, target in chosen.targets.items():
                if "base_url" not in target.model_fields_set:
                    target.base_url = f"{base}/{name}"
    return chosen


def require_database(chosen: Settings) -> None:
    """Exit with one line naming the database unless it exists (SQLite: before connecting would create the file)."""
    file = project.sqlite_file(chosen.database_url)
    if file is not None and not file.is_file():
        raise fail(
            f"no credit-gateway database at {project.shown(chosen.database_url)}: run `credit-gateway migrate` "
            "(or `serve`) in the project folder first, or set CREDIT_GATEWAY_DATABASE_URL"
        )


def services(chosen: Settings | None = None, *, create: bool = False) -> Services:
    """The application layer from the one composition root; unless ``create``, on a database that exists and is
    migrated (checked once here, so each command's own errors stay about its own work)."""
    from gateway.compose import build_services

    chosen = chosen or settings()
    if create:
        return build_services(chosen)
    require_database(chosen)
    built = build_services(chosen)
    where = project.shown(chosen.database_url)
    try:
        current = built.schema_is_current()
    except StoreError as exc:
        built.dispose()
        raise fail(f"{exc} (database {where})") from None
    if not current:
        built.dispose()
        raise fail(f"the database at {where} is not at the newest schema: run `credit-gateway migrate`")
    return built
