"""People who sign in (the service the console and `credit-gateway users` use), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from gateway.clock import ManualClock
from gateway.people import People, PeopleError, Role, SignInRefused, locked_until
from outbox import tables
from outbox.database import Database
from outbox.ingest import Actor
from outbox.people import PeopleStore, PersonExists, PersonNotFound
from tests.conftest import NOW

ADMIN = Actor("root-admin", "cli")
PASSWORD = "correct horse battery 马"


class CountingHasher(PasswordHasher):
    """Cheap parameters for speed, and a count of verifications (the work a sign-in does)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified += 1
        return super().verify(hash, password)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def people(db: Database, clock: ManualClock) -> People:
    return People(PeopleStore(db), clock, hasher=CountingHasher())


def audit_actions(db: Database) -> list[tuple[str, str]]:
    a = tables.audit_event
    return [(r.action, r.actor) for r in db.read(lambda c: c.execute(sa.select(a).order_by(a.c.seq)).all())]


def test_create_list_and_refusals_name_the_field(people: People) -> None:
    made = people.create(name="李四", role="operator", password=PASSWORD, department="局信用办", actor=ADMIN)
    assert (made.name, made.role, made.department, made.disabled_at) == ("李四", Role.OPERATOR, "局信用办", None)
    assert [p.name for p in people.everyone()] == ["李四"]
    with pytest.raises(PersonExists):
        people.create(name="李四", role="viewer", password=PASSWORD, department=None, actor=ADMIN)
    with pytest.raises(PeopleError, match=r"^password: at least 12 characters \(got 11\)"):
        people.create(name="王五", role="viewer", password="x" * 11, department=None, actor=ADMIN)
    with pytest.raises(PeopleError, match=r"^role: one of viewer, operator, admin"):
        people.create(name="王五", role="boss", password=PASSWORD, department=None, actor=ADMIN)
    with pytest.raises(PeopleError, match=r"^name:"):
        people.create(name=" 王五", role="viewer", password=PASSWORD, department=None, actor=ADMIN)
    assert [p.name for p in people.everyone()] == ["李四"]


def test_sign_in_opens_a_session_with_a_csrf_token(people: People, db: Database) -> None:
    people.create(name="李四", role="viewer", password=PASSWORD, department=None, actor=ADMIN)
    signed = people.sign_in("李四", PASSWORD)
    found = people.session(signed.token)
    assert found is not None and (found.person.name, found.person.role) == ("李四", Role.VIEWER)
    assert not found.person.role.may_act and Role.OPERATOR.may_act and not Role.OPERATOR.may_administer
    assert People.csrf_ok(found, signed.session.csrf_token) and not People.csrf_ok(found, "0" * 64)
    assert not People.csrf_ok(found, None)
    assert people.session(signed.token + "x") is None
    stored = db.read(lambda c: c.execute(sa.select(tables.person_session.c.token_hash)).scalars().all())
    assert signed.token not in stored and len(stored[0]) == 64
    assert people.sign_out(signed.token)
    assert people.session(signed.token) is None
    assert ("person.sign_in", "李四") in audit_actions(db) and ("person.sign_out", "李四") in audit_actions(db)


def test_wrong_passwords_lock_the_name_for_15_minutes(people: People, clock: ManualClock, db: Database) -> None:
    people.create(name="李四", role="operator", password=PASSWORD, department=None, actor=ADMIN)
    for _ in range(5):
        with pytest.raises(SignInRefused) as refused:
            people.sign_in("李四", "wrong password!!")
        assert refused.value.reason == "invalid"
        clock.advance(dt.timedelta(minutes=2))
    with pytest.raises(SignInRefused) as refused:
        people.sign_in("李四", PASSWORD)  # right password, but locked
    assert refused.value.reason == "locked"
    assert refused.value.locked_until == NOW + dt.timedelta(minutes=8 + 15)
    # the lock is in the database: another process (another engine, another service) sees it
    other_db = Database(str(db.engine.url.render_as_string(hide_password=False)))
    try:
        with pytest.raises(SignInRefused, match="锁定"):
            People(PeopleStore(other_db), clock, hasher=CountingHasher()).sign_in("李四", PASSWORD)
    finally:
        other_db.dispose()
    clock.set(NOW + dt.timedelta(minutes=8 + 15))
    assert people.session(people.sign_in("李四", PASSWORD).token) is not None
    assert ("person.locked", "李四") in audit_actions(db)


def test_failures_spread_over_more_than_15_minutes_do_not_lock(people: People, clock: ManualClock) -> None:
    people.create(name="李四", role="operator", password=PASSWORD, department=None, actor=ADMIN)
    for _ in range(8):
        with pytest.raises(SignInRefused, match="用户名或密码错误"):
            people.sign_in("李四", "wrong password!!")
        clock.advance(dt.timedelta(minutes=4))
    assert people.sign_in("李四", PASSWORD).token


def test_an_unknown_name_fails_like_a_wrong_password(people: People) -> None:
    people.create(name="李四", role="operator", password=PASSWORD, department=None, actor=ADMIN)
    hasher = people.hasher
    assert isinstance(hasher, CountingHasher)
    people.sign_in("李四", PASSWORD)  # warms up the throwaway hash
    outcomes = []
    for name in ("李四", "nobody-here"):
        before = hasher.verified
        with pytest.raises(SignInRefused) as refused:
            people.sign_in(name, "wrong password!!")
        outcomes.append((refused.value.reason, str(refused.value), hasher.verified - before))
    assert outcomes[0] == outcomes[1] == ("invalid", "用户名或密码错误", 1)
    for _ in range(4):
        with pytest.raises(SignInRefused):
            people.sign_in("nobody-here", "wrong password!!")
    with pytest.raises(SignInRefused) as refused:
        people.sign_in("nobody-here", "wrong password!!")
    assert refused.value.reason == "locked"  # as a real name would be


