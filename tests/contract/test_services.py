"""The application layer's promise: one use case, one audit entry naming whoever took the action, whichever path
(the API, the CLI, a direct service call) it came by. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.clock import ManualClock
from gateway.compose import build_services
from gateway.services.actors import Actor
from gateway.services.errors import UnknownTarget
from gateway.settings import Settings
from outbox import tables
from outbox.store import Store
from tests.conftest import bearer
from tests.factories import licence


def _dead(store: Store, delivery_id: int) -> None:
    """The delivery as a failure for good would leave it (what requeue takes)."""
    d = tables.delivery
    store.db.transact(lambda c: c.execute(sa.update(d).where(d.c.id == delivery_id).values(state="dead")))


def _requeues(store: Store) -> list[tuple[str, str, Any]]:
    a = tables.audit_event
    rows = store.db.read(
        lambda c: c.execute(
            sa.select(a.c.actor, a.c.role, a.c.detail).where(a.c.action == "delivery.requeue").order_by(a.c.seq)
        ).all()
    )
    return [(r.actor, r.role, r.detail["ids"]) for r in rows]


def _portal_delivery(store: Store) -> int:
    d = tables.delivery
    return int(store.db.read(lambda c: c.execute(sa.select(d.c.id).where(d.c.target == "portal")).scalar_one()))


def test_requeue_by_api_cli_and_service_each_names_its_actor(
    client: httpx.Client,
    settings: Settings,
    store: Store,
    clock: ManualClock,
    source_key: str,
    operator_key: str,
    tmp_path: Path,
) -> None:
    client.post("/api/v1/licences", json=licence(), headers=bearer(source_key)).raise_for_status()
    delivery_id = _portal_delivery(store)

    _dead(store, delivery_id)
    done = client.post("/api/v1/dead-letters/requeue", json={"ids": [delivery_id]}, headers=bearer(operator_key))
    assert done.json() == {"requeued": 1}

    _dead(store, delivery_id)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_GATEWAY_")}
    command = [str(Path(sys.executable).parent / "credit-gateway"), "--actor", "王五", "deliveries", "requeue"]
    ran = subprocess.run(
        [*command, str(delivery_id)],
        env=env | {"CREDIT_GATEWAY_DATABASE_URL": settings.database_url},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (ran.returncode, ran.stdout) == (0, "requeued 1 of 1\n"), ran.stderr

    _dead(store, delivery_id)
    services = build_services(settings, store=store, clock=clock)
    assert services.operations.requeue(Actor("nightly-check", "system"), [delivery_id]) == 1

    assert _requeues(store) == [
        ("credit-office", "operator", [delivery_id]),
        ("王五", "cli", [delivery_id]),
        ("nightly-check", "system", [delivery_id]),
    ]


def test_pause_of_an_unknown_target_names_the_choices(settings: Settings, store: Store, clock: ManualClock) -> None:
    services = build_services(settings, store=store, clock=clock)
    with pytest.raises(UnknownTarget) as refused:
        services.operations.pause(Actor("ops", "operator"), "county", None)
    assert refused.value.names == ["national", "provincial", "municipal", "portal"]
    assert store.paused_targets() == {}
