"""People who sign in to the console, their sessions and failed sign-ins: the rows, each change audited.

The rules (password hashing, lockout, idle expiry, roles) live in ``gateway.people``; this module only stores
what it is handed. A session is found by the SHA-256 of its token, so a copy of the database opens no session;
failed sign-ins are kept by the SHA-256 of the name tried, so a password typed into the name field is not kept
either. Everything is in the database so lockout and sign-out hold across every process.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox import audit, errors
from outbox.database import Database
from outbox.ingest import Actor
from outbox.tables import person, person_session, sign_in_failure


class PersonExists(errors.StoreError):
    """A person with that name exists already."""


class PersonNotFound(errors.StoreError):
    """No person with that name."""


@dataclass(frozen=True, slots=True)
class PersonRow:
    id: int
    name: str
    role: str
    department: str | None
    password_hash: str
    created_at: dt.datetime
    password_changed_at: dt.datetime
    disabled_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: int
    person: PersonRow
    created_at: dt.datetime
    last_seen_at: dt.datetime


def _person(m: Any) -> PersonRow:
    return PersonRow(
        m["id"],
        m["name"],
        m["role"],
        m["department"],
        m["password_hash"],
        m["created_at"],
        m["password_changed_at"],
        m["disabled_at"],
    )


def _entry(actor: Actor, action: str, now: dt.datetime, **detail: Any) -> dict[str, Any]:
    return {"at": now, "actor": actor.name, "role": actor.role, "action": action, "detail": detail}


def _by_name(conn: Connection, name: str, *, lock: bool = False) -> PersonRow:
    query = sa.select(person).where(person.c.name == name)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise PersonNotFound(f"no person named {name!r}")
    return _person(row._mapping)


def _end_sessions(conn: Connection, person_id: int, now: dt.datetime) -> int:
    return conn.execute(
        sa.update(person_session)
        .where(person_session.c.person_id == person_id, person_session.c.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount


class PeopleStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def count(self) -> int:
        return int(self.db.read(lambda c: c.execute(sa.select(sa.func.count()).select_from(person)).scalar_one()))

    def create(
        self,
        *,
        name: str,
        role: str,
        department: str | None,
        password_hash: str,
        actor: Actor,
        now: dt.datetime,
        only_if_none: bool = False,
    ) -> PersonRow | None:
        """The new person; None when ``only_if_none`` and someone exists already (the demo admin's first start)."""

        def work(conn: Connection) -> PersonRow | None:
            if only_if_none and conn.execute(sa.select(person.c.id).limit(1)).first() is not None:
                return None
            if conn.execute(sa.select(person.c.id).where(person.c.name == name)).first() is not None:
                raise PersonExists(f"a person named {name!r} exists already")
            values = {
                "name": name,
                "role": role,
                "department": department,
                "password_hash": password_hash,
                "created_at": now,
                "password_changed_at": now,
            }
            person_id = conn.execute(sa.insert(person).values(**values).returning(person.c.id)).scalar_one()
            audit.append(conn, [_entry(actor, "person.create", now, name=name, role=role, department=department)])
            return PersonRow(person_id, name, role, department, password_hash, now, now, None)

        if only_if_none and self.db.is_postgres:  # two first starts at once create one demo admin

            def locked(conn: Connection) -> PersonRow | None:
                conn.execute(sa.text("LOCK TABLE person IN SHARE ROW EXCLUSIVE MODE"))
                return work(conn)

            return self.db.transact(locked)
        return self.db.transact(work)

    def find(self, name: str) -> PersonRow | None:
        try:
            return self.db.read(lambda c: _by_name(c, name))
        except PersonNotFound:
            return None

    def everyone(self) -> list[PersonRow]:
        return self.db.read(
            lambda c: [_person(r._mapping) for r in c.execute(sa.select(person).order_by(person.c.name))]
        )

    def disable(self, *, name: str, actor: Actor, now: dt.datetime) -> tuple[PersonRow, int]:
        """Disable a person and end every session of theirs; returns the person and how many sessions ended."""

        def work(conn: Connection) -> tuple[PersonRow, int]:
            found = _by_name(conn, name, lock=True)
            if found.disabled_at is None:
                conn.execute(sa.update(person).where(person.c.id == found.id).values(disabled_at=now))
            ended = _end_sessions(conn, found.id, now)
            audit.append(conn, [_entry(actor, "person.disable", now, name=name, sessions_ended=ended)])
            return _by_name(conn, name), ended

        return self.db.transact(work)

    def set_password(self, *, name: str, password_hash: str, actor: Actor, now: dt.datetime) -> int:
        """A new password (an admin's reset); every session of theirs ends. Returns how many did."""

        def work(conn: Connection) -> int:
            found = _by_name(conn, name, lock=True)
            conn.execute(
                sa.update(person)
                .where(person.c.id == found.id)
                .values(password_hash=password_hash, password_changed_at=now)
            )
            ended = _end_sessions(conn, found.id, now)
            audit.append(conn, [_entry(actor, "person.reset_password", now, name=name, sessions_ended=ended)])
            return ended

        return self.db.transact(work)

    def rehash(self, *, person_id: int, old_hash: str, new_hash: str) -> None:
        """Store a stronger hash of the same password (after a sign-in); not an action, so not audited."""
        self.db.transact(
            lambda c: c.execute(
                sa.update(person)
                .where(person.c.id == person_id, person.c.password_hash == old_hash)
                .values(password_hash=new_hash)
            )
        )

    # -- sign-in failures (the lockout's memory) ---------------------------------------------------------------

    def failures_since(self, name_hash: str, since: dt.datetime) -> list[dt.datetime]:
        query = (
            sa.select(sign_in_failure.c.at)
            .where(sign_in_failure.c.name_hash == name_hash, sign_in_failure.c.at >= since)
            .order_by(sign_in_failure.c.at)
        )
        return self.db.read(lambda c: list(c.execute(query).scalars()))

    def record_failure(
        self, *, name_hash: str, now: dt.datetime, forget_before: dt.datetime, locked: Actor | None
    ) -> None:
        """Remember a failed sign-in (and forget the ones too old to matter); ``locked`` names who is now locked
        out, for the audit log."""

        def work(conn: Connection) -> None:
            conn.execute(
                sa.delete(sign_in_failure).where(
                    sign_in_failure.c.name_hash == name_hash, sign_in_failure.c.at < forget_before
                )
            )
            conn.execute(sa.insert(sign_in_failure).values(name_hash=name_hash, at=now))
            if locked is not None:
                audit.append(conn, [_entry(locked, "person.locked", now)])

        self.db.transact(work)

    def clear_failures(self, name_hash: str) -> None:
        self.db.transact(
            lambda c: c.execute(sa.delete(sign_in_failure).where(sign_in_failure.c.name_hash == name_hash))
        )

    # -- sessions ------------------------------------------------------------------------------------------------

    def open_session(self, *, found: PersonRow, token_hash: str, now: dt.datetime) -> SessionRow:
        def work(conn: Connection) -> SessionRow:
            session_id = conn.execute(
                sa.insert(person_session)
                .values(token_hash=token_hash, person_id=found.id, created_at=now, last_seen_at=now)
                .returning(person_session.c.id)
            ).scalar_one()
            audit.append(conn, [_entry(Actor(found.name, found.role), "person.sign_in", now, session=session_id)])
            return SessionRow(session_id, found, now, now)

        return self.db.transact(work)

    def session(self, token_hash: str) -> SessionRow | None:
        """The open session with this token hash (with its person), or None; expiry is the caller's rule."""
        query = (
            sa.select(
                person_session.c.id.label("session_id"),
                person_session.c.created_at.label("session_created_at"),
                person_session.c.last_seen_at,
                person,
            )
            .join(person, person.c.id == person_session.c.person_id)
            .where(person_session.c.token_hash == token_hash, person_session.c.revoked_at.is_(None))
        )
        row = self.db.read(lambda c: c.execute(query).first())
        if row is None:
            return None
        m = row._mapping
        return SessionRow(m["session_id"], _person(m), m["session_created_at"], m["last_seen_at"])

    def touch(self, *, session_id: int, now: dt.datetime) -> None:
        self.db.transact(
            lambda c: c.execute(
                sa.update(person_session)
                .where(person_session.c.id == session_id, person_session.c.last_seen_at < now)
                .values(last_seen_at=now)
            )
        )

    def end_session(self, *, session_id: int, actor: Actor, now: dt.datetime, why: str) -> bool:
        """Revoke one session (sign-out, idle expiry); True if it was open."""

        def work(conn: Connection) -> bool:
            ended = conn.execute(
                sa.update(person_session)
                .where(person_session.c.id == session_id, person_session.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
            if ended:
                audit.append(conn, [_entry(actor, "person.sign_out", now, session=session_id, why=why)])
            return bool(ended)

        return self.db.transact(work)
