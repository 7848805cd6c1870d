"""PROTOCOLS.md's wire rules between the adapters and the sandbox over loopback (issue 8, defect 7).

The sandbox is mounted under a prefix, as ``serve --sandbox`` mounts it under ``/sandbox`` (here one level deeper
still, as a deployment's proxy might add): every platform's base URL then has a path, and the national signature
must cover the path relative to it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from lxml import etree

from adapters.base import Accepted, Item, Operation, Outcome, Received, Rejected
from adapters.client import TargetClient
from adapters.provincial import Provincial, ProvincialConfig
from adapters.sandbox.app import create_sandbox
from adapters.signing import national_signature, provincial_signature
from gateway.clock import SystemClock
from gateway.settings import Settings
from gateway.targets import build_clients, point_at_sandbox
from schemas.enums import Kind
from tests import live
from tests.factories import canonical_content

TODAY = dt.date(2026, 11, 25)
PREFIX = "/gw/sandbox"


@pytest.fixture(scope="module")
def mounted() -> Iterator[str]:
    """The sandbox inside another application under PREFIX, like ``serve --sandbox``; yields the server URL."""
    outer = FastAPI()
    outer.mount(PREFIX, create_sandbox(result_delay=0))
    with live.serve(outer) as url:
        yield url


@pytest.fixture(scope="module")
def clients(mounted: str) -> Iterator[dict[str, TargetClient]]:
    settings = Settings()
    point_at_sandbox(settings, mounted + PREFIX)
    built = build_clients(settings, SystemClock())
    yield built
    for client in built.values():
        client.close()


def content(kind: Kind, **changes: Any) -> dict[str, Any]:
    return canonical_content(kind, TODAY, **changes)


def fresh_id() -> str:
    return f"hhzjj-{uuid.uuid4().int % 10**9}"


def settle(client: TargetClient, sent: Sequence[Item]) -> list[Outcome]:
    outcomes = client.deliver(sent)
    if client.two_stage and all(isinstance(o, Received) for o in outcomes):
        [receipt] = {o.receipt for o in outcomes if isinstance(o, Received)}
        results = client.results(receipt, [i.key for i in sent])
        assert results is not None
        return results
    return outcomes


def stats(url: str, target: str) -> dict[str, int]:
    return httpx.get(f"{url}{PREFIX}/_admin/{target}/stats").json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("target", ["national", "provincial", "municipal", "portal"])
def test_publish_and_withdraw_under_a_prefixed_base_url(target: str, clients: dict[str, TargetClient]) -> None:
    record_id = fresh_id()
    kind = Kind.PENALTY
    body = content(kind, penalty_categories=["fine", "warning"])
    published = Item(f"{record_id}-v1-u", record_id, kind, Operation.UPSERT, 1, body)
    assert [type(o) for o in settle(clients[target], [published])] == [Accepted]
    held = {h.record_id: h for h in clients[target].holdings(kind)}[record_id]
    date = held.fields.get("CF_JDRQ") or held.fields.get("处罚决定日期")
    kinds = held.fields.get("CF_CFLB") or held.fields.get("处罚类别")
    assert (date, kinds) == ("2026/10/10", "罚款;警告")
    withdrawal = Item(f"{record_id}-v1-w", record_id, kind, Operation.WITHDRAW, 1, body, "credit_repair")
    assert [type(o) for o in settle(clients[target], [withdrawal])] == [Accepted]


def _national(url: str, signed_path: str, sent_path: str, body: bytes = b"") -> httpx.Response:
    stamp, nonce = int(dt.datetime.now(dt.UTC).timestamp() * 1000), uuid.uuid4().hex
    method = "POST" if body else "GET"
    headers = {
        "X-App-Key": "demo-national",
        "X-Timestamp": str(stamp),
        "X-Nonce": nonce,
        "X-Signature": national_signature("demo-national-secret", method, signed_path, stamp, nonce, body),
        "Content-Type": "application/json",
    }
    return httpx.request(method, url + sent_path, content=body or None, headers=headers)


def test_the_signed_path_is_relative_to_the_base_url(mounted: str) -> None:
    relative = "/api/v1/records?type=XK&page=1&page_size=10"
    full = f"{PREFIX}/national{relative}"
    assert _national(mounted, relative, full).status_code == 200
    refused = _national(mounted, full, full)  # signed over the whole URL path: not what the protocol says
    assert refused.status_code == 401 and refused.json()["code"] == "1001"
    without_query = _national(mounted, "/api/v1/records", full)  # the query string is part of PATH
    assert without_query.status_code == 401 and without_query.json()["code"] == "1001"


@pytest.mark.parametrize("target", ["national", "provincial", "municipal"])
def test_a_reused_key_with_other_content_is_rejected_2010_and_the_old_content_stays(
    target: str, clients: dict[str, TargetClient], mounted: str
) -> None:
    client = clients[target]
    record_id, other_id = fresh_id(), fresh_id()
    key = f"{record_id}-v1-u"
    original = Item(key, record_id, Kind.LICENCE, Operation.UPSERT, 1, content(Kind.LICENCE))
    assert [type(o) for o in settle(client, [original])] == [Accepted]
    before = stats(mounted, target)

    changed = Item(key, record_id, Kind.LICENCE, Operation.UPSERT, 1, content(Kind.LICENCE, content="改过的内容"))
    other = Item(f"{other_id}-v1-u", other_id, Kind.LICENCE, Operation.UPSERT, 1, content(Kind.LICENCE))
    reused, fresh = settle(client, [changed, other])
    assert isinstance(reused, Rejected) and reused.code == "2010", reused
    assert isinstance(fresh, Accepted), fresh

    held = {h.record_id: h for h in client.holdings(Kind.LICENCE)}
    assert held[record_id].fields == client.adapter.expected_fields(original)
    assert held[record_id].key == key
    after = stats(mounted, target)
    assert after["duplicate_deliveries"] == before["duplicate_deliveries"]  # a conflict is not a duplicate
    assert after["unique_keys"] - before["unique_keys"] == 1

    again = settle(client, [original])  # the same key with the same content is still idempotent
    assert [type(o) for o in again] == [Accepted]


def test_the_sandbox_portal_refuses_iso_dates_and_full_width_separators(
    clients: dict[str, TargetClient], mounted: str
) -> None:
    item = Item("k", fresh_id(), Kind.PENALTY, Operation.UPSERT, 1, content(Kind.PENALTY))
    notice = clients["portal"].adapter.notice(item, dt.datetime.now(dt.UTC))  # type: ignore[attr-defined]
    url = f"{mounted}{PREFIX}/portal/cms/api/notices/{item.record_id}"
    auth = {"Authorization": "Bearer demo-portal-token"}

    def put(changed: dict[str, Any]) -> httpx.Response:
        return httpx.put(url, content=orjson.dumps(changed), headers=auth)

    iso = notice | {"published_on": notice["published_on"].replace("/", "-")}
    assert put(iso).status_code == 422 and put(iso).json()["code"] == "2003"
    rows = [r | ({"value": "罚款；警告"} if r["label"] == "处罚类别" else {}) for r in notice["fields"]]
    full_width = put(notice | {"fields": rows})
    assert full_width.status_code == 422 and full_width.json()["code"] == "2004"
    assert put(notice).status_code == 201


def test_the_sandbox_refuses_an_english_withdrawal_reason(mounted: str, clients: dict[str, TargetClient]) -> None:
    record_id = fresh_id()
    published = Item(f"{record_id}-v1-u", record_id, Kind.LICENCE, Operation.UPSERT, 1, content(Kind.LICENCE))
    for target in ("national", "provincial"):
        assert [type(o) for o in settle(clients[target], [published])] == [Accepted]

    # national: an item whose reason is the English code
    key = f"{record_id}-v1-w-en"
    body = orjson.dumps(
        {
            "batch_id": f"b-{uuid.uuid4().hex}",
            "items": [{"key": key, "record_id": record_id, "op": "withdraw", "type": "XK", "reason": "credit_repair"}],
        }
    )
    received = _national(mounted, "/api/v1/batches", f"{PREFIX}/national/api/v1/batches", body)
    assert received.status_code == 202, received.text
    receipt = received.json()["data"]["receipt_id"]
    results = _national(mounted, f"/api/v1/batches/{receipt}", f"{PREFIX}/national/api/v1/batches/{receipt}")
    [result] = results.json()["data"]["items"]
    assert (result["result"], result["error_code"]) == ("rejected", "2004")

    # provincial: the adapter's message with the reason attribute put back in English and signed again
    adapter = Provincial(ProvincialConfig("431200-ZJJ", "demo-provincial-sm3-key"))
    withdrawal = Item(f"{record_id}-v1-w", record_id, Kind.LICENCE, Operation.WITHDRAW, 1, published.content, "revoked")
    [exchange] = adapter.plan([withdrawal], now=dt.datetime.now(dt.UTC)).exchanges
    document = etree.fromstring(exchange.request.body)
    assert document.find("Body/Record").get("reason") == "撤销"  # type: ignore[union-attr]
    document.find("Body/Record").set("reason", "revoked")  # type: ignore[union-attr]
    signature = document.find("Header/Signature")
    assert signature is not None
    signature.text = provincial_signature("demo-provincial-sm3-key", document.find("Body"))  # type: ignore[arg-type]
    submitted = httpx.post(
        f"{mounted}{PREFIX}/provincial/exchange/submit",
        content=etree.tostring(document),
        headers={"Content-Type": "application/xml"},
    )
    assert submitted.status_code == 200, submitted.text
    message_id = etree.fromstring(submitted.content).findtext("MessageId")
    feedback = httpx.get(f"{mounted}{PREFIX}/provincial/exchange/feedback", params={"messageId": message_id})
    [entry] = etree.fromstring(feedback.content).iter("Item")
    assert (entry.get("result"), entry.get("code")) == ("REJECTED", "2004")
