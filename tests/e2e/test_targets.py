"""Real records through each adapter to the sandbox platforms over loopback."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import orjson
import pytest
from lxml import etree

from adapters import fields
from adapters.base import Accepted, Item, Operation, Outcome, Received, Rejected, Retryable, fields_digest
from adapters.client import TargetClient
from adapters.national import National, NationalConfig
from adapters.portal import Portal, PortalConfig
from adapters.sandbox.app import create_sandbox
from adapters.signing import national_signature
from gateway.clock import SystemClock
from gateway.settings import Settings
from gateway.targets import build_clients, point_at_sandbox
from schemas.enums import ARTICLE_KINDS, RECORD_KINDS, Kind
from tests import live
from tests.factories import canonical_content, person

TODAY = dt.date(2026, 11, 25)
RECEIVES = {
    "national": list(RECORD_KINDS),
    "provincial": list(RECORD_KINDS),
    "municipal": list(Kind),
    "portal": [Kind.LICENCE, Kind.PENALTY, *ARTICLE_KINDS],
}
CASES = [(t, k) for t, kinds in RECEIVES.items() for k in kinds]


class FakeTime:
    def __init__(self) -> None:
        self.value = dt.datetime.now(dt.UTC).timestamp()

    def __call__(self) -> float:
        return self.value


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[str, Any]]:
    app = create_sandbox(result_delay=0)
    with live.serve(app) as url:
        yield url, app.state.sandbox


@pytest.fixture(scope="module")
def clients(sandbox: tuple[str, Any]) -> Iterator[dict[str, TargetClient]]:
    settings = Settings()
    point_at_sandbox(settings, sandbox[0])
    built = build_clients(settings, SystemClock())
    yield built
    for client in built.values():
        client.close()


def content(kind: Kind, **changes: Any) -> dict[str, Any]:
    return canonical_content(kind, TODAY, **changes)


def item(
    record_id: str, kind: Kind, version: int, body: dict[str, Any], target: str, op: Operation = Operation.UPSERT
) -> Item:
    key = f"cg-{record_id.split('-')[-1]}-v{version}-{op.value[0]}-{target}"
    return Item(key, record_id, kind, op, version, body, "revoked" if op is Operation.WITHDRAW else None)


def settle(client: TargetClient, sent: Sequence[Item]) -> list[Outcome]:
    """Deliver, and for two-stage platforms ask for the business results (the sandbox answers at once)."""
    outcomes = client.deliver(sent)
    if client.two_stage and all(isinstance(o, Received) for o in outcomes):
        receipts = {o.receipt for o in outcomes if isinstance(o, Received)}
        assert len(receipts) == 1
        results = client.results(receipts.pop(), [i.key for i in sent])
        assert results is not None, "result delay is 0: results must be ready"
        return results
    return outcomes


def expected_fields(target: str, sent: Item) -> dict[str, str]:
    if target == "portal":
        notice = Portal(PortalConfig("t")).notice(sent, dt.datetime.now(dt.UTC))
        return {f["label"]: f["value"] for f in notice["fields"]}
    return fields.field_codes(sent.kind, sent.content, area="431200", serial=fields.serial_of(sent.record_id))


def digest(mapping: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(dict(mapping), option=orjson.OPT_SORT_KEYS)).hexdigest()


def held(client: TargetClient, kind: Kind, record_id: str) -> Any:
    return next((h for h in client.holdings(kind) if h.record_id == record_id), None)


@pytest.mark.parametrize(("target", "kind"), CASES, ids=[f"{t}-{k.value}" for t, k in CASES])
def test_publish_correct_withdraw(
    target: str, kind: Kind, clients: dict[str, TargetClient], sandbox: tuple[str, Any]
) -> None:
    client = clients[target]
    before = httpx.get(f"{sandbox[0]}/_admin/{target}/stats").json()
    record_id = f"hhzjj-{uuid.uuid4().int % 10**9}"

    first = item(record_id, kind, 1, content(kind), target)
    outcomes = settle(client, [first])
    assert [type(o) for o in outcomes] == [Accepted], outcomes
    holding = held(client, kind, record_id)
    assert holding is not None and holding.public
    assert digest(holding.fields) == digest(expected_fields(target, first))
    assert fields_digest(holding.fields) == fields_digest(
        client.adapter.expected_fields(first)
    )  # reconciliation's view
    if target != "portal":
        assert holding.key == first.key

    if kind in ARTICLE_KINDS:
        changes = {"title": "更正后的标题", "summary": "更正：补充摘要"}
    else:
        changes = {"remarks": "更正：补充备注", "reason" if kind is Kind.LIST_CHANGE else "content": "更正后的内容"}
    corrected = item(record_id, kind, 2, content(kind, **changes), target)
    assert [type(o) for o in settle(client, [corrected])] == [Accepted]
    holding = held(client, kind, record_id)
    assert digest(holding.fields) == digest(expected_fields(target, corrected))
    assert fields_digest(holding.fields) == fields_digest(client.adapter.expected_fields(corrected))
    assert holding.fields != expected_fields(target, first)

    withdrawal = item(record_id, kind, 2, corrected.content, target, Operation.WITHDRAW)
    assert [type(o) for o in settle(client, [withdrawal])] == [Accepted]
    holding = held(client, kind, record_id)
    assert holding is None or not holding.public

    after = httpx.get(f"{sandbox[0]}/_admin/{target}/stats").json()
    assert after["received_items"] - before["received_items"] == 3
    assert after["unique_keys"] - before["unique_keys"] == 3
    assert after["duplicate_deliveries"] == before["duplicate_deliveries"]


def test_a_batch_of_many_items_is_one_request_per_platform_limit(clients: dict[str, TargetClient]) -> None:
    client = clients["national"]
    sent = [
        item(f"hhzjj-{900000 + i}", Kind.LICENCE, 1, content(Kind.LICENCE, source_id=f"B{i}"), "national")
        for i in range(1200)
    ]
    assert len(client.adapter.plan(sent, now=dt.datetime.now(dt.UTC)).exchanges) == 3  # 500 + 500 + 200
    outcomes = settle(client, sent[:500])
    assert all(isinstance(o, Accepted) for o in outcomes) and len(outcomes) == 500


def test_resending_a_batch_is_idempotent(clients: dict[str, TargetClient], sandbox: tuple[str, Any]) -> None:
    client = clients["national"]
    sent = [item(f"hhzjj-{800000 + i}", Kind.PENALTY, 1, content(Kind.PENALTY), "national") for i in range(3)]
    first = client.deliver(sent)
    before = httpx.get(f"{sandbox[0]}/_admin/national/stats").json()
    again = client.deliver(sent)  # as after a timeout: same keys, same batch id
    assert {o.receipt for o in first if isinstance(o, Received)} == {
        o.receipt for o in again if isinstance(o, Received)
    }
    after = httpx.get(f"{sandbox[0]}/_admin/national/stats").json()
    assert after["unique_keys"] == before["unique_keys"]
    assert after["duplicate_deliveries"] - before["duplicate_deliveries"] == 3


@pytest.mark.parametrize("target", ["national", "provincial"])
def test_late_business_rejection_is_permanent_with_the_platform_message(
    target: str, clients: dict[str, TargetClient], sandbox: tuple[str, Any]
) -> None:
    httpx.put(f"{sandbox[0]}/_admin/{target}/faults", json={"late_rejection_rate": 1.0}).raise_for_status()
    try:
        sent = item(f"hhzjj-{uuid.uuid4().int % 10**9}", Kind.LICENCE, 1, content(Kind.LICENCE), target)
        received = clients[target].deliver([sent])
        assert [type(o) for o in received] == [Received]  # the transport receipt says nothing of the content
        [result] = clients[target].results(received[0].receipt, [sent.key])  # type: ignore[union-attr, misc]
        assert isinstance(result, Rejected) and result.code == "2099" and "late business rejection" in result.message
    finally:
        httpx.delete(f"{sandbox[0]}/_admin/{target}/faults")


def test_content_the_platform_refuses_is_rejected_with_its_code(clients: dict[str, TargetClient]) -> None:
    bad = content(Kind.LICENCE) | {"valid_to": "2026-01-01"}  # bypasses our own rules on purpose
    for target in ("national", "provincial", "municipal"):
        [outcome] = settle(clients[target], [item(f"hhzjj-{uuid.uuid4().int % 10**9}", Kind.LICENCE, 1, bad, target)])
        assert isinstance(outcome, Rejected) and outcome.code == "2003", (target, outcome)


def test_withdrawing_an_unknown_record_is_2009(clients: dict[str, TargetClient]) -> None:
    sent = item("hhzjj-424242424", Kind.LICENCE, 1, content(Kind.LICENCE), "national", Operation.WITHDRAW)
    [outcome] = settle(clients["national"], [sent])
    assert isinstance(outcome, Rejected) and outcome.code == "2009"


def test_portal_masks_natural_persons(clients: dict[str, TargetClient]) -> None:
    body = content(Kind.PENALTY, counterpart=person("欧阳修"))
    record_id = f"hhzjj-{uuid.uuid4().int % 10**9}"
    assert [type(o) for o in settle(clients["portal"], [item(record_id, Kind.PENALTY, 1, body, "portal")])] == [
        Accepted
    ]
    holding = held(clients["portal"], Kind.PENALTY, record_id)
    number = body["counterpart"]["id_number"]
    assert holding.fields["行政相对人名称"] == "欧阳*"
    assert holding.fields["证件号码"] == number[:4] + "*" * 10 + number[-4:]
    assert number not in orjson.dumps(dict(holding.fields)).decode()


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("html", "wrong_content_type"),
        ("truncated", "malformed_reply"),
        ("invalid_utf8", "malformed_reply"),
        ("wrong_content_type", "wrong_content_type"),
        ("huge", "reply_too_large"),
    ],
)
def test_hostile_replies_are_retryable_never_a_crash(
    kind: str, code: str, clients: dict[str, TargetClient], sandbox: tuple[str, Any]
) -> None:
    httpx.put(f"{sandbox[0]}/_admin/national/faults", json={"malformed_rate": 1.0, "malformed_kind": kind})
    try:
        sent = item(f"hhzjj-{uuid.uuid4().int % 10**9}", Kind.LICENCE, 1, content(Kind.LICENCE), "national")
        [outcome] = clients["national"].deliver([sent])
        assert isinstance(outcome, Retryable) and outcome.code == code, outcome
    finally:
        httpx.delete(f"{sandbox[0]}/_admin/national/faults")


def test_provincial_refuses_a_dtd_reply(clients: dict[str, TargetClient], sandbox: tuple[str, Any]) -> None:
    httpx.put(f"{sandbox[0]}/_admin/provincial/faults", json={"malformed_rate": 1.0, "malformed_kind": "dtd_entities"})
    try:
        sent = item(f"hhzjj-{uuid.uuid4().int % 10**9}", Kind.LICENCE, 1, content(Kind.LICENCE), "provincial")
        [outcome] = clients["provincial"].deliver([sent])
        assert isinstance(outcome, Retryable) and outcome.code == "hostile_reply"
    finally:
        httpx.delete(f"{sandbox[0]}/_admin/provincial/faults")


def test_throttling_and_outages_are_retryable(clients: dict[str, TargetClient], sandbox: tuple[str, Any]) -> None:
    url = sandbox[0]
    sent = item(f"hhzjj-{uuid.uuid4().int % 10**9}", Kind.LICENCE, 1, content(Kind.LICENCE), "municipal")
    httpx.put(f"{url}/_admin/municipal/faults", json={"throttle_rate": 1.0, "retry_after_seconds": 7})
    [throttled] = clients["municipal"].deliver([sent])
    assert isinstance(throttled, Retryable) and throttled.retry_after == 7.0
    now = dt.datetime.now(dt.UTC).timestamp()
    httpx.put(f"{url}/_admin/municipal/faults", json={"outage_start": now - 1, "outage_end": now + 3600})
    [down] = clients["municipal"].deliver([sent])
    assert isinstance(down, Retryable) and down.code.startswith("50")
    httpx.delete(f"{url}/_admin/municipal/faults")
    assert [type(o) for o in clients["municipal"].deliver([sent])] == [Accepted]


# -- the sandbox refuses what a real platform would ------------------------------------------------------------


def _signed(url: str, secret: str, nonce: str, stamp_ms: int, body: bytes) -> httpx.Response:
    path = "/api/v1/batches"
    headers = {
        "X-App-Key": "demo-national",
        "X-Timestamp": str(stamp_ms),
        "X-Nonce": nonce,
        "X-Signature": national_signature(secret, "POST", path, stamp_ms, nonce, body),
        "Content-Type": "application/json",
    }
    return httpx.post(f"{url}/national{path}", content=body, headers=headers)


def test_national_refuses_bad_signature_replayed_nonce_and_skew(sandbox: tuple[str, Any]) -> None:
    url = sandbox[0]
    body = orjson.dumps(
        {
            "batch_id": f"b-{uuid.uuid4().hex}",
            "items": [{"key": "k1", "record_id": "r1", "op": "withdraw", "type": "XK"}],
        }
    )
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    bad = _signed(url, "wrong-secret", uuid.uuid4().hex, now_ms, body)
    assert bad.status_code == 401 and bad.json()["code"] == "1001"
    nonce = uuid.uuid4().hex
    assert _signed(url, "demo-national-secret", nonce, now_ms, body).status_code == 202
    replay = _signed(url, "demo-national-secret", nonce, now_ms, body)
    assert replay.status_code == 401 and replay.json()["code"] == "1003"
    skewed = _signed(url, "demo-national-secret", uuid.uuid4().hex, now_ms - 6 * 60 * 1000, body)
    assert skewed.status_code == 401 and skewed.json()["code"] == "1002"
    other = orjson.dumps(
        {
            "batch_id": orjson.loads(body)["batch_id"],
            "items": [{"key": "k2", "record_id": "r2", "op": "withdraw", "type": "XK"}],
        }
    )
    conflict = _signed(url, "demo-national-secret", uuid.uuid4().hex, now_ms, other)
    assert conflict.status_code == 409 and conflict.json()["code"] == "4009"


def test_provincial_refuses_schema_invalid_xml_and_bad_signatures(
    clients: dict[str, TargetClient], sandbox: tuple[str, Any]
) -> None:
    url = f"{sandbox[0]}/provincial/exchange/submit"
    xml = {"Content-Type": "application/xml"}
    invalid = httpx.post(url, content=b"<ExchangeMessage version='1.0'><Body/></ExchangeMessage>", headers=xml)
    assert invalid.status_code == 400 and etree.fromstring(invalid.content).findtext("Code") == "E100"
    dtd = httpx.post(url, content=b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', headers=xml)
    assert dtd.status_code == 400 and etree.fromstring(dtd.content).findtext("Code") == "E100"

    provincial = clients["provincial"].adapter
    sent = item(f"hhzjj-{uuid.uuid4().int % 10**9}", Kind.LICENCE, 1, content(Kind.LICENCE), "provincial")
    document = etree.fromstring(provincial.plan([sent], now=dt.datetime.now(dt.UTC)).exchanges[0].request.body)
    document.find("Body/Record/XK_NR").text = "篡改后的内容"  # the signature no longer covers the Body
    tampered = httpx.post(url, content=etree.tostring(document), headers=xml)
    assert tampered.status_code == 400 and etree.fromstring(tampered.content).findtext("Code") == "E101"


def test_municipal_tokens_expire_and_refresh() -> None:
    clock = FakeTime()
    app = create_sandbox(result_delay=0, now=clock)
    with live.serve(app) as url:
        settings = Settings()
        point_at_sandbox(settings, url)
        built = build_clients(settings, SystemClock())
        client = built["municipal"]
        raw = httpx.post(
            f"{url}/municipal/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-municipal",
                "client_secret": "demo-municipal-secret",
            },
        ).json()
        clock.value += 601
        expired = httpx.post(
            f"{url}/municipal/api/records", json=[], headers={"Authorization": f"Bearer {raw['access_token']}"}
        )
        assert expired.status_code == 401 and expired.json()["error"] == "invalid_token"

        sent = item(f"hhzjj-{uuid.uuid4().int % 10**9}", Kind.LICENCE, 1, content(Kind.LICENCE), "municipal")
        assert [type(o) for o in client.deliver([sent])] == [Accepted]
        app.state.sandbox.tokens.clear()  # the platform forgets our token early: one 401, one refresh, success
        again = item(sent.record_id, Kind.LICENCE, 2, content(Kind.LICENCE, remarks="二"), "municipal")
        assert [type(o) for o in client.deliver([again])] == [Accepted]
        assert len(app.state.sandbox.tokens) == 1
        bad = httpx.post(
            f"{url}/municipal/oauth/token",
            data={"grant_type": "client_credentials", "client_id": "demo-municipal", "client_secret": "x"},
        )
        assert bad.status_code == 401
        for each in built.values():
            each.close()


def test_national_adapter_signs_each_attempt_afresh() -> None:
    nonces = iter(["n" * 16 + str(i) for i in range(3)])
    adapter = National(NationalConfig("demo-national", "demo-national-secret"), nonce=lambda: next(nonces))
    now = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
    first = adapter.signed("GET", "/api/v1/batches/r-1", b"", now)
    second = adapter.signed("GET", "/api/v1/batches/r-1", b"", now)
    assert first.headers["X-Nonce"] != second.headers["X-Nonce"]
    assert first.headers["X-Signature"] != second.headers["X-Signature"]
    assert first.headers["X-Timestamp"] == "1795572000000"
