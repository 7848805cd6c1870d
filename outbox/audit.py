"""The audit log as a hash chain: every entry carries its position, the SHA-256 of the entry before it and its own.

Why: the triggers of migration 0001 refuse UPDATE and DELETE, but whoever can switch triggers off (a superuser, a
restored dump, a file editor on SQLite) could still rewrite history quietly. With the chain, ``verify`` names the
first entry that was altered (its content no longer matches its hash), removed (a gap in ``seq`` or a broken link)
or inserted outside the audit path (no place in the chain, or a hash that does not fit). What it cannot see without
an outside anchor: entries cut off the end, or a forged tail whose hashes were all recomputed; keep the head that
``verify`` prints somewhere else (a report, a ticket) to close that gap.

How entries are chained:

* PostgreSQL: the ``audit_event_chain`` trigger of migration 0007 does it for every INSERT, whatever path writes
  (including the one-statement ingest). It first takes the transaction-scoped advisory lock ``CHAIN_LOCK``, then
  reads the head, so entries of concurrent transactions line up in one order without forking; the lock is held
  from the audit insert to commit, which is why every writer inserts its audit rows last. In READ COMMITTED each
  statement of the trigger function sees a fresh snapshot, so the head read after the lock includes the entry
  that the previous holder committed. A unique index on ``seq`` makes a fork impossible even if the lock were
  bypassed.
* SQLite: writes are already serialised (``BEGIN IMMEDIATE``), so ``append`` reads the head and computes the
  hashes here, in the same transaction.

The hashed bytes (``canonical``), the same in the trigger's SQL and here: the fields seq, at, actor, role, action,
kind, source_id, record_id, detail, prev_hash, each written as ``<octets>:<text>`` (``~`` for NULL) and joined
with ``|``, in UTF-8. ``at`` is ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC; ``detail`` is the JSON text exactly as
stored (read back with ``CAST(detail AS TEXT)``), so a rewrite of the JSON shows even when it means the same.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox.tables import audit_event

GENESIS = "0" * 64  # the prev_hash of the first entry
CHAIN_LOCK = 1839694099380554516  # pg_advisory_xact_lock key: first 8 bytes of sha256(b"credit-gateway:audit-chain")
FIELDS = ("at", "actor", "role", "action", "kind", "source_id", "record_id", "detail")


def at_text(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _field(value: str | None) -> str:
    return "~" if value is None else f"{len(value.encode())}:{value}"


def canonical(
    *,
    seq: int,
    at: dt.datetime,
    actor: str,
    role: str,
    action: str,
    kind: str | None,
    source_id: str | None,
    record_id: int | None,
    detail: str | None,
    prev_hash: str,
) -> bytes:
    parts = (
        str(seq),
        at_text(at),
        actor,
        role,
        action,
        kind,
        source_id,
        None if record_id is None else str(record_id),
        detail,
        prev_hash,
    )
    return "|".join(_field(p) for p in parts).encode()


def entry_hash(**entry: Any) -> str:
    return hashlib.sha256(canonical(**entry)).hexdigest()


def detail_text(detail: Any) -> str:
    """The JSON text the engine stores for ``detail`` (``outbox.database`` serialises with orjson too)."""
    return orjson.dumps(detail).decode()


def append(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write audit entries (keys among ``FIELDS``; ``at``, ``actor``, ``role``, ``action`` required) as the next
    links of the chain. Call it as the last write of the transaction (see the module notes on the lock)."""
    if not rows:
        return
    full = [{name: row.get(name) for name in FIELDS} for row in rows]
    if conn.dialect.name == "postgresql":
        conn.execute(sa.insert(audit_event), full)  # the trigger chains them
        return
    head = conn.execute(
        sa.select(audit_event.c.seq, audit_event.c.entry_hash)
        .where(audit_event.c.seq.is_not(None))
        .order_by(audit_event.c.seq.desc())
        .limit(1)
    ).first()
    seq, prev = (head.seq, head.entry_hash) if head is not None else (0, GENESIS)
    chained = []
    for row in full:
        seq += 1
        text = detail_text(row["detail"])
        digest = entry_hash(seq=seq, **{**row, "detail": text}, prev_hash=prev)
        chained.append({**row, "detail_text": text, "seq": seq, "prev_hash": prev, "entry_hash": digest})
        prev = digest
    # detail goes in as the very text that was hashed, not re-serialised on the way
    statement = sa.insert(audit_event).values(detail=sa.bindparam("detail_text", type_=sa.Text()))
    conn.execute(statement, [{k: v for k, v in r.items() if k != "detail"} for r in chained])


