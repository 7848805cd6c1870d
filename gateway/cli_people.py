"""``credit-gateway users`` and ``credit-gateway audit``, and who the CLI names in the audit log.

Each command only translates: arguments in, a call to the services (``gateway.compose``), a line or a table
out, one line and a non-zero exit for a refusal. The CLI's actor is ``--actor NAME`` given before the command
(``credit-gateway --actor 李四 deliveries requeue 7``), or else the OS user, with the role ``cli``.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from gateway.services.actors import Actor
from gateway.services.errors import StoreError
from schemas.calendar import ZONE

if TYPE_CHECKING:
    from gateway.people import People
    from gateway.services.bundle import Services

users_app = typer.Typer(
    help="People who sign in to the console: create, list, disable, reset-password.", no_args_is_help=True
)
audit_app = typer.Typer(help="The audit log: list entries, verify the hash chain.", no_args_is_help=True)
err = Console(stderr=True)
_chosen_actor: list[str] = []  # set by the root command's --actor option


def set_actor(name: str | None) -> None:
    _chosen_actor[:] = [name] if name else []


def cli_actor() -> Actor:
    """Who runs this command, for the audit log: --actor, else the OS user."""
    if _chosen_actor:
        return Actor(_chosen_actor[0][:64], "cli")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry and no USER variable
        user = "cli"
    return Actor(user[:64], "cli")


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


@contextmanager
def _refusals() -> Iterator[None]:
    """The service's refusals and the store's errors as one line and exit status 1, never a traceback."""
    from gateway.people import PeopleError

    try:
        yield
    except (PeopleError, StoreError) as exc:
        raise _fail(str(exc)) from None


def _services() -> Services:
    """The application layer for a command that needs a migrated database (it never creates one)."""
    from gateway import cli_base

    return cli_base.services()


def _people() -> People:
    return _services().people()


def _read_password(password_stdin: bool) -> str:
    if not password_stdin:
        raise _fail("give the password on standard input with --password-stdin (it is never an argument)", 2)
    if sys.stdin.isatty():
        err.print("password (then Enter): ", end="")
    line = sys.stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")


def demo_admin(services: Services) -> None:
    """For ``serve --sandbox``: on the first start (nobody exists yet), make an admin and print the password once,
    on the terminal only (never to the log)."""
    with _refusals():
        made = services.people().ensure_demo_admin()
    if made is not None:
        name, password = made
        err.print(
            f"demo console admin created: name [bold]{name}[/bold], password [bold]{password}[/bold] "
            "(shown this once; `credit-gateway users reset-password admin --password-stdin` sets another)",
            highlight=False,
            soft_wrap=True,  # a terminal wraps it where it must; rich would cut the line at its own width
        )


PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="read the password from standard input")]


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Option(help="the sign-in name")],
    role: Annotated[str, typer.Option(help="viewer (reads), operator (acts) or admin (also people and keys)")],
    department: Annotated[str | None, typer.Option(help="the person's department (科室)")] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Create a person; the password (at least 12 characters) is read from standard input."""
    people = _people()
    password = _read_password(password_stdin)
    with _refusals():
        made = people.create(name=name, role=role, password=password, department=department, actor=cli_actor())
    typer.echo(f"created {made.role.value} {made.name}")


@users_app.command("list")
def users_list() -> None:
    """List people: name, role, department, created, disabled."""
    with _refusals():
        everyone = _people().everyone()
    table = Table("name", "role", "department", "created", "disabled")
    for column in table.columns:
        column.overflow = "fold"
    for p in everyone:
        disabled = p.disabled_at.isoformat(timespec="seconds") if p.disabled_at else ""
        table.add_row(p.name, p.role.value, p.department or "", p.created_at.isoformat(timespec="seconds"), disabled)
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument(help="the person's sign-in name")]) -> None:
    """Disable a person: they can no longer sign in, and their open sessions end now."""
    with _refusals():
        person, ended = _people().disable(name, actor=cli_actor())
    typer.echo(f"disabled {person.name}; {ended} session(s) ended")


@users_app.command("reset-password")
def users_reset_password(
    name: Annotated[str, typer.Argument(help="the person's sign-in name")], password_stdin: PasswordStdin = False
) -> None:
    """Set a new password (from standard input); the person's open sessions end."""
    people = _people()
    password = _read_password(password_stdin)
    with _refusals():
        ended = people.reset_password(name, password, actor=cli_actor())
    typer.echo(f"password of {name} reset; {ended} session(s) ended")


def _moment(value: str | None, option: str, *, end: bool) -> dt.datetime | None:
    """YYYY-MM-DD (a whole day in Asia/Shanghai: --until includes it) or an ISO time (Asia/Shanghai if no offset)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value) + dt.timedelta(days=1 if end else 0)
            return dt.datetime.combine(day, dt.time(), ZONE)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"{option}: not a date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM): {value!r}", 2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZONE)


@audit_app.command("list")
def audit_list(
    by: Annotated[
        str | None, typer.Option("--by", help="only entries by this actor (a person, key or OS user)")
    ] = None,
    action: Annotated[
        str | None, typer.Option(help="only this action (delivery.requeue), or a family ending in '.' (delivery.)")
    ] = None,
    since: Annotated[str | None, typer.Option(help="from this day or time (Asia/Shanghai)")] = None,
    until: Annotated[str | None, typer.Option(help="up to this day (included) or time (excluded)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100000, help="at most this many, newest first")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """List audit entries, newest first: when, who, what, on which record, details."""
    start, stop = _moment(since, "--since", end=False), _moment(until, "--until", end=True)
    with _refusals():
        found = _services().audit.entries(actor=by, action=action, since=start, until=stop, limit=limit)
    if as_json:
        for entry in found:
            typer.echo(json.dumps({**entry, "at": entry["at"].isoformat()}, ensure_ascii=False))
        return
    table = Table("seq", "at (Asia/Shanghai)", "actor", "role", "action", "subject", "detail")
    for column in table.columns:
        column.overflow = "fold"
    for e in found:
        subject = " ".join(str(part) for part in (e["kind"], e["source_id"]) if part)  # an import names a kind only
        table.add_row(
            str(e["seq"] if e["seq"] is not None else "—"),
            e["at"].astimezone(ZONE).isoformat(timespec="seconds"),
            e["actor"],
            e["role"],
            e["action"],
            subject,
            json.dumps(e["detail"], ensure_ascii=False) if e["detail"] is not None else "",
        )
    Console(width=None if sys.stdout.isatty() else 240).print(table)


@audit_app.command("verify")
def audit_verify(
    limit: Annotated[int, typer.Option(min=1, help="report at most this many breaks")] = 20,
) -> None:
    """Walk the hash chain; name the first entry altered, removed or inserted (exit 1), or print the head."""
    with _refusals():
        verdict = _services().audit.verify(limit=limit)
    if verdict.intact:
        typer.echo(
            f"audit chain intact: {verdict.entries} entries; head seq {verdict.head_seq} sha256 {verdict.head_hash}"
        )
        return
    for finding in verdict.findings:
        typer.echo(f"{finding.problem}\t{finding.message}")
    first = verdict.findings[0]
    raise _fail(f"audit chain broken: {first.message}")
