"""The ``credit-gateway`` command: run the gateway, migrate its database, manage API keys."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gateway import logs, server
from gateway.clock import SystemClock
from gateway.settings import Settings
from outbox.errors import StoreError
from outbox.ingest import Actor
from schemas.enums import Kind

app = typer.Typer(
    help="credit-gateway: delivers the bureau's credit records to the credit platforms and proves the 公示率.\n\n"
    "Configuration comes from CREDIT_GATEWAY_* environment variables (and .env); see the README.",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(help="Create, list and revoke API keys (stored hashed; shown once).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
deliveries_app = typer.Typer(help="Dead letters: list, requeue, cancel (audited as 'cli').", no_args_is_help=True)
app.add_typer(deliveries_app, name="deliveries")
targets_app = typer.Typer(help="Targets: status, pause, resume, replay (audited as 'cli').", no_args_is_help=True)
app.add_typer(targets_app, name="targets")
CLI_ACTOR = ("cli", "operator")
err = Console(stderr=True)


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def _store(settings: Settings):  # type: ignore[no-untyped-def]
    from gateway.app import make_store

    return make_store(settings)


@contextmanager
def _store_errors() -> Iterator[None]:
    """The store's errors as a one-line message and exit status 1, never a traceback."""
    try:
        yield
    except StoreError as exc:
        raise _fail(exc) from None


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(1)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="address to listen on [default: CREDIT_GATEWAY_HOST or 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on [default: CREDIT_GATEWAY_PORT or 8600]")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="HTTP worker processes [default: CREDIT_GATEWAY_WORKERS or 1]; more than one is for PostgreSQL"
        ),
    ] = None,
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox", help="also run the sandbox platforms under /sandbox and point every target at them (the demo)"
        ),
    ] = False,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs), after migrating the database to the newest schema."""
    import uvicorn

    from gateway.app import build_app

    settings = _settings()
    logs.configure(settings.log_level)
    listen_host, listen_port = host or settings.host, port or settings.port
    if sandbox:
        from gateway.targets import point_at_sandbox

        point_at_sandbox(settings, f"http://{_loopback(listen_host)}:{listen_port}/sandbox")
    store = _store(settings)
    with _store_errors():
        store.migrate()
    options = {
        "host": listen_host,
        "port": listen_port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "http": server.protocol(),  # malformed requests get a problem document, not uvicorn's plain text
    }
    count = workers or settings.workers
    if count > 1 and not sandbox:  # each worker process builds its own app and engine from the same environment
        store.db.dispose()
        uvicorn.run("gateway.app:app_from_environment", factory=True, workers=count, **options)  # type: ignore[arg-type]
        return
    application = build_app(settings, store=store)
    if sandbox:
        from adapters.sandbox.app import create_sandbox

        application.mount("/sandbox", create_sandbox())
    uvicorn.run(application, **options)  # type: ignore[arg-type]


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


@app.command("sandbox")
def sandbox_command(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8700,
    db: Annotated[str, typer.Option(help="SQLite file for what the platforms hold (default: in memory)")] = ":memory:",
    faults: Annotated[
        Path | None, typer.Option(help='JSON file of faults per target: {"national": {...}, ...}')
    ] = None,
    result_delay: Annotated[float, typer.Option(help="seconds before two-stage business results are ready")] = 1.0,
) -> None:
    """Run the simulated target platforms (national, provincial, municipal, portal) of PROTOCOLS.md."""
    import uvicorn

    from adapters.sandbox.app import create_sandbox
    from adapters.sandbox.faults import Faults

    logs.configure("INFO")
    chosen: dict[str, Faults] = {}
    if faults is not None:
        try:
            raw = json.loads(faults.read_text(encoding="utf-8"))
            chosen = {target: Faults.model_validate(value) for target, value in raw.items()}
        except (OSError, ValueError) as exc:
            raise _fail(ValueError(f"--faults {faults}: {exc}")) from None
    application = create_sandbox(db=db, result_delay=result_delay, faults=chosen)
    uvicorn.run(application, host=host, port=port, log_config=None, access_log=False, server_header=False)


@app.command()
def worker() -> None:
    """Run the delivery loop alone, for scale-out beside serve (PostgreSQL); stops cleanly on SIGTERM/SIGINT.

    Set CREDIT_GATEWAY_DELIVERY__IN_SERVE=false on serve to keep delivery out of the API processes.
    """
    import signal
    import threading

    from gateway.targets import build_clients
    from gateway.worker import Worker

    settings = _settings()
    logs.configure(settings.log_level)
    store = _store(settings)
    with _store_errors():
        if not store.schema_is_current():
            raise _fail(ValueError("the database schema is not current: run `credit-gateway migrate` first"))
    clock = SystemClock()
    runner = Worker(settings, store, build_clients(settings, clock), clock)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runner.start()
    stop.wait()
    runner.stop()
    store.db.dispose()


@app.command()
def migrate() -> None:
    """Bring the database (CREDIT_GATEWAY_DATABASE_URL) to the newest schema version."""
    store = _store(_settings())
    with _store_errors():
        revision = store.migrate()
    typer.echo(f"database at schema revision {revision}")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="for a source key, the source system it speaks for (its records' owner)")],
    role: Annotated[str, typer.Option(help="source (posts records) or operator (operator actions, reads all)")],
    kinds: Annotated[
        str | None,
        typer.Option(
            help="comma-separated kinds a source key may send "
            "(licences,penalties,commitments,list-changes); default all"
        ),
    ] = None,
) -> None:
    """Create an API key. The key is printed once, alone on the last line; only its hash is stored."""
    if role not in ("source", "operator"):
        raise _fail(ValueError("--role must be source or operator"))
    chosen: tuple[str, ...] | None = None
    if kinds:
        try:
            chosen = tuple(Kind.from_code(k.strip()).value for k in kinds.split(",") if k.strip())
        except ValueError:
            raise _fail(ValueError(f"--kinds takes {', '.join(k.value for k in Kind)}")) from None
    store = _store(_settings())
    with _store_errors():
        store.migrate()
        key, info = store.create_key(name=name, role=role, kinds=chosen, actor="cli", now=SystemClock().now())
    err.print(
        f"created {info.role} key {info.prefix}… for {info.name!r} "
        f"(kinds: {', '.join(info.kinds) if info.kinds else 'all'}); store it now, it is not shown again:"
    )
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (name, role, kinds, prefix, created, revoked); never the keys themselves."""
    with _store_errors():
        found = _store(_settings()).list_keys()
    table = Table("prefix", "name", "role", "kinds", "created", "revoked")
    for column in table.columns:
        column.overflow = "fold"  # never cut a prefix or a name
    for k in found:
        table.add_row(
            k.prefix,
            k.name,
            k.role,
            ",".join(k.kinds) if k.kinds else "all",
            k.created_at.isoformat(timespec="seconds"),
            k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@keys_app.command("revoke")
def keys_revoke(prefix: Annotated[str, typer.Argument(help="the key's prefix as `keys list` shows it")]) -> None:
    """Revoke a key; requests with it fail within key_cache_seconds."""
    with _store_errors():
        count = _store(_settings()).revoke_key(prefix=prefix, actor="cli", now=SystemClock().now())
    if not count:
        raise _fail(ValueError(f"no active key with prefix {prefix!r}"))
    typer.echo(f"revoked {count} key(s)")


def _actor() -> Actor:
    return Actor(*CLI_ACTOR)


def _known_target(settings: Settings, target: str) -> str:
    names = [name for name, _ in settings.targets.items()]
    if target not in names:
        raise _fail(ValueError(f"{target!r} is not a target; choose one of {', '.join(names)}"))
    return target


def _delivery_cells(d: dict[str, Any]) -> list[str]:
    """The columns every delivery listing starts with: which delivery, where, of what, whose."""
    return [str(d["id"]), d["target"], d["kind"], d["source_id"], d["department"]]


@deliveries_app.command("dead")
def deliveries_dead(
    target: Annotated[str | None, typer.Option(help="only this target")] = None,
    kind: Annotated[str | None, typer.Option(help="only this kind (licences, penalties, ...)")] = None,
    department: Annotated[str | None, typer.Option(help="only this department (科室)")] = None,
    code: Annotated[str | None, typer.Option(help="only this error code of the target")] = None,
    limit: Annotated[int, typer.Option(help="at most this many rows")] = 100,
) -> None:
    """List dead letters: deliveries that failed for good, with the target's own code and message."""
    with _store_errors():
        total, items = _store(_settings()).dead_letters(
            target=target, kind=kind, department=department, code=code, limit=limit
        )
    table = Table("id", "target", "kind", "source_id", "department", "v", "attempts", "code", "message")
    for column in table.columns:
        column.overflow = "fold"
    for d in items:
        table.add_row(
            *_delivery_cells(d),
            str(d["version"]),
            str(d["attempts"]),
            d["code"] or "",
            d["message"] or "",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    err.print(f"{len(items)} of {total} dead letters")


@deliveries_app.command("requeue")
def deliveries_requeue(ids: Annotated[list[int], typer.Argument(help="delivery ids from `deliveries dead`")]) -> None:
    """Send dead deliveries again, with a fresh retry budget."""
    with _store_errors():
        count = _store(_settings()).requeue(ids=ids, actor=_actor(), now=SystemClock().now())
    typer.echo(f"requeued {count} of {len(ids)}")


@deliveries_app.command("cancel")
def deliveries_cancel(
    ids: Annotated[list[int], typer.Argument(help="delivery ids")],
    reason: Annotated[str | None, typer.Option(help="why (kept in the audit log)")] = None,
) -> None:
    """Give up on deliveries (dead, pending or waiting to retry)."""
    with _store_errors():
        count = _store(_settings()).cancel(ids=ids, actor=_actor(), now=SystemClock().now(), reason=reason)
    typer.echo(f"cancelled {count} of {len(ids)}")


@targets_app.command("status")
def targets_status() -> None:
    """Deliveries by state for each target, and which are paused."""
    settings = _settings()
    with _store_errors():
        store = _store(settings)
        counts, paused = store.delivery_counts(), store.paused_targets()
    table = Table("target", "enabled", "paused", "pending", "in flight", "awaiting", "retry", "published", "dead")
    for name, t in settings.targets.items():
        c = counts.get(name, {})
        table.add_row(
            name,
            "yes" if t.enabled else "no",
            "yes" if name in paused else "",
            *(str(c.get(s, 0)) for s in ("pending", "in_flight", "awaiting_result", "retry_wait", "published", "dead")),
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@targets_app.command("pause")
def targets_pause(
    target: Annotated[str, typer.Argument(help="national, provincial, municipal or portal")],
    reason: Annotated[str | None, typer.Option(help="why (kept in the audit log)")] = None,
) -> None:
    """Stop pushing to a target; every worker obeys within a second."""
    _set_paused(target, True, reason)


@targets_app.command("resume")
def targets_resume(target: Annotated[str, typer.Argument(help="the paused target")]) -> None:
    """Push to a paused target again."""
    _set_paused(target, False, None)


def _set_paused(target: str, paused: bool, reason: str | None) -> None:
    settings = _settings()
    with _store_errors():
        _store(settings).set_paused(
            target=_known_target(settings, target),
            paused=paused,
            reason=reason,
            actor=_actor(),
            now=SystemClock().now(),
        )
    typer.echo(f"{target} {'paused' if paused else 'resumed'}")


@targets_app.command("replay")
def targets_replay(
    target: Annotated[str, typer.Argument(help="the target to send again")],
    since: Annotated[str, typer.Option(help="YYYY-MM-DD: what it accepted on or after this day")],
    dry_run: Annotated[bool, typer.Option("--dry-run/--send", help="list only (default), or really send")] = True,
) -> None:
    """Re-send to a target what it accepted since a day (after it lost data). Lists first unless --send."""
    import datetime as dt

    from gateway.clock import SHANGHAI

    settings = _settings()
    try:
        day = dt.date.fromisoformat(since)
    except ValueError:
        raise _fail(ValueError(f"--since takes YYYY-MM-DD, got {since!r}")) from None
    with _store_errors():
        plan = _store(settings).replay(
            target=_known_target(settings, target),
            since=dt.datetime.combine(day, dt.time(), SHANGHAI),
            dry_run=dry_run,
            actor=_actor(),
            now=SystemClock().now(),
        )
    for p in plan:
        typer.echo(f"{p['kind']}\t{p['source_system']}\t{p['source_id']}\tv{p['version']}\t{p['key']}")
    err.print(f"{len(plan)} record(s) {'would be' if dry_run else 'are'} sent again to {target}")


def _housekeeping(settings: Settings):  # type: ignore[no-untyped-def]
    from gateway import deadlines
    from gateway.app import make_store
    from gateway.housekeeping import Housekeeping
    from gateway.targets import build_clients

    clock = SystemClock()
    rules = deadlines.from_settings(settings.deadlines)
    return Housekeeping(settings, make_store(settings, rules), clock, rules, lambda: build_clients(settings, clock))


@app.command()
def report(
    period: Annotated[str, typer.Option(help="2026-10 (month), 2026-Q4 (quarter), 2026 (year) or 2026-10-05 (day)")],
    format: Annotated[str, typer.Option("--format", "-f", help="xlsx, csv, json or html")] = "xlsx",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="the file to write (default: a name from the period)")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD: judge standings at the end of this day (default today)")
    ] = None,
    keep: Annotated[bool, typer.Option("--keep/--no-keep", help="also store the run, listed by the API")] = True,
) -> None:
    """Build a 公示率 report for a period: summary, by department, overdue, late and yearly quotas."""
    import datetime as dt

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from gateway.reports.build import STEPS
    from gateway.reports.periods import PeriodError, parse_period
    from gateway.reports.render import FORMATS, render

    if format not in FORMATS:
        raise _fail(ValueError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}"))
    try:
        chosen = parse_period(period)
        day = dt.date.fromisoformat(as_of) if as_of else None
    except (PeriodError, ValueError) as exc:
        raise _fail(exc) from None
    target = output or Path(f"gongshilv-{chosen.label}.{format}")
    settings = _settings()
    housekeeping = _housekeeping(settings)
    with (
        _store_errors(),
        Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err) as bar,
    ):
        task = bar.add_task(f"公示率 {chosen.label}", total=len(STEPS) + 1)

        def step(name: str) -> None:
            bar.update(task, advance=1, description=f"公示率 {chosen.label}: {name}")

        if keep:
            report_id, data = housekeeping.create_report(chosen, actor=_actor(), as_of=day, progress=step)
        else:
            report_id, data = None, housekeeping.compute_report(chosen, as_of=day, progress=step)
        target.write_bytes(render(data, format))
        bar.update(task, advance=1, description=f"公示率 {chosen.label}: written")
    total = data["summary"]["total"]
    rate = "no rate (nothing counted)" if total["rate"] is None else f"{total['rate'] * 100:.2f}%"
    err.print(
        f"{chosen.label}: 公示率 {rate}; on time {total['on_time']}, late {total['late']}, overdue {total['overdue']}, "
        f"pending {total['pending']}" + (f"; stored as report {report_id}" if report_id else "")
    )
    typer.echo(str(target))


