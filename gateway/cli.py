"""The ``credit-gateway`` command: run the gateway, migrate its database, manage API keys."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gateway import cli_base, cli_people, logs, memory, project, server, shutdown
from gateway.services.actors import Actor
from gateway.services.errors import StoreError, UnknownTarget
from gateway.settings import Settings
from schemas.enums import RECORD_KINDS, Kind
from schemas.periods import EARLIEST_DAY, LATEST_DAY

if TYPE_CHECKING:
    from gateway.services.bundle import Services

app = typer.Typer(
    help="credit-gateway: delivers the bureau's credit records to the credit platforms and proves the 公示率.\n\n"
    "Configuration comes from CREDIT_GATEWAY_* environment variables (and .env); see the README.",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(help="Create, list and revoke API keys (stored hashed; shown once).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
deliveries_app = typer.Typer(
    help="Dead letters: list, requeue, cancel (audited under --actor or the OS user).", no_args_is_help=True
)
app.add_typer(deliveries_app, name="deliveries")
targets_app = typer.Typer(
    help="Targets: status, pause, resume, replay (audited under --actor or the OS user).", no_args_is_help=True
)
app.add_typer(targets_app, name="targets")
app.add_typer(cli_people.users_app, name="users")
app.add_typer(cli_people.audit_app, name="audit")
err = cli_base.err


def _settings(*, demo: bool = True) -> Settings:
    return cli_base.settings(demo=demo)


def _services(settings: Settings | None = None) -> Services:
    """The application layer from the one composition root, on a database that exists and is migrated."""
    return cli_base.services(settings)


@contextmanager
def _store_errors() -> Iterator[None]:
    """The store's errors as a one-line message and exit status 1, never a traceback."""
    try:
        yield
    except StoreError as exc:
        raise _fail(exc) from None


def _fail(exc: Exception) -> typer.Exit:
    return cli_base.fail(str(exc))


@app.callback()
def _root(
    actor: Annotated[
        str | None,
        typer.Option("--actor", help="who the audit log names for this command [default: the OS user]"),
    ] = None,
) -> None:
    cli_people.set_actor(actor)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="address to listen on [default: CREDIT_GATEWAY_HOST or 127.0.0.1]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="port to listen on [default: CREDIT_GATEWAY_PORT or 8600]")
    ] = None,
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
    from contextlib import nullcontext

    import uvicorn

    from gateway.app import build_app

    settings = _settings(demo=False)
    logs.configure(settings.log_level, settings.log_format)
    listen_host, listen_port = host or settings.host, port or settings.port
    sandbox_base = f"http://{_loopback(listen_host)}:{listen_port}/sandbox"
    if sandbox:
        from gateway.targets import point_at_sandbox

        point_at_sandbox(settings, sandbox_base)
    services = cli_base.services(settings, create=True)
    with _store_errors():
        services.migrate()
    if sandbox:
        cli_people.demo_admin(services)
    services.dispose()  # the app builds its own from the same composition root
    options = {
        "host": listen_host,
        "port": listen_port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": shutdown.http_seconds(settings.shutdown_grace_seconds),
        "http": server.protocol(),  # malformed requests get a problem document, not uvicorn's plain text
    }
    count = workers or settings.workers
    if count > 1 and not sandbox:  # each worker process builds its own app and engine from the same environment
        import os

        os.environ["CREDIT_GATEWAY_DATABASE_URL"] = settings.database_url  # the project folder's, as found here
        uvicorn.run("gateway.app:app_from_environment", factory=True, workers=count, **options)  # type: ignore[arg-type]
        return
    application = build_app(settings)
    if sandbox:
        from adapters.sandbox.app import create_sandbox

        application.mount("/sandbox", create_sandbox())
    # the demo says beside its database where its sandbox is, so other commands on it reach the same platforms
    with project.announce_sandbox(settings.database_url, sandbox_base) if sandbox else nullcontext():
        uvicorn.run(application, **options)  # type: ignore[arg-type]


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


