"""People: who may sign in to the console, and how (passwords, lockout, sessions, roles). Plain values in and out.

The console's login page, its session cookie and its forms call this; so does ``credit-gateway users``. Rules:

* Passwords (at least 12 characters) are hashed with argon2id (argon2-cffi's defaults: salted, memory-hard); a
  stronger default later rehashes on the next sign-in. The clear password is never stored, logged or audited.
* Five failed sign-ins for one name within 15 minutes lock that name for 15 minutes (counted in the database, so
  in every process). A name nobody has fails the same way, with the same message and after the same argon2 work
  as a wrong password, so the form does not tell which names exist.
* A session is a random token given to the browser; only its SHA-256 is stored. It ends after 8 hours without use,
  at sign-out, and when the person is disabled or their password reset. Its CSRF token is derived from the session
  token (HMAC), so every form of one session carries the same token and nothing more needs storing.
* Roles: ``viewer`` reads; ``operator`` also acts on records, deliveries, targets, reports, checks and articles;
  ``admin`` also manages people and API keys.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import logging
import secrets
import unicodedata
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.clock import Clock
from outbox.ingest import Actor
from outbox.people import PeopleStore, PersonRow, SessionRow

MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length; this keeps one request from costing much more than another
IDLE = dt.timedelta(hours=8)
TOUCH_EVERY = dt.timedelta(minutes=1)
LOCK_AFTER = 5
LOCK_WINDOW = dt.timedelta(minutes=15)
LOCK_FOR = dt.timedelta(minutes=15)
DEMO_ADMIN = "admin"
SYSTEM = Actor("system", "system")

log = logging.getLogger("gateway.people")


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def may_act(self) -> bool:
        """Actions on records, deliveries, targets, reports, checks and articles."""
        return self in (Role.OPERATOR, Role.ADMIN)

    @property
    def may_administer(self) -> bool:
        """People and API keys."""
        return self is Role.ADMIN


class PeopleError(ValueError):
    """A value refused, naming the field: ``field``, and a message saying the rule."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class SignInRefused(Exception):
    """Sign-in refused; ``reason`` is ``invalid`` (name or password wrong, or disabled) or ``locked``."""

    def __init__(self, reason: str, locked_until: dt.datetime | None = None) -> None:
        message = (
            "用户名或密码错误" if reason == "invalid" else "登录失败次数过多，该用户名已暂时锁定，请 15 分钟后再试"
        )
        super().__init__(message)
        self.reason = reason
        self.locked_until = locked_until


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    name: str
    role: Role
    department: str | None
    created_at: dt.datetime
    disabled_at: dt.datetime | None

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.role.value)


@dataclass(frozen=True, slots=True)
class Session:
    id: int
    person: Person
    csrf_token: str
    created_at: dt.datetime
    last_seen_at: dt.datetime


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str  # for the cookie; shown nowhere else and never stored
    session: Session


def _public(row: PersonRow) -> Person:
    return Person(row.id, row.name, Role(row.role), row.department, row.created_at, row.disabled_at)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"credit-gateway csrf", hashlib.sha256).hexdigest()


def check_name(name: str) -> str:
    if not name or name != name.strip():
        raise PeopleError("name", "must not be empty or start or end with a space")
    if len(name) > 64:
        raise PeopleError("name", f"at most 64 characters (got {len(name)})")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise PeopleError("name", "must not contain control characters")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise PeopleError("password", f"at least {MIN_PASSWORD} characters (got {len(password)})")
    if len(password) > MAX_PASSWORD:
        raise PeopleError("password", f"at most {MAX_PASSWORD} characters")
    return password


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise PeopleError("role", f"one of viewer, operator, admin (got {role!r})") from None


def locked_until(failures: list[dt.datetime], now: dt.datetime) -> dt.datetime | None:
    """When the lock that ``failures`` (ascending) put on a name ends, if it has not ended by ``now``."""
    until = None
    for i in range(LOCK_AFTER - 1, len(failures)):
        if failures[i] - failures[i - LOCK_AFTER + 1] <= LOCK_WINDOW:
            until = failures[i] + LOCK_FOR
    return until if until is not None and until > now else None