@deliveries_app.command("at-risk")
def deliveries_at_risk(
    workdays: Annotated[
        int | None, typer.Option(help="due within this many working days (default from settings)")
    ] = None,
    limit: Annotated[int, typer.Option(help="at most this many rows")] = 100,
) -> None:
    """Unpublished deliveries close to (or past) their deadline, earliest due first."""
    from gateway.workdays import OutsideCalendar

    with _store_errors():
        try:
            view = _housekeeping(_settings()).at_risk(workdays=workdays, limit=limit)
        except OutsideCalendar as exc:
            raise _fail(exc) from None
    table = Table("id", "target", "kind", "source_id", "department", "state", "due", "left", "code")
    for d in view["items"]:
        left = "overdue" if d["overdue"] else f"{d['workdays_left']} wd"
        table.add_row(
            *_delivery_cells(d),
            d["state"],
            d["due_date"].isoformat(),
            left,
            d["last_code"] or "",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    err.print(f"{len(view['items'])} at risk (due by {view['horizon'].isoformat()})")


@targets_app.command("reconcile")
def targets_reconcile(target: Annotated[str, typer.Argument(help="the target to compare with")]) -> None:
    """Compare what a target holds with what we published; re-queue what is missing or different."""
    settings = _settings()
    with _store_errors():
        try:
            run = _housekeeping(settings).reconcile(_known_target(settings, target), actor=_actor())
        except KeyError:
            raise _fail(ValueError(f"{target} is not enabled")) from None
    if run["status"] != "done":
        raise _fail(RuntimeError(f"reconciliation of {target} failed: {(run['findings'] or {}).get('error')}"))
    for finding in ("missing", "mismatched", "extra"):
        for item in run["findings"][finding]:
            typer.echo(f"{finding}\t{item['record_id']}\t{item['kind']}\t{item.get('source_id', '')}")
    err.print(
        f"{target}: held {run['held']}, matched {run['matched']}, missing {run['missing']}, "
        f"mismatched {run['mismatched']}, extra {run['extra']}; re-queued {run['requeued']} (run {run['id']})"
    )


@app.command()
def expire() -> None:
    """Withdraw from every target the penalties and list entries whose publication period has ended."""
    with _store_errors():
        housekeeping = _housekeeping(_settings())
        filled = housekeeping.refresh_due_dates()
        done = housekeeping.expire(actor=_actor())
    for item in done:
        typer.echo(f"{item['kind']}\t{item['source_id']}\t{item['note']}")
    err.print(f"{len(done)} record(s) withdrawn; {filled} due date(s) filled in")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