# -- reading and checking -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One place where the chain is broken; ``entry_id`` names the row to look at."""

    problem: str  # altered, removed, inserted
    entry_id: int | None
    seq: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Verdict:
    entries: int
    head_seq: int
    head_hash: str
    findings: list[Finding]

    @property
    def intact(self) -> bool:
        return not self.findings


def _stored(conn: Connection) -> Iterator[Any]:
    a = audit_event
    query = sa.select(
        a.c.id,
        a.c.seq,
        *(a.c[n] for n in FIELDS if n != "detail"),
        sa.cast(a.c.detail, sa.Text).label("detail"),
        a.c.prev_hash,
        a.c.entry_hash,
    ).order_by(a.c.seq.is_(None), a.c.seq, a.c.id)  # chain order, then rows outside the chain
    yield from conn.execution_options(stream_results=True, yield_per=2000).execute(query)


def verify(conn: Connection, *, limit: int = 20) -> Verdict:
    """Walk the chain from its first entry; report up to ``limit`` findings, the first one first."""
    findings: list[Finding] = []
    expected, prev_hash, prev_id, count = 1, GENESIS, None, 0
    for row in _stored(conn):
        count += 1
        if len(findings) >= limit:
            continue
        if row.seq is None:
            findings.append(
                Finding(
                    "inserted",
                    row.id,
                    None,
                    f"entry #{row.id} is not part of the chain: inserted without going through the audit path",
                )
            )
            continue
        if row.seq > expected:
            gap = f"seq {expected}" if row.seq == expected + 1 else f"seq {expected}..{row.seq - 1}"
            findings.append(
                Finding(
                    "removed", row.id, expected, f"entry {gap} was removed (just before entry #{row.id}, seq {row.seq})"
                )
            )
        elif row.prev_hash != prev_hash:
            before = f"entry #{prev_id}" if prev_id is not None else "the start"
            findings.append(
                Finding(
                    "altered",
                    prev_id,
                    row.seq - 1,
                    f"the chain breaks between {before} and entry "
                    f"#{row.id} (seq {row.seq}): {before} was altered or replaced, or #{row.id} "
                    "was inserted",
                )
            )
        content = {n: getattr(row, n) for n in FIELDS}
        recomputed = entry_hash(seq=row.seq, **content, prev_hash=row.prev_hash or "")
        if recomputed != row.entry_hash:
            findings.append(
                Finding(
                    "altered",
                    row.id,
                    row.seq,
                    f"entry #{row.id} (seq {row.seq}) was altered or inserted: its content does not match its hash",
                )
            )
        expected, prev_hash, prev_id = row.seq + 1, row.entry_hash or "", row.id
    return Verdict(count, expected - 1, prev_hash, findings)


def listing(
    conn: Connection,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The newest entries first, filtered; ``action`` ending in ``.`` or ``*`` matches a family (``delivery.``)."""
    a = audit_event
    query = sa.select(a.c.id, a.c.seq, *(a.c[n] for n in FIELDS)).order_by(a.c.seq.desc(), a.c.id.desc())
    if actor is not None:
        query = query.where(a.c.actor == actor)
    if action is not None:
        prefix = action.rstrip("*")
        query = query.where(
            a.c.action.startswith(prefix, autoescape=True)
            if prefix != action or action.endswith(".")
            else a.c.action == action
        )
    if since is not None:
        query = query.where(a.c.at >= since)
    if until is not None:
        query = query.where(a.c.at < until)
    return [dict(r._mapping) for r in conn.execute(query.limit(limit))]
