"""Reconciliation: compare what a target holds with what we published, and repair the difference.

Per target: page through the platform's holdings (every kind it receives), compare each public holding with
what we believe it holds by a digest of the fields (``adapters.base.fields_digest`` of the platform's listing
against the adapter's ``expected_fields`` for the version it accepted), then

* missing (we published it, the platform does not list it) → re-pushed under a fresh key;
* mismatched (listed with other content) → re-pushed under a fresh key;
* extra (listed, but not ours to hold: unknown, or withdrawn here) → reported for an operator, never touched.

Records with a delivery still open to the target are skipped (the worker is about to change them). The run, its
counts and its findings are stored and shown in the API; the re-push and the run's closing are one transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from adapters import base
from adapters.client import TargetClient
from gateway import logs
from gateway.clock import Clock
from gateway.delivery import platform_record_id
from outbox.ingest import Actor
from outbox.store import Store
from schemas.enums import Kind

log = logging.getLogger(__name__)


def reconcile(store: Store, client: TargetClient, kinds: list[Kind], *, actor: Actor, clock: Clock) -> dict[str, Any]:
    """One run against ``client``'s target; returns the stored run (``status`` done or failed)."""
    target = client.adapter.name
    run_id = store.start_reconciliation(target=target, actor=actor, now=clock.now())
    try:
        held: dict[str, base.Holding] = {}
        for kind in kinds:
            for listed in client.holdings(kind):
                if listed.public:
                    held[listed.record_id] = listed
    except base.ReplyError as exc:
        store.fail_reconciliation(run_id=run_id, error=f"{exc.code}: {exc.message}", now=clock.now())
        log.warning("reconciliation of %s failed listing holdings: %s", target, exc.code)
        return _run(store, run_id)

    findings: dict[str, list[dict[str, Any]]] = {"missing": [], "mismatched": [], "extra": []}
    repush: list[int] = []
    matched = 0
    believed = store.believed_held(target)
    for row in believed:
        pid = platform_record_id(row["record_id"])
        item = base.Item("", pid, Kind.from_code(row["kind"]), base.Operation.UPSERT, row["version"], row["content"])
        holding = held.pop(pid, None)
        entry = {"record_id": pid, "kind": row["kind"], "source_id": row["source_id"], "version": row["version"]}
        if holding is None:
            findings["missing"].append(entry)
            repush.append(row["record_id"])
        elif base.fields_digest(holding.fields) != base.fields_digest(client.adapter.expected_fields(item)):
            findings["mismatched"].append(entry)
            repush.append(row["record_id"])
        else:
            matched += 1

    # What is left is listed but not believed held; those about to change (an open delivery) are no finding.
    ours = {pid: _our_id(pid) for pid in held}
    busy = store.with_open_deliveries(target, [i for i in ours.values() if i is not None])
    for pid, holding in held.items():
        if ours[pid] in busy:
            continue
        findings["extra"].append({"record_id": pid, "kind": holding.kind.value, "key": holding.key})
    counts = {
        "held": len(held) + matched + len(findings["mismatched"]),  # held now has only the unmatched left
        "matched": matched,
        "missing": len(findings["missing"]),
        "mismatched": len(findings["mismatched"]),
        "extra": len(findings["extra"]),
    }
    store.finish_reconciliation(
        run_id=run_id, target=target, counts=counts, findings=findings, repush=repush, actor=actor, now=clock.now()
    )
    found = {k: counts[k] for k in ("missing", "mismatched", "extra")}
    level = logging.WARNING if any(found.values()) else logging.INFO
    logs.event(log, level, "reconciliation_findings", target=target, run_id=run_id, matched=matched, **found)
    return _run(store, run_id)


def _our_id(platform_id: str) -> int | None:
    prefix = platform_record_id(0)[:-1]
    tail = platform_id.removeprefix(prefix)
    return int(tail) if platform_id.startswith(prefix) and tail.isdigit() else None


def _run(store: Store, run_id: int) -> dict[str, Any]:
    run = store.reconciliation(run_id)
    assert run is not None
    return run