@app.command("sandbox")
def sandbox_command(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8700,
    db: Annotated[str, typer.Option(help="SQLite file for what the platforms hold (default: in memory)")] = ":memory:",
    faults: Annotated[
        Path | None, typer.Option(help='JSON file of faults per target: {"national": {...}, ...}')
    ] = None,
    result_delay: Annotated[float, typer.Option(help="seconds before two-stage business results are ready")] = 1.0,
) -> None:
    """Run the simulated target platforms (national, provincial, municipal, portal) of PROTOCOLS.md."""
    import uvicorn

    from adapters.sandbox import server
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
    options = {"log_config": None, "access_log": False, "server_header": False, "http": server.protocol()}
    uvicorn.run(application, host=host, port=port, **options)  # type: ignore[arg-type]


@app.command()
def worker(
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="serve /healthz, /readyz and /metrics on this port (0: any free one)"),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="address for --metrics-port")] = "127.0.0.1",
) -> None:
    """Run the delivery loop alone, for scale-out beside serve (PostgreSQL); stops cleanly on SIGTERM/SIGINT.

    Set CREDIT_GATEWAY_DELIVERY__IN_SERVE=false on serve to keep delivery out of the API processes.
    """
    import signal
    import threading

    from gateway.compose import build_worker_services

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    cli_base.require_database(settings)
    services = build_worker_services(settings)
    with _store_errors():
        if not services.schema_is_current():
            raise _fail(ValueError("the database schema is not current: run `credit-gateway migrate` first"))
    runner = services.worker
    assert runner is not None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runner.start()
    probe = _worker_probe(services, metrics_host, metrics_port)
    stop.wait()
    if probe is not None:
        probe.stop()
    runner.stop(within=shutdown.exchange_seconds(settings.shutdown_grace_seconds, serves_http=False))
    services.dispose()


def _worker_probe(services: Services, host: str, port: int | None) -> Any:
    if port is None:
        return None
    from gateway.compose import worker_probe

    try:
        probe = worker_probe(services, host=host, port=port)
    except OSError as exc:
        if services.worker is not None:
            services.worker.stop()
        raise _fail(ValueError(f"--metrics-port {port}: {exc.strerror or exc}")) from None
    probe.start()
    err.print(f"worker probes on http://{host}:{probe.port} (/healthz, /readyz, /metrics)", highlight=False)
    return probe


