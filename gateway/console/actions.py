"""Every change the console makes, in one place, each one call of the application layer (``gateway.services``):
the service the API router (or the CLI, for keys and people) calls for the same action, with the signed-in person
as the actor, so the audit entry is the same entry. Pages translate forms to these calls and the answers back.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.concurrency import run_in_threadpool

from gateway.people import People, Person
from gateway.services.actors import Actor
from gateway.services.bundle import Services
from outbox.keys import KeyInfo
from schemas.periods import Period


class TargetDisabled(Exception):
    """Reconciliation asked of a target that is not enabled (the API's 409)."""


# -- dead letters (services.operations, as POST /dead-letters/requeue and /cancel) --------------------------------


async def requeue(services: Services, actor: Actor, ids: list[int]) -> int:
    return await run_in_threadpool(services.operations.requeue, actor, ids)


async def cancel(services: Services, actor: Actor, ids: list[int], reason: str | None) -> int:
    return await run_in_threadpool(services.operations.cancel, actor, ids, reason)


# -- targets (POST /targets/{t}/pause, /resume, /replay, /reconcile) ---------------------------------------------


async def pause(services: Services, actor: Actor, target: str, reason: str | None) -> None:
    await run_in_threadpool(services.operations.pause, actor, target, reason)


async def resume(services: Services, actor: Actor, target: str) -> None:
    await run_in_threadpool(services.operations.resume, actor, target)


async def replay(services: Services, actor: Actor, target: str, since: dt.date, dry_run: bool) -> list[dict[str, Any]]:
    return await run_in_threadpool(services.operations.replay, actor, target, since, dry_run)


async def reconcile(services: Services, actor: Actor, target: str) -> dict[str, Any]:
    try:
        return await run_in_threadpool(lambda: services.housekeeping.reconcile(target, actor=actor))
    except KeyError:
        raise TargetDisabled(target) from None


# -- reports (POST /reports) -----------------------------------------------------------------------------------


async def create_report(
    services: Services, actor: Actor, period: Period, as_of: dt.date | None
) -> tuple[int, dict[str, Any]]:
    return await run_in_threadpool(lambda: services.housekeeping.create_report(period, actor=actor, as_of=as_of))


# -- API keys (services.keys, as `credit-gateway keys create|revoke`) ---------------------------------------------


async def create_key(
    services: Services, actor: Actor, name: str, role: str, kinds: tuple[str, ...] | None
) -> tuple[str, KeyInfo]:
    return await run_in_threadpool(lambda: services.keys.create(actor, name=name, role=role, kinds=kinds))


async def revoke_key(services: Services, actor: Actor, prefix: str) -> int:
    return await run_in_threadpool(services.keys.revoke, actor, prefix)


# -- people (services.people(), as `credit-gateway users`) ----------------------------------------------------------


async def create_person(
    people: People, actor: Actor, name: str, role: str, department: str | None, password: str
) -> Person:
    return await run_in_threadpool(
        lambda: people.create(name=name, role=role, password=password, department=department, actor=actor)
    )


async def disable_person(people: People, actor: Actor, name: str) -> int:
    _, ended = await run_in_threadpool(lambda: people.disable(name, actor=actor))
    return ended


async def reset_password(people: People, actor: Actor, name: str, password: str) -> int:
    return await run_in_threadpool(lambda: people.reset_password(name, password, actor=actor))


# -- reads that must show what the API shows ---------------------------------------------------------------------


async def target_status(services: Services) -> list[dict[str, Any]]:
    """Each target's status as GET /api/v1/targets answers it (services.targets: enabled, paused, counts, health)."""
    return await run_in_threadpool(services.targets.status)


async def dead_letters(services: Services, **filters: Any) -> tuple[int, list[dict[str, Any]]]:
    return await run_in_threadpool(lambda: services.operations.dead_letters(**filters))
