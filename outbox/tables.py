"""The outbox schema as SQLModel tables; the Alembic migrations in ``outbox/migrations`` create exactly this.

Design notes (why, not what):

* ``delivery`` is the work queue. Workers lease due rows with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL) or a
  conditional update (SQLite), filtering on ``state`` and ``target`` and ordering on ``next_attempt_at``. The
  lease index is *partial* (only ``pending``/``retry_wait`` rows), so millions of published rows never enter it
  and the lease query stays an index range scan however much history piles up. In-flight leases and awaited
  business results get partial indexes of their own for the reaper and the result poller.
* ``record`` carries ``current_version`` and ``content_hash`` so that an identical re-post is answered from one
  row, and a unique (source_system, kind, source_id) key makes concurrent first posts collapse into one record.
  ``record_version`` has a unique (record_id, version): two versions with one number cannot exist.
* ``audit_event`` is append-only; the migration installs triggers that refuse UPDATE and DELETE. Each entry is
  also a link of a hash chain (``seq``, ``prev_hash``, ``entry_hash``; see ``outbox/audit.py``), so an edit made
  past those triggers shows up in ``credit-gateway audit verify``.
* ``person`` and ``person_session`` are the people who sign in to the console; a session is known by the SHA-256
  of its token only, and ``sign_in_failure`` (by the SHA-256 of the name tried) drives the lockout.
* Timestamps are stored in UTC (``UtcDateTime``) and come back timezone-aware on both databases.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which has no time zones) as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is not dt.UTC:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite's rowid alias must be INTEGER


def _id() -> Any:
    return Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=nullable, index=index))


def _json() -> Any:
    return Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = _id()
    name: str = Field(max_length=64, index=True)  # the source system a source key speaks for
    role: str = Field(max_length=16)
    kinds: list[str] | None = _json()  # None: every kind
    key_hash: str = Field(max_length=64, unique=True)
    key_prefix: str = Field(max_length=16)
    created_at: dt.datetime = _ts()
    revoked_at: dt.datetime | None = _ts(nullable=True)


class Record(SQLModel, table=True):
    __tablename__ = "record"
    __table_args__ = (
        sa.UniqueConstraint("source_system", "kind", "source_id", name="uq_record_business_key"),
        sa.Index("ix_record_decided_on", "decided_on"),
        sa.Index("ix_record_source_id", "source_id"),  # the console's search by 业务编号 across source systems
    )

    id: int | None = _id()
    kind: str = Field(max_length=16)
    source_system: str = Field(max_length=64)
    source_id: str = Field(max_length=64)
    current_version: int
    content_hash: str = Field(max_length=64)
    department: str = Field(max_length=64)
    decided_on: dt.date
    created_at: dt.datetime = _ts()
    updated_at: dt.datetime = _ts()
    withdrawn_at: dt.datetime | None = _ts(nullable=True)
    withdraw_reason: str | None = Field(default=None, max_length=16)
    withdraw_note: str | None = Field(default=None, max_length=1000)
    # How the record first arrived: ``api`` (a source system posted it) or ``import`` (the archive, by
    # ``credit-gateway import``); reports count the imported ones apart.
    origin: str = Field(default="api", sa_column=sa.Column(sa.String(length=8), nullable=False, server_default="api"))


def _subject_indexes() -> tuple[sa.Index, ...]:
    """Credit checks find a subject's records by code: expression indexes on the stored JSON (migration 0006).

    Declared here in their PostgreSQL form only: Alembic compares them there; SQLite cannot reflect expression
    indexes, and the migration writes its ``json_extract`` twins.
    """
    by_code = tuple(
        sa.Index(
            f"ix_record_version_subject_{path}", sa.text(f"((content -> 'counterpart'::text) ->> '{path}'::text)")
        ).ddl_if(dialect="postgresql")
        for path in ("uscc", "id_number")
    )
    # The console's "name contains" (migration 0010): a trigram GIN index, so LIKE '%…%' is an index search.
    by_name = sa.Index(
        "ix_record_version_counterpart_name",
        sa.literal_column("((content -> 'counterpart'::text) ->> 'name'::text)").label("counterpart_name"),
        postgresql_using="gin",
        postgresql_ops={"counterpart_name": "gin_trgm_ops"},
    ).ddl_if(dialect="postgresql")
    return (*by_code, by_name)


class RecordVersion(SQLModel, table=True):
    __tablename__ = "record_version"
    __table_args__ = (sa.UniqueConstraint("record_id", "version", name="uq_record_version"), *_subject_indexes())

    id: int | None = _id()
    record_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("record.id"), nullable=False))
    version: int
    content_hash: str = Field(max_length=64)
    content: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))  # normalised, what is sent
    submitted: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))  # exactly what arrived
    received_at: dt.datetime = _ts()


# Due dates computed on an estimated calendar, recomputed when the year's official schedule arrives.
PROVISIONAL = "due_date_basis = 'provisional'"

# Deliveries a target still owes an answer on: the console's backlog and its oldest entry read these only.
OPEN = "state IN ('pending', 'retry_wait', 'in_flight', 'awaiting_result')"

# Publish deliveries that can still become late: the at-risk view and the deadline lease order read these only.
UNPUBLISHED = "operation = 'publish' AND state IN ('pending', 'retry_wait', 'in_flight', 'awaiting_result', 'dead')"


class Delivery(SQLModel, table=True):
    __tablename__ = "delivery"
    __table_args__ = (
        sa.Index(
            "ix_delivery_due",
            "target",
            "next_attempt_at",
            "id",  # the lease's order: it reads the index in order and stops at its limit (outbox.leases)
            postgresql_where=sa.text("state IN ('pending', 'retry_wait')"),
            sqlite_where=sa.text("state IN ('pending', 'retry_wait')"),
        ),
        sa.Index(
            "ix_delivery_leased",
            "lease_expires_at",
            postgresql_where=sa.text("state = 'in_flight'"),
            sqlite_where=sa.text("state = 'in_flight'"),
        ),
        sa.Index(
            "ix_delivery_awaiting",
            "target",
            "next_attempt_at",
            postgresql_where=sa.text("state = 'awaiting_result'"),
            sqlite_where=sa.text("state = 'awaiting_result'"),
        ),
        sa.Index("ix_delivery_record", "record_id", "target"),
        sa.Index(
            "ix_delivery_unpublished_due",
            "due_date",
            postgresql_where=sa.text(UNPUBLISHED),
            sqlite_where=sa.text(UNPUBLISHED),
        ),
        sa.Index(
            "ix_delivery_provisional",
            "due_date",
            postgresql_where=sa.text(PROVISIONAL),
            sqlite_where=sa.text(PROVISIONAL),
        ),
        sa.Index(
            "ix_delivery_open",
            "target",
            "created_at",
            postgresql_where=sa.text(OPEN),
            sqlite_where=sa.text(OPEN),
        ),
        sa.Index(  # published in the last hour / day (console), in a month (reports): published rows only (0015)
            "ix_delivery_published_at",
            "published_at",
            postgresql_where=sa.text("published_at IS NOT NULL"),
            sqlite_where=sa.text("published_at IS NOT NULL"),
        ),
        sa.Index(
            "ix_delivery_dead",
            "target",
            "id",
            postgresql_where=sa.text("state = 'dead'"),
            sqlite_where=sa.text("state = 'dead'"),
        ),
    )

    id: int | None = _id()
    record_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("record.id"), nullable=False))
    version: int
    target: str = Field(max_length=16)
    operation: str = Field(max_length=8)
    state: str = Field(max_length=16)
    idempotency_key: str = Field(max_length=64, unique=True)
    attempts: int = 0
    next_attempt_at: dt.datetime = _ts()
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_expires_at: dt.datetime | None = _ts(nullable=True)
    receipt_id: str | None = Field(default=None, max_length=128)
    due_date: dt.date | None = None  # the deadline (Asia/Shanghai date) for a publish; None: no rule or no calendar
    due_by: dt.datetime | None = _ts(nullable=True)  # the end of due_date in Asia/Shanghai, as an exclusive UTC bound
    # official: counted on a published schedule; provisional: the year's schedule was not out yet (statutory
    # holidays and weekends only, no 调休 make-up days); None with due_date None.
    due_date_basis: str | None = Field(default=None, max_length=12)
    published_at: dt.datetime | None = _ts(nullable=True)
    last_code: str | None = Field(default=None, max_length=32)
    last_message: str | None = Field(default=None, max_length=2000)
    created_at: dt.datetime = _ts()
    updated_at: dt.datetime = _ts()
    retry_since: dt.datetime | None = _ts(nullable=True)  # set when an operator requeues: a fresh age budget


class TargetState(SQLModel, table=True):
    """Operator decisions about a target that every worker must see (pause/resume)."""

    __tablename__ = "target_state"

    target: str = Field(max_length=16, primary_key=True)
    paused: bool
    reason: str | None = Field(default=None, max_length=500)
    changed_by: str = Field(max_length=64)
    changed_at: dt.datetime = _ts()


class Attempt(SQLModel, table=True):
    """One try of one delivery. ``excerpt_id`` names the exchange it went out in (``ExchangeExcerpt``); the
    attempts of one batch share it."""

    __tablename__ = "attempt"

    id: int | None = _id()
    delivery_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("delivery.id"), nullable=False, index=True))
    at: dt.datetime = _ts(index=True)
    duration_ms: int
    outcome: str = Field(max_length=24)
    code: str | None = Field(default=None, max_length=32)
    message: str | None = Field(default=None, max_length=2000)
    # No foreign key: the nightly prune deletes exchanges past retention and an attempt's id then reads as "no
    # excerpt", with no index on attempt to keep up on every insert for the key's ON DELETE.
    excerpt_id: int | None = Field(default=None, sa_column=sa.Column(BigId, nullable=True))


class ExchangeExcerpt(SQLModel, table=True):
    """What was sent to a target and what came back, once per exchange (at most 8 KB each; secrets removed,
    resident ID numbers masked), for an operator reading a record's timeline. A batch of 500 items is one
    exchange, stored once (migration 0014). A nightly job deletes them after
    ``DELIVERY__EXCERPT_RETENTION_DAYS``, found through ``ix_exchange_excerpt_at``."""

    __tablename__ = "exchange_excerpt"

    id: int | None = _id()
    at: dt.datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False, index=True))
    request: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    reply: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        sa.Index("ix_audit_subject", "kind", "source_id"),
        sa.Index("uq_audit_seq", "seq", unique=True),  # one entry per chain position: the chain cannot fork
    )

    id: int | None = _id()
    at: dt.datetime = _ts(index=True)
    actor: str = Field(max_length=64)
    role: str = Field(max_length=16)
    action: str = Field(max_length=32)
    kind: str | None = Field(default=None, max_length=16)
    source_id: str | None = Field(default=None, max_length=64)
    record_id: int | None = Field(default=None, sa_column=sa.Column(BigId, nullable=True))
    detail: dict[str, Any] | None = _json()
    # The hash chain: position, the previous entry's hash and this entry's (None only on rows written around it).
    seq: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger(), nullable=True))
    prev_hash: str | None = Field(default=None, max_length=64)
    entry_hash: str | None = Field(default=None, max_length=64)


class ReconciliationRun(SQLModel, table=True):
    """One comparison of what a target holds with what we published, and what was done about the difference."""

    __tablename__ = "reconciliation_run"

    id: int | None = _id()
    target: str = Field(max_length=16, index=True)
    started_at: dt.datetime = _ts()
    finished_at: dt.datetime | None = _ts(nullable=True)
    status: str = Field(max_length=16)  # running, done, failed
    actor: str = Field(max_length=64)
    held: int = 0
    matched: int = 0
    missing: int = 0
    mismatched: int = 0
    extra: int = 0
    requeued: int = 0
    findings: dict[str, Any] | None = _json()  # the items themselves (capped), and the error if it failed


class ReportRun(SQLModel, table=True):
    """A computed 公示率 report, kept so that what leadership was shown can be downloaded again in any format."""

    __tablename__ = "report_run"

    id: int | None = _id()
    period: str = Field(max_length=16, index=True)  # 2026-10, 2026-Q4, 2026, or 2026-10-05 for a daily report
    trigger: str = Field(max_length=16)  # schedule or on_demand
    as_of: dt.date
    created_at: dt.datetime = _ts()
    actor: str = Field(max_length=64)
    data: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))


# Report mail still to be (re)tried: the send loop reads these only.
MAIL_OPEN = "state IN ('queued', 'retry_wait', 'sending')"


class ReportMail(SQLModel, table=True):
    """One stored report sent to one recipient: an outbox row of its own, retried until it goes or is given up.

    ``edition`` names what is sent (``monthly:2026-10``, ``weekly:2026-11@2026-11-23``, ``on_demand:2026-10``);
    the unique (edition, recipient, round) is what keeps a restart or a re-run from sending it twice. Asking for it
    again on purpose (``--resend``) takes the next round.
    """

    __tablename__ = "report_mail"
    __table_args__ = (
        sa.UniqueConstraint("edition", "recipient", "round", name="uq_report_mail_edition"),
        sa.Index(
            "ix_report_mail_open",
            "next_attempt_at",
            postgresql_where=sa.text(MAIL_OPEN),
            sqlite_where=sa.text(MAIL_OPEN),
        ),
    )

    id: int | None = _id()
    report_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("report_run.id"), nullable=False, index=True))
    schedule: str = Field(max_length=32)  # a schedule's name, or on_demand
    edition: str = Field(max_length=64)
    period: str = Field(max_length=16)
    recipient: str = Field(max_length=254)
    round: int = 0
    state: str = Field(max_length=16)  # queued, sending, retry_wait, sent, given_up
    attempts: int = 0
    next_attempt_at: dt.datetime = _ts()
    lease_expires_at: dt.datetime | None = _ts(nullable=True)
    last_error: str | None = Field(default=None, max_length=2000)
    requested_by: str = Field(max_length=64)
    created_at: dt.datetime = _ts()
    updated_at: dt.datetime = _ts()
    sent_at: dt.datetime | None = _ts(nullable=True)


class ReportSchedule(SQLModel, table=True):
    """Who gets which scheduled report: seeded from the settings, editable later in the console (``source``)."""

    __tablename__ = "report_schedule"

    name: str = Field(max_length=32, primary_key=True)
    kind: str = Field(max_length=16)  # monthly, weekly
    recipients: list[str] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    enabled: bool
    source: str = Field(max_length=16)  # settings (re-seeded at start) or console (edited: kept as is)
    updated_at: dt.datetime = _ts()
    updated_by: str = Field(max_length=64)


class CreditCheck(SQLModel, table=True):
    """One 审批前信用查询, kept whole (留存查询记录): who asked, about whom, why, what was found, the advice.

    Never updated (a trigger refuses it); the measure taken later goes to ``credit_check_measure``. The subject's
    code is stored in clear for the bureau; listings and logs mask ID numbers.
    """

    __tablename__ = "credit_check"
    __table_args__ = (sa.Index("ix_credit_check_department", "department", "checked_at"),)

    id: int | None = _id()
    checked_at: dt.datetime = _ts(index=True)
    check_date: dt.date  # the day (Asia/Shanghai) whose records in force were consulted
    actor: str = Field(max_length=64)  # the API key's name (or "cli")
    role: str = Field(max_length=16)
    subject_code: str = Field(max_length=64, index=True)
    subject_id_type: str | None = Field(default=None, max_length=32)  # None: a USCC
    subject_name: str | None = Field(default=None, max_length=200)
    matter: str = Field(max_length=500)
    matter_type: str = Field(max_length=16)
    department: str = Field(max_length=64)
    requested_by: str = Field(max_length=64)
    findings: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    sources: list[str] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    national: str = Field(max_length=16)  # answered, disabled, timeout, unavailable, breaker_open, throttled
    advice: str = Field(max_length=16)
    reasons: list[str] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))


class CreditCheckMeasure(SQLModel, table=True):
    """The joint reward/punishment measure (联合奖惩措施) taken after a check; appended, never changed."""

    __tablename__ = "credit_check_measure"

    id: int | None = _id()
    check_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("credit_check.id"), nullable=False, index=True))
    at: dt.datetime = _ts()
    actor: str = Field(max_length=64)
    role: str = Field(max_length=16)
    measure: str = Field(max_length=16)
    note: str | None = Field(default=None, max_length=1000)


class Person(SQLModel, table=True):
    """Someone who signs in to the console (programs use API keys instead)."""

    __tablename__ = "person"

    id: int | None = _id()
    name: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)  # viewer, operator, admin
    department: str | None = Field(default=None, max_length=64)
    password_hash: str = Field(max_length=255)  # argon2id, with its salt and parameters
    created_at: dt.datetime = _ts()
    password_changed_at: dt.datetime = _ts()
    disabled_at: dt.datetime | None = _ts(nullable=True)


class PersonSession(SQLModel, table=True):
    __tablename__ = "person_session"

    id: int | None = _id()
    token_hash: str = Field(max_length=64, unique=True)  # SHA-256 of the token; the token itself is never stored
    person_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("person.id"), nullable=False, index=True))
    created_at: dt.datetime = _ts()
    last_seen_at: dt.datetime = _ts()
    revoked_at: dt.datetime | None = _ts(nullable=True)


class SignInFailure(SQLModel, table=True):
    __tablename__ = "sign_in_failure"
    __table_args__ = (sa.Index("ix_sign_in_failure_name", "name_hash", "at"),)

    id: int | None = _id()
    name_hash: str = Field(max_length=64)  # SHA-256 of the name tried: a password typed as a name is not kept
    at: dt.datetime = _ts()


class TargetHealth(SQLModel, table=True):
    """Each target's health as the process that last talked to it found it: one breaker shared by every process.

    Written by whichever worker (or credit-check) exchanges with the target, read by the API, the CLI and every
    ``/metrics``. ``probe_owner``/``probe_until`` is the half-open probe's claim: one process takes it with a
    conditional UPDATE, and another may take it over only after ``probe_until`` (the prober died).
    """

    __tablename__ = "target_health"

    target: str = Field(max_length=16, primary_key=True)
    breaker: str = Field(default="closed", max_length=12)  # closed | open | half_open
    consecutive_failures: int = 0
    opened_at: dt.datetime | None = _ts(nullable=True)
    down_since: dt.datetime | None = _ts(nullable=True)
    probe_owner: str | None = Field(default=None, max_length=64)
    probe_until: dt.datetime | None = _ts(nullable=True)
    held_until: dt.datetime | None = _ts(nullable=True)  # throttled: the target's Retry-After
    last_success_at: dt.datetime | None = _ts(nullable=True)
    last_failure_at: dt.datetime | None = _ts(nullable=True)
    last_failure_code: str | None = Field(default=None, max_length=32)
    last_failure_message: str | None = Field(default=None, max_length=500)
    updated_at: dt.datetime = _ts()


class SettledStanding(SQLModel, table=True):
    """A past month's 公示率 counts by (target, kind, department), kept so a report's trend need not recount them.

    Counted as of "forever" (every publication and withdrawal so far, every due date passed); a report as of a
    day reuses a month only when that day is after the month's last due date and last publication or withdrawal
    (then the counts as of that day are the same). Triggers on ``record`` and ``delivery`` (migration 0013) delete
    a month's rows whenever anything a standing reads changes for a record decided in it; ``outbox.settled``
    fills them.
    """

    __tablename__ = "settled_standing"

    month: str = Field(sa_column=sa.Column(sa.String(length=7), primary_key=True))  # YYYY-MM of decided_on
    target: str = Field(sa_column=sa.Column(sa.String(length=16), primary_key=True))
    kind: str = Field(sa_column=sa.Column(sa.String(length=16), primary_key=True))
    department: str = Field(sa_column=sa.Column(sa.String(length=64), primary_key=True))
    on_time: int
    late: int
    overdue: int
    pending: int
    not_applicable: int
    unknown: int
    provisional: int
    last_due_date: dt.date | None = None
    last_published_at: dt.datetime | None = _ts(nullable=True)
    last_withdrawn_at: dt.datetime | None = _ts(nullable=True)


api_key = SQLModel.metadata.tables["api_key"]
record = SQLModel.metadata.tables["record"]
record_version = SQLModel.metadata.tables["record_version"]
delivery = SQLModel.metadata.tables["delivery"]
attempt = SQLModel.metadata.tables["attempt"]
exchange_excerpt = SQLModel.metadata.tables["exchange_excerpt"]
audit_event = SQLModel.metadata.tables["audit_event"]
target_state = SQLModel.metadata.tables["target_state"]
reconciliation_run = SQLModel.metadata.tables["reconciliation_run"]
report_run = SQLModel.metadata.tables["report_run"]
report_mail = SQLModel.metadata.tables["report_mail"]
report_schedule = SQLModel.metadata.tables["report_schedule"]
credit_check = SQLModel.metadata.tables["credit_check"]
credit_check_measure = SQLModel.metadata.tables["credit_check_measure"]
person = SQLModel.metadata.tables["person"]
person_session = SQLModel.metadata.tables["person_session"]
sign_in_failure = SQLModel.metadata.tables["sign_in_failure"]
target_health = SQLModel.metadata.tables["target_health"]
settled_standing = SQLModel.metadata.tables["settled_standing"]
metadata = SQLModel.metadata