@app.command()
def migrate() -> None:
    """Bring the database (CREDIT_GATEWAY_DATABASE_URL) to the newest schema version."""
    services = cli_base.services(create=True)
    with _store_errors():
        revision = services.migrate()
    typer.echo(f"database at schema revision {revision}")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="for a source key, the source system it speaks for (its records' owner)")],
    role: Annotated[str, typer.Option(help="source (posts records) or operator (operator actions, reads all)")],
    kinds: Annotated[
        str | None,
        typer.Option(
            help="comma-separated kinds a source key may send "
            "(licences,penalties,commitments,list-changes), plus credit-checks to run credit checks; default all "
            "record kinds (credit checks only when named)"
        ),
    ] = None,
) -> None:
    """Create an API key. The key is printed once, alone on the last line; only its hash is stored."""
    if role not in ("source", "operator"):
        raise _fail(ValueError("--role must be source or operator"))
    if not name.strip():
        raise _fail(ValueError("--name must name the key's holder (a source system or an operator)"))
    chosen: tuple[str, ...] | None = None
    if kinds:
        try:
            chosen = tuple(
                k.strip() if k.strip() == "credit-checks" else Kind.from_code(k.strip()).value
                for k in kinds.split(",")
                if k.strip()
            )
        except ValueError:
            raise _fail(ValueError(f"--kinds takes {', '.join(k.value for k in Kind)}, credit-checks")) from None
    services = _services()
    with _store_errors():
        key, info = services.keys.create(_actor(), name=name, role=role, kinds=chosen)
    err.print(
        f"created {info.role} key {info.prefix}… for {info.name!r} "
        f"(kinds: {', '.join(info.kinds) if info.kinds else 'all'}); store it now, it is not shown again:"
    )
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (name, role, kinds, prefix, created, revoked); never the keys themselves."""
    with _store_errors():
        found = _services().keys.listing()
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
        count = _services().keys.revoke(_actor(), prefix)
    if not count:
        raise _fail(ValueError(f"no active key with prefix {prefix!r}"))
    typer.echo(f"revoked {count} key(s)")


def _actor() -> Actor:
    return cli_people.cli_actor()


@contextmanager
def _known_targets() -> Iterator[None]:
    """A target name the settings do not define, as one line naming the choices."""
    try:
        yield
    except UnknownTarget as exc:
        raise _fail(ValueError(f"{exc.target!r} is not a target; choose one of {', '.join(exc.names)}")) from None


def _delivery_cells(d: dict[str, Any]) -> list[str]:
    """The columns every delivery listing starts with: which delivery, where, of what, whose."""
    return [str(d["id"]), d["target"], d["kind"], d["source_id"], d["department"]]


@deliveries_app.command("dead")
def deliveries_dead(
    target: Annotated[str | None, typer.Option(help="only this target")] = None,
    kind: Annotated[str | None, typer.Option(help="only this kind (licences, penalties, ...)")] = None,
    department: Annotated[str | None, typer.Option(help="only this department (科室)")] = None,
    code: Annotated[str | None, typer.Option(help="only this error code of the target")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many rows")] = 100,
) -> None:
    """List dead letters: deliveries that failed for good, with the target's own code and message."""
    if kind is not None:
        kind = _record_kind(kind).value
    services = _services()
    with _store_errors(), _known_targets():
        if target is not None:
            services.operations.known_target(target)
        total, items = services.operations.dead_letters(
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


def _known_deliveries(services: Services, ids: list[int], verb: str) -> None:
    """Refuse the whole command when an id names no delivery (a typo would otherwise pass as "0 of 1")."""
    unknown = services.operations.unknown_deliveries(ids)
    if unknown:
        raise _fail(LookupError(f"no delivery with id {', '.join(map(str, unknown))}; nothing {verb}"))


@deliveries_app.command("requeue")
def deliveries_requeue(ids: Annotated[list[int], typer.Argument(help="delivery ids from `deliveries dead`")]) -> None:
    """Send dead deliveries again, with a fresh retry budget."""
    services = _services()
    with _store_errors():
        _known_deliveries(services, ids, "requeued")
        count = services.operations.requeue(_actor(), ids)
    typer.echo(f"requeued {count} of {len(ids)}")


@deliveries_app.command("cancel")
def deliveries_cancel(
    ids: Annotated[list[int], typer.Argument(help="delivery ids")],
    reason: Annotated[str | None, typer.Option(help="why (kept in the audit log)")] = None,
) -> None:
    """Give up on deliveries (dead, pending or waiting to retry)."""
    services = _services()
    with _store_errors():
        _known_deliveries(services, ids, "cancelled")
        count = services.operations.cancel(_actor(), ids, reason)
    typer.echo(f"cancelled {count} of {len(ids)}")


@targets_app.command("status")
def targets_status() -> None:
    """Deliveries by state for each target, paused, and its breaker, throttle and last failure (shared by every
    process through the database)."""
    with _store_errors():
        rows = _services().targets.status()
    table = Table(
        "target", "enabled", "paused", "breaker", "held until", "last failure", "pending", "in flight", "awaiting",
        "retry", "published", "dead",
    )  # fmt: skip
    for row in rows:
        c, h = row["deliveries"], row["health"]
        failure: Any = h["last_failure"]
        table.add_row(
            row["target"],
            "yes" if row["enabled"] else "no",
            "yes" if row["paused"] is not None else "",
            f"{h['breaker']} ({h['consecutive_failures']} failed)" if h["consecutive_failures"] else str(h["breaker"]),
            str(h["held_until"] or "")[:19],  # UTC, to the second
            f"{failure['at'][:19]} {failure['code'] or ''} {failure['message'] or ''}".strip() if failure else "",
            *(str(c.get(s, 0)) for s in ("pending", "in_flight", "awaiting_result", "retry_wait", "published", "dead")),
        )
    Console(width=None if sys.stdout.isatty() else 240).print(table)


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
    operations = _services().operations
    with _store_errors(), _known_targets():
        if paused:
            operations.pause(_actor(), target, reason)
        else:
            operations.resume(_actor(), target)
    typer.echo(f"{target} {'paused' if paused else 'resumed'}")


@targets_app.command("replay")
def targets_replay(
    target: Annotated[str, typer.Argument(help="the target to send again")],
    since: Annotated[str, typer.Option(help="YYYY-MM-DD: what it accepted on or after this day")],
    dry_run: Annotated[bool, typer.Option("--dry-run/--send", help="list only (default), or really send")] = True,
) -> None:
    """Re-send to a target what it accepted since a day (after it lost data). Lists first unless --send."""
    day = _day("--since", since)
    assert day is not None
    services = _services()
    with _store_errors(), _known_targets():
        plan = services.operations.replay(_actor(), target, day, dry_run)
    for p in plan:
        typer.echo(f"{p['kind']}\t{p['source_system']}\t{p['source_id']}\tv{p['version']}\t{p['key']}")
    err.print(f"{len(plan)} record(s) {'would be' if dry_run else 'are'} sent again to {target}")


def _day(option: str, text: str | None) -> dt.date | None:
    """A YYYY-MM-DD option as a date, or one line naming the option and why (2026-02-30: no such day)."""
    if text is None:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"takes a day as YYYY-MM-DD, got {text!r} ({exc})", param_hint=f"'{option}'") from None
    if not EARLIEST_DAY <= day <= LATEST_DAY:  # the API's bounds: beyond them the date arithmetic overflows
        raise typer.BadParameter(
            f"takes a day from {EARLIEST_DAY} to {LATEST_DAY}, got {text!r}", param_hint=f"'{option}'"
        )
    return day


