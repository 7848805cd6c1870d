"""Every change the console makes, in one place, each calling exactly what the API router (or the CLI, for keys and
people) calls for the same action, with the signed-in person as the actor: the audit entry is the same entry.

When the application layer's services land, this is the one file to re-point. Reads that must follow the API
(target health) go through the API's own function too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from gateway.api import targets as api_targets
from gateway.api.auth import Principal
from gateway.clock import SHANGHAI
from gateway.people import People, Person
from gateway.reports.periods import Period
from gateway.services import Services
from outbox.ingest import Actor
from outbox.keys import KeyInfo


class TargetDisabled(Exception):
    """Reconciliation asked of a target that is not enabled (the API's 409)."""


# -- dead letters (the API's POST /dead-letters/requeue and /cancel) ---------------------------------------------


async def requeue(services: Services, actor: Actor, ids: list[int]) -> int:
    count = await run_in_threadpool(services.store.requeue, ids=ids, actor=actor, now=services.clock.now())
    if services.worker is not None:
        services.worker.wake(services.clients_names())
    return int(count)


async def cancel(services: Services, actor: Actor, ids: list[int], reason: str | None) -> int:
    count = await run_in_threadpool(
        services.store.cancel, ids=ids, actor=actor, now=services.clock.now(), reason=reason
    )
    return int(count)


# -- targets (POST /targets/{t}/pause, /resume, /replay, /reconcile) ---------------------------------------------


async def pause(services: Services, actor: Actor, target: str, reason: str | None) -> None:
    await run_in_threadpool(
        services.store.set_paused, target=target, paused=True, reason=reason, actor=actor, now=services.clock.now()
    )


async def resume(services: Services, actor: Actor, target: str) -> None:
    await run_in_threadpool(
        services.store.set_paused, target=target, paused=False, reason=None, actor=actor, now=services.clock.now()
    )
    if services.worker is not None:
        services.worker.wake([target])


async def replay(services: Services, actor: Actor, target: str, since: dt.date, dry_run: bool) -> list[dict[str, Any]]:
    start = dt.datetime.combine(since, dt.time(), SHANGHAI)
    plan: list[dict[str, Any]] = await run_in_threadpool(
        services.store.replay, target=target, since=start, dry_run=dry_run, actor=actor, now=services.clock.now()
    )
    if services.worker is not None and not dry_run:
        services.worker.wake([target])
    return plan


async def reconcile(services: Services, actor: Actor, target: str) -> dict[str, Any]:
    try:
        run: dict[str, Any] = await run_in_threadpool(lambda: services.housekeeping.reconcile(target, actor=actor))
    except KeyError:
        raise TargetDisabled(target) from None
    if services.worker is not None and run["requeued"]:
        services.worker.wake([target])
    return run


# -- reports (POST /reports) -----------------------------------------------------------------------------------


async def create_report(
    services: Services, actor: Actor, period: Period, as_of: dt.date | None
) -> tuple[int, dict[str, Any]]:
    return await run_in_threadpool(lambda: services.housekeeping.create_report(period, actor=actor, as_of=as_of))


# -- API keys (what `credit-gateway keys create|revoke` calls) ---------------------------------------------------


async def create_key(
    services: Services, actor: Actor, name: str, role: str, kinds: tuple[str, ...] | None
) -> tuple[str, KeyInfo]:
    return await run_in_threadpool(
        lambda: services.store.create_key(
            name=name, role=role, kinds=kinds, actor=actor.name, actor_role=actor.role, now=services.clock.now()
        )
    )


async def revoke_key(services: Services, actor: Actor, prefix: str) -> int:
    return await run_in_threadpool(
        lambda: services.store.revoke_key(
            prefix=prefix, actor=actor.name, actor_role=actor.role, now=services.clock.now()
        )
    )


# -- people (what `credit-gateway users` calls) ------------------------------------------------------------------


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


async def target_status(request: Request, person: Person) -> list[dict[str, Any]]:
    """GET /api/v1/targets as the API answers it (enabled, paused, deliveries by state, health)."""
    response = await api_targets.list_targets(request, Principal(person.name, "operator", None))
    body: dict[str, list[dict[str, Any]]] = orjson.loads(bytes(response.body))
    return body["targets"]