def test_disable_ends_sessions_and_refuses_sign_in(people: People, db: Database) -> None:
    people.create(name="李四", role="operator", password=PASSWORD, department=None, actor=ADMIN)
    first, second = people.sign_in("李四", PASSWORD), people.sign_in("李四", PASSWORD)
    person, ended = people.disable("李四", actor=ADMIN)
    assert person.disabled_at == NOW and ended == 2
    assert people.session(first.token) is None and people.session(second.token) is None
    with pytest.raises(SignInRefused, match="用户名或密码错误"):
        people.sign_in("李四", PASSWORD)
    with pytest.raises(PersonNotFound):
        people.disable("nobody", actor=ADMIN)
    assert ("person.disable", "root-admin") in audit_actions(db)


def test_reset_password_ends_sessions(people: People) -> None:
    people.create(name="李四", role="operator", password=PASSWORD, department=None, actor=ADMIN)
    signed = people.sign_in("李四", PASSWORD)
    assert people.reset_password("李四", "a brand new passphrase", actor=ADMIN) == 1
    assert people.session(signed.token) is None
    with pytest.raises(SignInRefused):
        people.sign_in("李四", PASSWORD)
    assert people.sign_in("李四", "a brand new passphrase").token
    with pytest.raises(PeopleError, match=r"^password"):
        people.reset_password("李四", "short", actor=ADMIN)


def test_sessions_end_after_8_hours_idle(people: People, clock: ManualClock) -> None:
    people.create(name="李四", role="viewer", password=PASSWORD, department=None, actor=ADMIN)
    signed = people.sign_in("李四", PASSWORD)
    for _ in range(3):  # used every 7 hours: stays open
        clock.advance(dt.timedelta(hours=7))
        assert people.session(signed.token) is not None
    clock.advance(dt.timedelta(hours=8))
    assert people.session(signed.token) is None
    clock.advance(dt.timedelta(minutes=-1))
    assert people.session(signed.token) is None  # ended for good, not just out of date


def test_the_demo_admin_is_made_once(people: People) -> None:
    made = people.ensure_demo_admin()
    assert made is not None
    name, password = made
    assert len(password) >= 12
    assert people.session(people.sign_in(name, password).token) is not None
    assert people.ensure_demo_admin() is None


def test_passwords_are_never_stored_or_logged_in_clear(
    people: People, db: Database, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # statements and their parameters
    try:
        people.create(name="李四", role="admin", password=PASSWORD, department=None, actor=ADMIN)
        people.sign_in("李四", PASSWORD)
        with pytest.raises(SignInRefused):
            people.sign_in("李四", "another secret value")
        people.reset_password("李四", "the second password", actor=ADMIN)
        demo = people.ensure_demo_admin()
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    assert demo is None
    with pytest.raises(SignInRefused):  # a password typed as the name: looked up, but not kept (SQL echo aside)
        people.sign_in("another secret value", PASSWORD)
    secrets = [PASSWORD, "another secret value", "the second password"]
    assert any("INSERT INTO person" in r.getMessage() for r in caplog.records)  # the log did capture statements
    logged = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    dumped = dump(db)
    assert "$argon2id$" in dumped
    for secret in secrets:
        assert secret not in logged and secret not in dumped
    if db_url.startswith("sqlite"):  # the file itself, write-ahead log included
        path = Path(db_url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert all(s.encode() not in raw for s in secrets)


def dump(db: Database) -> str:
    def read(conn: sa.Connection) -> str:
        return "\n".join(repr(row) for table in tables.metadata.sorted_tables for row in conn.execute(sa.select(table)))

    return db.read(read)


def test_locked_until_is_15_minutes_from_the_fifth_failure_in_15_minutes() -> None:
    t: list[Any] = [NOW + dt.timedelta(minutes=m) for m in (0, 1, 2, 3, 15)]
    assert locked_until(t, NOW + dt.timedelta(minutes=16)) == NOW + dt.timedelta(minutes=30)
    assert locked_until(t, NOW + dt.timedelta(minutes=30)) is None
    assert locked_until(t[:4], NOW + dt.timedelta(minutes=16)) is None
    spread = [NOW + dt.timedelta(minutes=m) for m in (0, 1, 2, 3, 16)]
    assert locked_until(spread, NOW + dt.timedelta(minutes=16)) is None


def test_a_session_is_marked_used_at_most_once_a_minute(people: People, clock: ManualClock, db: Database) -> None:
    people.create(name="李四", role="viewer", password=PASSWORD, department=None, actor=ADMIN)
    signed = people.sign_in("李四", PASSWORD)

    def last_seen() -> Any:
        return db.read(lambda c: c.execute(sa.select(tables.person_session.c.last_seen_at)).scalar_one())

    clock.advance(dt.timedelta(seconds=30))
    assert people.session(signed.token) is not None and last_seen() == NOW
    clock.advance(dt.timedelta(seconds=31))
    assert people.session(signed.token) is not None and last_seen() == NOW + dt.timedelta(seconds=61)
