"""API keys: created once and shown once, stored only as a SHA-256 digest.

A key is 32 random bytes (256 bits), so a fast unsalted digest is enough: nobody can search that space, and a
slow password hash (bcrypt, argon2) would cost every request milliseconds for no gain. The digest is looked up
through a unique index; the first characters are kept in clear (``key_prefix``) so operators can tell keys apart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox import audit
from outbox.tables import api_key

KEY_PREFIX = "cgk_"
ROLES = ("source", "operator")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: int
    name: str
    role: str
    kinds: tuple[str, ...] | None  # None: every kind
    prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create(
    conn: Connection,
    *,
    name: str,
    role: str,
    kinds: tuple[str, ...] | None,
    actor: str,
    now: dt.datetime,
    actor_role: str = "operator",
) -> tuple[str, KeyInfo]:
    """A new key (returned in clear exactly once) and what is stored of it."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key = new_key()
    prefix = key[: len(KEY_PREFIX) + 6]
    key_id = conn.execute(
        sa.insert(api_key)
        .values(
            name=name,
            role=role,
            kinds=list(kinds) if kinds else None,
            key_hash=digest(key),
            key_prefix=prefix,
            created_at=now,
        )
        .returning(api_key.c.id)
    ).scalar_one()
    detail = {"key_id": key_id, "name": name, "role": role, "kinds": list(kinds) if kinds else None}
    audit.append(conn, [{"at": now, "actor": actor, "role": actor_role, "action": "key.create", "detail": detail}])
    return key, KeyInfo(key_id, name, role, kinds, prefix, now, None)


def lookup(conn: Connection, key: str) -> KeyInfo | None:
    row = conn.execute(sa.select(api_key).where(api_key.c.key_hash == digest(key))).one_or_none()
    return None if row is None else _info(row)


def list_keys(conn: Connection) -> list[KeyInfo]:
    return [_info(r) for r in conn.execute(sa.select(api_key).order_by(api_key.c.id))]


def revoke(conn: Connection, *, prefix: str, actor: str, now: dt.datetime, actor_role: str = "operator") -> int:
    count = conn.execute(
        sa.update(api_key).where(api_key.c.key_prefix == prefix, api_key.c.revoked_at.is_(None)).values(revoked_at=now)
    ).rowcount
    if count:
        audit.append(
            conn,
            [{"at": now, "actor": actor, "role": actor_role, "action": "key.revoke", "detail": {"prefix": prefix}}],
        )
    return count


def _info(row: sa.Row[tuple[object, ...]]) -> KeyInfo:
    m = row._mapping
    kinds = m["kinds"]
    return KeyInfo(
        m["id"],
        m["name"],
        m["role"],
        tuple(kinds) if kinds else None,
        m["key_prefix"],
        m["created_at"],
        m["revoked_at"],
    )
