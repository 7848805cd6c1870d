"""Report mail as an outbox: queue one row per (edition, recipient), lease the due ones, settle each attempt.

The send itself (SMTP) is the gateway's; this module only keeps the rows honest. Queueing is insert-if-absent on
the unique (edition, recipient, round), so a scheduled job that runs twice, or a gateway that restarts, finds the
rows already there and sends nothing again. A row being sent is leased (``sending`` until ``lease_expires_at``); a
process that dies mid-send leaves a lease that expires and the mail is tried again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from outbox import audit
from outbox.ingest import Actor
from outbox.tables import MAIL_OPEN, report_mail, report_schedule


def _audit(conn: Connection, actor: Actor, action: str, now: dt.datetime, detail: dict[str, Any]) -> None:
    audit.append(conn, [{"at": now, "actor": actor.name, "role": actor.role, "action": action, "detail": detail}])


def existing(conn: Connection, edition: str) -> dict[str, int]:
    """Recipient → report id of the mail already queued or sent for an edition (any round)."""
    rows = conn.execute(
        sa.select(report_mail.c.recipient, report_mail.c.report_id)
        .where(report_mail.c.edition == edition)
        .order_by(report_mail.c.round)
    )
    return {r.recipient: int(r.report_id) for r in rows}


def queue(
    conn: Connection,
    *,
    report_id: int,
    schedule: str,
    edition: str,
    period: str,
    recipients: Sequence[str],
    resend: bool,
    actor: Actor,
    now: dt.datetime,
) -> tuple[list[int], list[str]]:
    """Queue the mail of ``edition`` to each recipient not yet served (every one again with ``resend``).

    Returns (new mail ids, recipients skipped because they already have it)."""
    ids: list[int] = []
    skipped: list[str] = []
    for recipient in dict.fromkeys(recipients):
        rounds = [
            int(r)
            for r in conn.execute(
                sa.select(report_mail.c.round).where(
                    report_mail.c.edition == edition, report_mail.c.recipient == recipient
                )
            ).scalars()
        ]
        if rounds and not resend:
            skipped.append(recipient)
            continue
        values = {
            "report_id": report_id,
            "schedule": schedule,
            "edition": edition,
            "period": period,
            "recipient": recipient,
            "round": max(rounds) + 1 if rounds else 0,
            "state": "queued",
            "attempts": 0,
            "next_attempt_at": now,
            "requested_by": actor.name,
            "created_at": now,
            "updated_at": now,
        }
        # Two processes queueing one edition at once: the unique key lets one row in; the other one skips it.
        nested = conn.begin_nested()
        try:
            mail_id = conn.execute(sa.insert(report_mail).values(**values).returning(report_mail.c.id)).scalar_one()
        except sa.exc.IntegrityError:
            nested.rollback()
            skipped.append(recipient)
            continue
        nested.commit()
        ids.append(int(mail_id))
    if ids:
        detail = {"report": report_id, "edition": edition, "mails": ids, "resend": resend}
        _audit(conn, actor, "report.mail.queued", now, detail)
    return ids, skipped


def lease(
    conn: Connection, *, now: dt.datetime, until: dt.datetime, ids: Sequence[int] | None, limit: int
) -> list[dict[str, Any]]:
    """Take the due mail (or the given ids if due) for sending until ``until``; an expired lease is due again."""
    due = sa.or_(
        sa.and_(report_mail.c.state.in_(("queued", "retry_wait")), report_mail.c.next_attempt_at <= now),
        sa.and_(report_mail.c.state == "sending", report_mail.c.lease_expires_at <= now),
    )
    query = sa.select(report_mail.c.id).where(sa.text(MAIL_OPEN), due).order_by(report_mail.c.id).limit(limit)
    if ids is not None:
        query = query.where(report_mail.c.id.in_(list(ids)))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    chosen = [int(i) for i in conn.execute(query).scalars()]
    if not chosen:
        return []
    conn.execute(
        sa.update(report_mail)
        .where(report_mail.c.id.in_(chosen))
        .values(state="sending", lease_expires_at=until, updated_at=now)
    )
    rows = conn.execute(sa.select(report_mail).where(report_mail.c.id.in_(chosen)).order_by(report_mail.c.id))
    return [dict(r._mapping) for r in rows]


def settle(
    conn: Connection,
    *,
    mail_id: int,
    outcome: str,
    error: str | None,
    next_at: dt.datetime | None,
    actor: Actor,
    now: dt.datetime,
) -> None:
    """Record one attempt: ``sent``, ``retry_wait`` (tried again at ``next_at``) or ``given_up``; audited."""
    values: dict[str, Any] = {
        "state": outcome,
        "attempts": report_mail.c.attempts + 1,
        "lease_expires_at": None,
        "updated_at": now,
        "last_error": error[:2000] if error else None,
    }
    if outcome == "sent":
        values["sent_at"] = now
    if next_at is not None:
        values["next_attempt_at"] = next_at
    row = conn.execute(
        sa.update(report_mail)
        .where(report_mail.c.id == mail_id, report_mail.c.state == "sending")
        .values(**values)
        .returning(report_mail.c.report_id, report_mail.c.recipient, report_mail.c.edition, report_mail.c.attempts)
    ).first()
    if row is None:  # the lease was lost to another process meanwhile; its own settlement counts
        return
    detail = {
        "mail": mail_id,
        "report": int(row.report_id),
        "recipient": row.recipient,
        "edition": row.edition,
        "attempts": int(row.attempts),
        "error": error,
    }
    action = {"sent": "report.mail.sent", "retry_wait": "report.mail.failed", "given_up": "report.mail.given_up"}
    _audit(conn, actor, action[outcome], now, detail)


def listing(conn: Connection, *, state: str | None, limit: int) -> list[dict[str, Any]]:
    query = sa.select(report_mail).order_by(report_mail.c.id.desc()).limit(limit)
    if state is not None:
        query = query.where(report_mail.c.state == state)
    return [dict(r._mapping) for r in conn.execute(query)]


def seed_schedules(conn: Connection, schedules: Sequence[dict[str, Any]], *, now: dt.datetime) -> None:
    """Bring the schedules the settings name into the table; one a person edited (``source`` console) stays."""
    kept = {r.name: r.source for r in conn.execute(sa.select(report_schedule.c.name, report_schedule.c.source))}
    for s in schedules:
        values = {**s, "source": "settings", "updated_at": now, "updated_by": "settings"}
        if s["name"] not in kept:  # another process may seed at the same moment: the first one wins
            conn.execute(_insert(conn).values(**values).on_conflict_do_nothing(index_elements=["name"]))
        elif kept[s["name"]] == "settings":
            conn.execute(sa.update(report_schedule).where(report_schedule.c.name == s["name"]).values(**values))
    named = [s["name"] for s in schedules]
    conn.execute(  # a schedule dropped from the settings stops, unless a person took it over
        sa.delete(report_schedule).where(report_schedule.c.source == "settings", report_schedule.c.name.not_in(named))
    )


def _insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(report_schedule)
    return sqlite.insert(report_schedule)


def schedules(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(sa.select(report_schedule).order_by(report_schedule.c.name))]