def _outputs(formats: list[str], output: Path | None, label: str) -> dict[str, Path]:
    """One file per format: ``-o`` names it for one format; for several, each takes ``-o`` with its suffix."""
    if output is None:
        return {fmt: Path(f"gongshilv-{label}.{fmt}") for fmt in formats}
    if len(formats) == 1:
        return {formats[0]: output}
    return {fmt: output.with_suffix(f".{fmt}") for fmt in formats}


def _addresses(text: str | None) -> list[str]:
    from email.utils import parseaddr

    found = [part.strip() for part in (text or "").split(",") if part.strip()]
    for index, address in enumerate(found):
        if "@" not in parseaddr(address)[1] or parseaddr(address)[1] != address:
            raise _fail(ValueError(f"--email: address {index + 1} ({address!r}) is not an e-mail address"))
    return found


@app.command()
def report(
    period: Annotated[str, typer.Option(help="2026-10 (month), 2026-Q4 (quarter), 2026 (year) or 2026-10-05 (day)")],
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="comma-separated: xlsx, csv, json, html, docx (the 通报) [default: xlsx; none with --email]",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="the file to write; with several formats each takes this name with its suffix"
        ),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD: judge standings at the end of this day (default today)")
    ] = None,
    store_it: Annotated[
        bool,
        typer.Option("--store/--no-store", "--keep/--no-keep", help="store the report once (listed by the API)"),
    ] = True,
    email: Annotated[
        str | None, typer.Option(help="ADDR[,ADDR…]: send the report now with its XLSX, HTML and 通报 attached")
    ] = None,
    resend: Annotated[
        bool, typer.Option("--resend", help="send again to recipients who already received this period's report")
    ] = False,
) -> None:
    """Build a 公示率 report for a period (summary, by department, overdue, late, yearly quotas), store it once,
    write the formats asked and, with --email, send it now the way scheduled reports are sent."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from gateway.reports.build import STEPS
    from gateway.reports.render import FORMATS, render
    from schemas.periods import PeriodError, parse_period

    formats = [f.strip() for f in (format or ("" if email else "xlsx")).split(",") if f.strip()]
    for fmt in formats:
        if fmt not in FORMATS:
            raise typer.BadParameter(
                f"must be one or more of {', '.join(FORMATS)}, got {fmt!r}", param_hint="'--format'"
            )
    recipients = _addresses(email)
    try:
        chosen = parse_period(period)
    except PeriodError as exc:  # a bad option value: a usage error, as a bad day is
        raise typer.BadParameter(str(exc), param_hint="'--period'") from None
    day = _day("--as-of", as_of)
    settings = _settings()
    if recipients and not store_it:
        raise _fail(ValueError("--email sends a stored report (mail is retried from it): drop --no-store"))
    if recipients and settings.smtp.host is None:
        raise _fail(ValueError("--email needs an SMTP server: set CREDIT_GATEWAY_SMTP__HOST (and __PORT, __FROM)"))
    files = _outputs(formats, output, chosen.label)
    for path in files.values():  # before anything is computed or stored
        if not path.parent.is_dir():
            raise _fail(ValueError(f"{path}: no folder {path.parent}"))
    services = _services(settings)
    housekeeping = services.housekeeping
    with (
        _store_errors(),
        Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err) as bar,
    ):
        task = bar.add_task(f"公示率 {chosen.label}", total=len(STEPS) + len(files))

        def step(name: str) -> None:
            bar.update(task, advance=1, description=f"公示率 {chosen.label}: {name}")

        if store_it:
            report_id, data = housekeeping.create_report(chosen, actor=_actor(), as_of=day, progress=step)
        else:
            report_id, data = None, housekeeping.compute_report(chosen, as_of=day, progress=step)
        for fmt, path in files.items():
            try:
                path.write_bytes(render(data, fmt))  # type: ignore[arg-type]
            except OSError as exc:
                raise _fail(ValueError(f"{path}: {exc.strerror or exc}")) from None
            step(f"{path} written")
    total = data["summary"]["total"]
    rate = "no rate (nothing counted)" if total["rate"] is None else f"{total['rate'] * 100:.2f}%"
    err.print(
        f"{chosen.label}: 公示率 {rate}; on time {total['on_time']}, late {total['late']}, overdue {total['overdue']}, "
        f"pending {total['pending']}; provisional due dates {total['provisional']}, imported records "
        f"{data['imported']}" + (f"; stored as report {report_id}" if report_id else "")
    )
    for path in files.values():
        typer.echo(str(path))
    if recipients and report_id is not None:
        _send_now(services, chosen, report_id, recipients, resend)


def _send_now(services: Services, period: Any, report_id: int, recipients: list[str], resend: bool) -> None:
    mailer = services.mailer
    with _store_errors():
        ids, skipped = mailer.queue(
            period,
            schedule="on_demand",
            edition=f"on_demand:{period.label}",
            recipients=recipients,
            trigger="on_demand",
            actor=_actor(),
            resend=resend,
            report_id=report_id,
        )
        outcomes = mailer.send_due(ids=ids, actor=_actor()) if ids else []
    for address in skipped:
        err.print(f"{address}: already sent the {period.label} report; --resend sends it again")
    failed = [o for o in outcomes if o["state"] != "sent"]
    for o in outcomes:
        if o["state"] == "sent":
            err.print(f"{o['recipient']}: sent (mail {o['id']})")
        elif o["state"] == "retry_wait":
            err.print(f"[yellow]{o['recipient']}: not sent yet ({o['error']}); `serve` retries it (mail {o['id']})")
        else:
            err.print(f"[red]{o['recipient']}: given up ({o['error']}) (mail {o['id']})")
    if failed:
        raise typer.Exit(1)


@deliveries_app.command("at-risk")
def deliveries_at_risk(
    workdays: Annotated[
        int | None, typer.Option(min=0, help="due within this many working days (default from settings)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many rows")] = 100,
) -> None:
    """Unpublished deliveries close to (or past) their deadline, earliest due first."""
    from schemas.calendar import OutsideCalendar

    with _store_errors():
        try:
            view = _services().housekeeping.at_risk(workdays=workdays, limit=limit)
        except OutsideCalendar as exc:
            raise _fail(exc) from None
    table = Table("id", "target", "kind", "source_id", "department", "state", "due", "left", "code")
    for d in view["items"]:
        left = "overdue" if d["overdue"] else f"{d['workdays_left']} wd"
        table.add_row(
            *_delivery_cells(d),
            d["state"],
            d["due_date"].isoformat() + (" 暂定" if d.get("due_date_basis") == "provisional" else ""),
            left,
            d["last_code"] or "",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    err.print(f"{len(view['items'])} at risk (due by {view['horizon'].isoformat()})")
    _print_quotas_at_risk(view["quotas"])


def _print_quotas_at_risk(quotas: dict[str, Any]) -> None:
    """Month end: the departments still short of a monthly quota, with what is missing."""
    if not quotas["items"]:
        return
    table = Table("month", "department", "task", "target", "actual", "missing")
    for q in quotas["items"]:
        table.add_row(q["period"], q["department"], q["label"], str(q["target"]), str(q["actual"]), str(q["missing"]))
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    err.print(
        f"{len(quotas['items'])} monthly quotas short (month-end window from {quotas['window_from'].isoformat()})"
    )


@targets_app.command("reconcile")
def targets_reconcile(target: Annotated[str, typer.Argument(help="the target to compare with")]) -> None:
    """Compare what a target holds with what we published; re-queue what is missing or different."""
    services = _services()
    with _store_errors(), _known_targets():
        try:
            run = services.housekeeping.reconcile(services.operations.known_target(target), actor=_actor())
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
        housekeeping = _services().housekeeping
        filled = housekeeping.refresh_due_dates()
        recomputed = housekeeping.recompute_provisional(actor=_actor())
        done = housekeeping.expire(actor=_actor())
    for item in done:
        typer.echo(f"{item['kind']}\t{item['source_id']}\t{item['note']}")
    for c in recomputed:
        err.print(
            f"due date {c['kind']} {c['source_id']} {c['target']}: {c['from'].isoformat()} → {c['to'].isoformat()} "
            f"({c['basis']})"
        )
    err.print(
        f"{len(done)} record(s) withdrawn; {filled} due date(s) filled in; "
        f"{len(recomputed)} provisional due date(s) recomputed"
    )


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="an .xlsx or .csv in the national template (Chinese column names)")],
    kind: Annotated[str, typer.Option(help="licences, penalties, commitments or list-changes")],
    source_system: Annotated[
        str, typer.Option(help="the source system that owns these records (as a source key's name)")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate and count only; store nothing")] = False,
    errors_out: Annotated[
        Path | None,
        typer.Option(help="where rejected rows go, with 错误原因 [default: FILE.errors.xlsx|csv beside FILE]"),
    ] = None,
) -> None:
    """Import existing records from the national template; ends with `imported N, unchanged M, rejected K`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gateway.archive.columns import HeaderError
    from gateway.archive.files import FileError

    chosen = Kind.parse(kind)
    if chosen is None or chosen not in RECORD_KINDS:  # the national template has no articles
        raise _fail(ValueError(f"--kind takes {', '.join(k.value for k in RECORD_KINDS)}, got {kind!r}"))
    if not file.is_file():
        raise _fail(ValueError(f"{file}: no such file"))
    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    services = _services(settings)
    with (
        _store_errors(),
        Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
        ) as bar,
    ):
        if not services.schema_is_current():
            raise _fail(ValueError("the database schema is not current: run `credit-gateway migrate` first"))
        task = bar.add_task(f"{file.name} → {chosen.value}", total=None)
        try:
            outcome = services.importer(_actor()).run(
                file,
                kind=chosen,
                source_system=source_system,
                dry_run=dry_run,
                errors_out=errors_out,
                on_total=lambda total: bar.update(task, total=total),
                progress=lambda n: bar.advance(task, n),
            )
        except (FileError, HeaderError) as exc:
            raise _fail(exc) from None
        except OSError as exc:  # an --errors-out folder that is not there, a file that cannot be read
            raise _fail(ValueError(f"{exc.filename or file}: {exc.strerror or exc}")) from None
    for name in outcome.unknown_columns:
        err.print(f"[yellow]ignored column:[/yellow] {name!r} is not a column of the {chosen.label} template")
    if outcome.errors_file is not None:
        err.print(f"rejected rows and their reasons (错误原因): {outcome.errors_file}")
    if dry_run:
        err.print("dry run: nothing was stored")
    typer.echo(outcome.summary())
    services.dispose()


