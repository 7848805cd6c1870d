"""Bearer API keys: who is calling, and may they do this?

Looked-up keys are cached for ``key_cache_seconds`` (default 30 s) so the hot ingest path does not pay a
database round trip per request; a revoked key therefore stops working within that window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from gateway.api.access import KEY_NAME
from gateway.api.problems import Problem
from gateway.services.actors import Actor
from gateway.services.keys import KeyCache
from schemas.enums import Kind

CHECKS = "credit-checks"  # a key "kind" that is not a record kind: may run credit checks (事前监管)


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str
    kinds: frozenset[Kind] | None  # None: every kind
    checks: bool = False  # a source key given the credit-checks kind (operators may always check)

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.role)

    def may_send(self, kind: Kind) -> bool:
        return self.role == "source" and (self.kinds is None or kind in self.kinds)

    def may_read(self, kind: Kind) -> bool:
        return self.role == "operator" or self.may_send(kind)


_UNAUTHORISED = {"WWW-Authenticate": 'Bearer realm="credit-gateway"'}


bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="an API key from `credit-gateway keys create` (source or operator role)",
)


async def authenticate(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)]
) -> Principal:
    """The caller, from the ``Authorization`` header (declared as bearer security so /docs can send a key)."""
    return await check_key(request)


async def check_key(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Problem(
            401,
            "unauthorised",
            "Authentication required",
            "send an API key as 'Authorization: Bearer <key>'",
            headers=_UNAUTHORISED,
        )
    cache: KeyCache = request.app.state.key_cache
    found, info = cache.cached(key.strip())
    if not found:
        info = await run_in_threadpool(cache.get, key.strip())
    if info is None or info.revoked_at is not None:
        raise Problem(
            401, "unauthorised", "Unknown API key", "the API key is unknown or revoked", headers=_UNAUTHORISED
        )
    kinds = None if info.kinds is None else frozenset(Kind.from_code(k) for k in info.kinds if k != CHECKS)
    setattr(request.state, KEY_NAME, info.name)  # for the access log: the key's name, never the key
    return Principal(info.name, info.role, kinds, checks=info.kinds is not None and CHECKS in info.kinds)


def forbid(principal: Principal, what: str) -> Problem:
    allowed = "every kind" if principal.kinds is None else ", ".join(sorted(k.value for k in principal.kinds))
    return Problem(
        403,
        "forbidden",
        "Not allowed for this key",
        f"key {principal.name!r} (role {principal.role}, kinds: {allowed}) may not {what}",
    )