class People:
    def __init__(
        self,
        store: PeopleStore,
        clock: Clock,
        *,
        hasher: PasswordHasher | None = None,
        idle: dt.timedelta = IDLE,
    ) -> None:
        self.store = store
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        self.idle = idle
        self._dummy_hash: str | None = None

    # -- administration (the CLI's `users`, the console's /console/users) ----------------------------------------

    def create(self, *, name: str, role: str, password: str, department: str | None, actor: Actor) -> Person:
        chosen = check_role(role)
        check_name(name)
        check_password(password)
        if department is not None and len(department) > 64:
            raise PeopleError("department", f"at most 64 characters (got {len(department)})")
        row = self.store.create(
            name=name,
            role=chosen.value,
            department=department,
            password_hash=self.hasher.hash(password),
            actor=actor,
            now=self.clock.now(),
        )
        assert row is not None
        return _public(row)

    def everyone(self) -> list[Person]:
        return [_public(r) for r in self.store.everyone()]

    def disable(self, name: str, *, actor: Actor) -> tuple[Person, int]:
        """Disable ``name`` and end their sessions; returns the person and how many sessions ended."""
        row, ended = self.store.disable(name=name, actor=actor, now=self.clock.now())
        return _public(row), ended

    def reset_password(self, name: str, password: str, *, actor: Actor) -> int:
        """Set a new password; every session of the person ends. Returns how many did."""
        check_password(password)
        return self.store.set_password(
            name=name, password_hash=self.hasher.hash(password), actor=actor, now=self.clock.now()
        )

    def ensure_demo_admin(self) -> tuple[str, str] | None:
        """For the ``serve --sandbox`` demo: when nobody exists yet, an admin with a fresh random password,
        returned (name, password) once to be printed; None when people exist already."""
        if self.store.count():  # the usual case: no argon2 work at every start
            return None
        password = secrets.token_urlsafe(12)
        row = self.store.create(
            name=DEMO_ADMIN,
            role=Role.ADMIN.value,
            department=None,
            password_hash=self.hasher.hash(password),
            actor=SYSTEM,
            now=self.clock.now(),
            only_if_none=True,
        )
        return None if row is None else (row.name, password)

    # -- signing in and sessions (the console) -------------------------------------------------------------------

    def sign_in(self, name: str, password: str) -> SignedIn:
        if self._dummy_hash is None:  # made before any timing matters: the first unknown name is not slower
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        now = self.clock.now()
        name_hash = _digest(name)
        failures = self.store.failures_since(name_hash, now - LOCK_WINDOW - LOCK_FOR)
        until = locked_until(failures, now)
        if until is not None:
            raise SignInRefused("locked", until)
        found = self.store.find(name) if 0 < len(name) <= 64 else None
        usable = found is not None and found.disabled_at is None
        if not self._verify(found.password_hash if found is not None else None, password) or not usable:
            locked_now = locked_until([*failures, now], now)
            lock_entry = None
            if locked_now is not None:  # this failure starts a lock: audited (the name only if it exists)
                lock_entry = Actor(found.name if found is not None else "(unknown)", "system")
            self.store.record_failure(
                name_hash=name_hash, now=now, forget_before=now - LOCK_WINDOW - LOCK_FOR, locked=lock_entry
            )
            if lock_entry is not None and locked_now is not None:  # the name only if it exists: never a password
                fields = {"person": lock_entry.name, "until": locked_now.isoformat(), "failures": len(failures) + 1}
                log.warning(
                    "person_locked person=%s until=%s failures=%d",
                    *fields.values(),
                    extra={"event": "person_locked", "fields": fields},
                )
            raise SignInRefused("invalid")
        assert found is not None
        if failures:
            self.store.clear_failures(name_hash)
        if self.hasher.check_needs_rehash(found.password_hash):
            self.store.rehash(person_id=found.id, old_hash=found.password_hash, new_hash=self.hasher.hash(password))
        token = secrets.token_urlsafe(32)
        opened = self.store.open_session(found=found, token_hash=_digest(token), now=now)
        return SignedIn(token, self._session(opened, token))

    def session(self, token: str) -> Session | None:
        """The person behind a session token, if the session is open and was used within the idle limit; marks it
        used now. An idle session found here is ended."""
        if not token:
            return None
        row = self.store.session(_digest(token))
        if row is None or row.person.disabled_at is not None:
            return None
        now = self.clock.now()
        if now - row.last_seen_at >= self.idle:
            self.store.end_session(session_id=row.id, actor=SYSTEM, now=now, why="idle")
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:  # not a write per page view; idle expiry is to the minute
            self.store.touch(session_id=row.id, now=now)
        return self._session(row, token)

    def sign_out(self, token: str) -> bool:
        row = self.store.session(_digest(token)) if token else None
        if row is None:
            return False
        actor = Actor(row.person.name, row.person.role)
        return self.store.end_session(session_id=row.id, actor=actor, now=self.clock.now(), why="sign-out")

    @staticmethod
    def csrf_ok(session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(session.csrf_token, token)

    def _session(self, row: SessionRow, token: str) -> Session:
        return Session(row.id, _public(row.person), csrf_for(token), row.created_at, row.last_seen_at)

    def _verify(self, stored: str | None, password: str) -> bool:
        """argon2 verification; against a throwaway hash when there is nobody (or the password is too long to be
        anyone's), so that a wrong name costs the same time as a wrong password."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        genuine = stored if stored is not None and len(password) <= MAX_PASSWORD else None
        try:
            return self.hasher.verify(genuine or self._dummy_hash, password[:MAX_PASSWORD]) and genuine is not None
        except (VerificationError, InvalidHashError):
            return False