checks_app = typer.Typer(
    help="Credit checks before approval (事前监管): run one, list the kept ones (audited as 'cli').",
    no_args_is_help=True,
)
app.add_typer(checks_app, name="checks")


@contextmanager
def _checks(settings: Settings) -> Iterator[Any]:
    services = _services(settings)
    try:
        with _store_errors():
            yield services.checks()
    finally:
        services.close()
        services.dispose()


@checks_app.command("run")
def checks_run(
    matter: Annotated[str, typer.Option(help="the matter being approved (事项)")],
    department: Annotated[str, typer.Option(help="the approving department (科室)")],
    matter_type: Annotated[
        str, typer.Option("--type", help="licence, subsidy, procurement, tender, public_service or other")
    ] = "licence",
    uscc: Annotated[str | None, typer.Option(help="the subject's 统一社会信用代码")] = None,
    id_type: Annotated[str | None, typer.Option(help="a person's document type (resident_id, passport, …)")] = None,
    id_number: Annotated[str | None, typer.Option(help="a person's document number")] = None,
    requested_by: Annotated[str, typer.Option(help="who asks (经办人)")] = "cli",
) -> None:
    """Check a subject (by USCC or ID document) and keep the query; prints the advice, then the JSON answer."""
    from pydantic import ValidationError

    from gateway.checks import CheckBody, IdentifierRefused
    from schemas.errors import from_pydantic

    subject = {k: v for k, v in (("uscc", uscc), ("id_type", id_type), ("id_number", id_number)) if v is not None}
    raw = {
        "subject": subject,
        "matter": matter,
        "matter_type": matter_type,
        "department": department,
        "requested_by": requested_by,
    }
    try:
        body = CheckBody.model_validate(raw)
    except ValidationError as exc:
        raise _fail(ValueError("; ".join(f"{e.field}: {e.message}" for e in from_pydantic(exc)))) from None
    with _checks(_settings()) as service:
        try:
            found = service.run(_actor(), body)
        except IdentifierRefused as exc:
            raise _fail(ValueError(f"subject.id_number: {exc}")) from None
    err.print(f"check {found['id']}: [bold]{found['advice']}[/bold] (sources: {', '.join(found['sources'])})")
    for reason in found["reasons"]:
        err.print(f"  - {reason}")
    typer.echo(json.dumps(found, ensure_ascii=False, indent=2))


