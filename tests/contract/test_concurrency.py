"""200 concurrent posts leave exactly the right records, versions and outbox rows (both databases)."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from typing import Any

import httpx
import sqlalchemy as sa

from outbox import tables
from outbox.store import Store
from tests.conftest import bearer
from tests.factories import licence

TARGETS = 4


async def _post_all(base_url: str, key: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(key), timeout=60, limits=limits) as http:
        return await asyncio.gather(*(http.post("/api/v1/licences", json=b) for b in bodies))


def test_two_hundred_concurrent_posts(base_url: str, client: httpx.Client, source_key: str, store: Store) -> None:
    for i in range(10):  # records that exist before the storm
        assert client.post("/api/v1/licences", json=licence(f"D{i}"), headers=bearer(source_key)).status_code == 201

    bodies: list[dict[str, Any]] = []
    bodies += [licence(f"A{i}") for i in range(50)]  # new ids, once each
    bodies += [licence(f"B{i}") for i in range(10) for _ in range(5)]  # new ids, five identical posts
    bodies += [licence(f"C{i}", content=f"内容{j}") for i in range(10) for j in range(5)]  # five different contents
    bodies += [licence(f"D{i}", content="更正") for i in range(10) for _ in range(5)]  # one change, five times
    assert len(bodies) == 200

    responses = asyncio.run(_post_all(base_url, source_key, bodies))
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses if r.status_code > 201]

    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in responses:
        by_id[r.json()["source_id"]].append(r.json() | {"http": r.status_code})
    for i in range(10):
        b = by_id[f"B{i}"]
        assert Counter(x["http"] for x in b) == {201: 1, 200: 4} and {x["version"] for x in b} == {1}
        c = by_id[f"C{i}"]
        assert sorted(x["version"] for x in c) == [1, 2, 3, 4, 5] and {x["http"] for x in c} == {201}
        d = by_id[f"D{i}"]
        assert Counter(x["http"] for x in d) == {201: 1, 200: 4} and {x["version"] for x in d} == {2}
    assert len({x["id"] for x in responses for x in [x.json()]}) == 80

    def stats(conn: sa.Connection) -> dict[str, Any]:
        r, v, d = tables.record, tables.record_version, tables.delivery
        gaps = conn.execute(
            sa.select(v.c.record_id)
            .group_by(v.c.record_id)
            .having(sa.or_(sa.func.min(v.c.version) != 1, sa.func.max(v.c.version) != sa.func.count()))
        ).all()
        current_mismatch = conn.execute(
            sa.select(sa.func.count())
            .select_from(r.join(v, v.c.record_id == r.c.id))
            .where(v.c.version == r.c.current_version, v.c.content_hash != r.c.content_hash)
        ).scalar_one()
        not_latest = conn.execute(
            sa.select(sa.func.count())
            .select_from(r)
            .where(
                r.c.current_version
                != sa.select(sa.func.max(v.c.version)).where(v.c.record_id == r.c.id).scalar_subquery()
            )
        ).scalar_one()
        return {
            "records": conn.execute(sa.select(sa.func.count()).select_from(r)).scalar_one(),
            "versions": conn.execute(sa.select(sa.func.count()).select_from(v)).scalar_one(),
            "deliveries": dict(conn.execute(sa.select(d.c.state, sa.func.count()).group_by(d.c.state)).all()),
            "pending_not_current": conn.execute(
                sa.select(sa.func.count())
                .select_from(d.join(r, r.c.id == d.c.record_id))
                .where(d.c.state == "pending", d.c.version != r.c.current_version)
            ).scalar_one(),
            "gaps": len(gaps),
            "current_mismatch": current_mismatch,
            "not_latest": not_latest,
        }

    found = store.db.read(stats)
    versions = 50 + 10 + 10 * 5 + 10 * 2
    assert found == {
        "records": 80,
        "versions": versions,
        "deliveries": {"pending": 80 * TARGETS, "superseded": (versions - 80) * TARGETS},
        "pending_not_current": 0,
        "gaps": 0,
        "current_mismatch": 0,
        "not_latest": 0,
    }
    for i in range(10):  # the current content is the one whose post was answered with the last version
        [winner] = [
            b for b, r in zip(bodies, responses, strict=True) if b["source_id"] == f"C{i}" and r.json()["version"] == 5
        ]
        view = client.get(f"/api/v1/licences/C{i}", headers=bearer(source_key)).json()
        assert view["version"] == 5 and view["record"]["content"] == winner["content"]