@checks_app.command("list")
def checks_list(
    period: Annotated[str, typer.Option(help="when the checks were made: 2026-11, 2026-Q4, 2026 or 2026-11-05")],
    department: Annotated[str | None, typer.Option(help="only this department")] = None,
    advice: Annotated[str | None, typer.Option(help="only this advice (restrict, caution, reward, no_record)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many rows")] = 1000,
) -> None:
    """The kept checks of a period (ID numbers masked), with their latest measure."""
    from schemas.periods import PeriodError, parse_period

    try:
        chosen = parse_period(period)
    except PeriodError as exc:  # a bad option value: a usage error, as a bad day is
        raise typer.BadParameter(str(exc), param_hint="'--period'") from None
    with _checks(_settings()) as service:
        items = service.listing(start=chosen.start, end=chosen.end, department=department, advice=advice, limit=limit)
    table = Table("id", "checked at", "department", "subject", "matter", "advice", "sources", "measure")
    for column in table.columns:
        column.overflow = "fold"
    for i in items:
        table.add_row(
            str(i["id"]),
            i["checked_at"][:19],
            i["department"],
            f"{i['subject']['name'] or ''} {i['subject']['code']}".strip(),
            i["matter"],
            i["advice"],
            ",".join(i["sources"]),
            i["measure"]["measure"] if i["measure"] else "",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    err.print(f"{len(items)} check(s) in {chosen.label}")


@checks_app.command("purge")
def checks_purge() -> None:
    """Delete kept checks older than CREDIT_GATEWAY_CHECKS__RETENTION_DAYS (nothing when unset: kept)."""
    settings = _settings()
    if settings.checks.retention_days is None:
        typer.echo("retention not set (CREDIT_GATEWAY_CHECKS__RETENTION_DAYS): every check is kept")
        return
    with _checks(settings) as service:
        count = service.purge("cli")
    typer.echo(f"deleted {count} check(s) older than {settings.checks.retention_days} days")


records_app = typer.Typer(
    help="A record as the API's GET shows it: versions, deliveries, attempts.", no_args_is_help=True
)
app.add_typer(records_app, name="records")


def _print_json(value: Any) -> None:
    import orjson

    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def _record_kind(text: str) -> Kind:
    chosen = Kind.parse(text)
    if chosen is None:
        raise _fail(ValueError(f"{text!r} is not a record kind; choose one of {', '.join(k.value for k in Kind)}"))
    return chosen


@records_app.command("show")
def records_show(
    kind: Annotated[str, typer.Argument(help="licences, penalties, commitments, list-changes, cases or news")],
    source_id: Annotated[str, typer.Argument(help="the source system's id of the record")],
    source_system: Annotated[
        str | None, typer.Option(help="the record's source system, when several use this source_id")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the API's JSON (GET /api/v1/{kind}/{source_id})")] = False,
) -> None:
    """A record: current content's summary, its versions, and each delivery with its deadline standing and
    attempts (the same view as the API's GET)."""
    chosen = _record_kind(kind)
    services = _services()
    with _store_errors():
        view = services.records.view(chosen, source_id, source_system)
    if as_json:
        _print_json(view)
        return
    out = Console(width=None if sys.stdout.isatty() else 200)
    withdrawn = view["withdrawn"]
    out.print(
        f"[bold]{view['kind']} {view['source_id']}[/bold] (record {view['id']}, source system {view['source_system']}, "
        f"origin {view['origin']}): version {view['version']}, decided on {view['decided_on']}"
        + (f"; withdrawn {withdrawn['at']} ({withdrawn['reason']})" if withdrawn else ""),
        highlight=False,
    )
    versions = Table("version", "received at", "content hash", title="versions")
    for v in view["versions"]:
        versions.add_row(str(v["version"]), v["received_at"], v["content_hash"])
    deliveries = Table("target", "v", "operation", "state", "due", "standing", "published at", "last code", "message")
    deliveries.title = "deliveries"
    attempts = Table("target", "v", "operation", "at", "outcome", "code", "message", "ms", title="attempts")
    for table in (deliveries, attempts):
        for column in table.columns:
            column.overflow = "fold"
    for d in view["deliveries"]:
        due = (d["due_date"] or "") + (" 暂定" if d.get("due_date_basis") == "provisional" else "")
        deliveries.add_row(
            d["target"],
            str(d["version"]),
            d["operation"],
            d["state"],
            due,
            d.get("standing") or "",
            d["published_at"] or "",
            d["last_code"] or "",
            d["last_message"] or d.get("due_note") or "",
        )
        for a in d["attempts"]:
            attempts.add_row(
                d["target"],
                str(d["version"]),
                d["operation"],
                a["at"],
                a["outcome"],
                a["code"] or "",
                a["message"] or "",
                "" if a["duration_ms"] is None else str(a["duration_ms"]),
            )
    out.print(versions, deliveries, attempts)


def _rate(counts: dict[str, Any]) -> str:
    return "—" if counts["rate"] is None else f"{counts['rate'] * 100:.2f}%"


@app.command()
def rates(
    period: Annotated[str, typer.Option(help="2026-10 (month), 2026-Q4 (quarter), 2026 (year) or 2026-10-05 (day)")],
    as_of: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD: judge standings at the end of this day (default today)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the API's JSON (GET /api/v1/rates)")] = False,
) -> None:
    """公示率 of a period by target, kind and department, computed now and not stored (the API's /rates)."""
    from schemas.periods import PeriodError, parse_period

    try:
        chosen = parse_period(period)
    except PeriodError as exc:  # a bad option value: a usage error, as a bad day is
        raise typer.BadParameter(str(exc), param_hint="'--period'") from None
    day = _day("--as-of", as_of)
    services = _services()
    with _store_errors():
        data = services.housekeeping.compute_report(chosen, as_of=day)
    if as_json:
        _print_json(data)
        return
    columns = ("on time", "late", "overdue", "pending", "公示率")
    table = Table("target", "kind", "department", *columns, title=f"公示率 {chosen.label} (as of {data['as_of']})")
    for g in data["groups"]:
        table.add_row(
            g["target"],
            g["kind"],
            g["department"],
            *(str(g[k]) for k in ("on_time", "late", "overdue", "pending")),
            _rate(g),
        )
    total = data["summary"]["total"]
    table.add_section()
    table.add_row(
        "all", "", "", *(str(total[k]) for k in ("on_time", "late", "overdue", "pending")), _rate(total), style="bold"
    )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    err.print(f"{chosen.label}: 公示率 {_rate(total)} over {total['counted']} counted deliveries", highlight=False)


def main() -> None:
    """The command, with usage errors (a bad option value, a missing argument) as one line like every refusal."""
    from typer.exceptions import TyperException  # the vendored click's ClickException and UsageError derive from it

    memory.map_large_blocks()  # serve and worker run for months: see gateway.memory
    try:
        code = app(standalone_mode=False)
    except TyperException as exc:
        message = exc.format_message()
        if not message:  # a group run bare: its help is already printed
            raise SystemExit(exc.exit_code) from None
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        raise SystemExit(_usage(message + hint, exc.exit_code)) from None
    except typer.Abort:
        raise SystemExit(_usage("aborted", 130)) from None
    raise SystemExit(code if isinstance(code, int) else 0)


def _usage(message: str, code: int) -> int:
    return cli_base.fail(message, code).exit_code


if __name__ == "__main__":
    main()
