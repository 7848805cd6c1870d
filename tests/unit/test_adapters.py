"""Adapters as pure functions: golden payloads, the XSD, signatures, masking, and how replies are classified.

Golden files live in tests/golden/<target>/; regenerate them with CG_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import respx
from lxml import etree

from adapters.auth import ClientCredentials, NoAuth
from adapters.base import Accepted, Exchange, Item, Operation, Received, Rejected, Reply, Request, Retryable
from adapters.client import TargetClient
from adapters.municipal import Municipal, MunicipalConfig
from adapters.national import National, NationalConfig, batch_id
from adapters.portal import Portal, PortalConfig, mask_document, mask_name
from adapters.provincial import Provincial, ProvincialConfig, schema
from adapters.signing import exclusive_c14n, hmac_sm3, national_signature, sm3
from adapters.transport import Transport
from schemas.enums import RECORD_KINDS, Kind
from schemas.validation import Canonical, validate
from tests.factories import BUILDERS, person

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 11, 25)


def content(kind: Kind, **changes: Any) -> dict[str, Any]:
    result = validate(kind, BUILDERS[kind.value](**changes), today=TODAY)
    assert isinstance(result, Canonical), result
    return result.content


def item(kind: Kind, target: str, op: Operation = Operation.UPSERT, **changes: Any) -> Item:
    return Item(
        f"cg-1024-v1-{op.value[0]}-{target}",
        "hhzjj-1024",
        kind,
        op,
        1,
        content(kind, **changes),
        "credit_repair" if op is Operation.WITHDRAW else None,
    )


ADAPTERS: dict[str, Any] = {
    "national": National(NationalConfig("demo-national", "demo-national-secret"), nonce=lambda: "0123456789abcdef"),
    "provincial": Provincial(ProvincialConfig("431200-ZJJ", "demo-provincial-sm3-key")),
    "municipal": Municipal(MunicipalConfig("demo-municipal", "demo-municipal-secret")),
    "portal": Portal(PortalConfig("demo-portal-token")),
}
KINDS = {
    "national": list(RECORD_KINDS),
    "provincial": list(RECORD_KINDS),
    "municipal": list(Kind),
    "portal": [Kind.LICENCE, Kind.PENALTY, Kind.CASE, Kind.NEWS],
}
CASES = [(t, k, op) for t, kinds in KINDS.items() for k in kinds for op in Operation]


def golden(path: Path, produced: bytes) -> None:
    if os.environ.get("CG_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(produced)
    assert path.exists(), f"no golden file {path.name}: run with CG_UPDATE_GOLDEN=1 and review it"
    assert produced == path.read_bytes(), f"{path} changed: review the diff, then CG_UPDATE_GOLDEN=1"


@pytest.mark.parametrize(("target", "kind", "op"), CASES, ids=[f"{t}-{k.value}-{o.value}" for t, k, o in CASES])
def test_payloads_match_the_golden_files(target: str, kind: Kind, op: Operation) -> None:
    plan = ADAPTERS[target].plan([item(kind, target, op)], now=NOW)
    assert not plan.refused and len(plan.exchanges) == 1
    request = plan.exchanges[0].request
    shown = {
        "method": request.method,
        "path": request.path,
        "headers": dict(sorted(request.headers.items())),
    }
    head = orjson.dumps(shown, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    if target == "provincial":
        body = etree.tostring(etree.fromstring(request.body), pretty_print=True, encoding="UTF-8")
        assert schema().validate(etree.fromstring(request.body)), schema().error_log
    elif request.body:
        body = orjson.dumps(orjson.loads(request.body), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    else:
        body = b""
    golden(GOLDEN / target / f"{kind.value}-{op.value}.txt", head + body)


@pytest.mark.parametrize("kind", list(RECORD_KINDS))
def test_every_provincial_message_validates_against_the_xsd(kind: Kind) -> None:
    variants = [
        item(kind, "provincial"),
        item(kind, "provincial", Operation.WITHDRAW),
        item(kind, "provincial", counterpart=person()),
        item(kind, "provincial", remarks="含<特殊>&字符"),
    ]
    plan = ADAPTERS["provincial"].plan(variants, now=NOW)
    assert not plan.refused
    for exchange in plan.exchanges:
        document = etree.fromstring(exchange.request.body)
        assert schema().validate(document), schema().error_log


def test_provincial_refuses_a_record_the_xsd_refuses_and_sends_the_rest() -> None:
    good = item(Kind.LICENCE, "provincial")
    bad = Item(
        "cg-2048-v1-u-provincial",
        "hhzjj-2048",
        Kind.LICENCE,
        Operation.UPSERT,
        1,
        content(Kind.LICENCE) | {"document_name": "书" * 65},
    )  # longer than XK_XKWS allows
    plan = ADAPTERS["provincial"].plan([good, bad], now=NOW)
    assert [r.key for r in plan.refused] == [bad.key] and "XK_XKWS" in plan.refused[0].message
    assert [e.keys for e in plan.exchanges] == [(good.key,)]


def test_provincial_signature_covers_the_canonical_body() -> None:
    request = ADAPTERS["provincial"].plan([item(Kind.PENALTY, "provincial")], now=NOW).exchanges[0].request
    root = etree.fromstring(request.body)
    body = root.find("Body")
    assert root.findtext("Header/Signature") == hmac_sm3(b"demo-provincial-sm3-key", exclusive_c14n(body))
    assert root.find("Header/Signature").get("algorithm") == "HMAC-SM3"
    assert root.findtext("Header/Timestamp") == "2026-11-25T10:00:00+08:00"


def test_split_by_the_platforms_limits() -> None:
    items = [
        Item(f"cg-{i}-v1-u-x", f"hhzjj-{i}", Kind.LICENCE, Operation.UPSERT, 1, content(Kind.LICENCE))
        for i in range(450)
    ]
    assert [len(e.keys) for e in ADAPTERS["municipal"].plan(items, now=NOW).exchanges] == [200, 200, 50]
    assert [len(e.keys) for e in ADAPTERS["national"].plan(items, now=NOW).exchanges] == [450]
    assert len(ADAPTERS["portal"].plan(items[:3], now=NOW).exchanges) == 3
    assert batch_id([i.key for i in items]) == batch_id([i.key for i in items])  # a re-send keeps its batch id


def test_municipal_sends_articles_to_their_own_path_by_50_and_under_5_mb() -> None:
    records = [
        Item(f"cg-{i}-v1-u-m", f"hhzjj-{i}", Kind.LICENCE, Operation.UPSERT, 1, content(Kind.LICENCE)) for i in range(3)
    ]
    small = [
        Item(f"cg-{i}-v1-u-m", f"hhzjj-{i}", Kind.NEWS, Operation.UPSERT, 1, content(Kind.NEWS)) for i in range(10, 130)
    ]
    big_body = content(Kind.CASE, content_html="<p>" + "文" * 99_993 + "</p>")  # 300 KB of UTF-8 each
    big = [Item(f"cg-{i}-v1-u-m", f"hhzjj-{i}", Kind.CASE, Operation.UPSERT, 1, big_body) for i in range(200, 240)]
    plan = ADAPTERS["municipal"].plan([*records, *small, *big], now=NOW)
    paths = [(e.request.path, len(e.keys)) for e in plan.exchanges]
    assert paths[0] == ("/api/records", 3)
    # 120 small news by 50; then 20 small beside 17 cases of some 300 KB (5 MB is 17.4 of them), 17, the last 6
    assert [n for p, n in paths[1:]] == [50, 50, 20 + 17, 17, 6] and {p for p, _ in paths[1:]} == {"/api/articles"}
    assert all(len(e.request.body) <= 5 * 1024 * 1024 for e in plan.exchanges)
    assert len(plan.exchanges[3].request.body) + len(orjson.dumps(sent_case(plan))) > 5 * 1024 * 1024
    assert [k for e in plan.exchanges for k in e.keys] == [i.key for i in [*records, *small, *big]]
    sent = orjson.loads(plan.exchanges[1].request.body)
    assert sent[0]["type"] == "DT" and sent[0]["fields"]["WZ_BT"] == content(Kind.NEWS)["title"]
    assert (
        ADAPTERS["municipal"]
        .holdings_exchange(Kind.CASE, None, now=NOW)
        .request.path.startswith("/api/articles?type=AL")
    )


def sent_case(plan: Any) -> Any:
    return orjson.loads(plan.exchanges[4].request.body)[0]


def test_the_portal_masks_a_person_named_in_a_case() -> None:
    who = person("欧阳修")
    notice = ADAPTERS["portal"].notice(item(Kind.CASE, "portal", counterpart=who), NOW)
    shown = {f["label"]: f["value"] for f in notice["fields"]}
    assert notice["column"] == "dxal" and notice["published_on"] == "2026/11/18"
    assert (
        shown["行政相对人名称"] == "欧阳*"
        and shown["证件号码"] == who["id_number"][:4] + "*" * 10 + who["id_number"][-4:]
    )
    assert who["id_number"] not in orjson.dumps(notice).decode()
    news_notice = ADAPTERS["portal"].notice(item(Kind.NEWS, "portal"), NOW)
    assert news_notice["column"] == "gzdt" and "案例类型" not in {f["label"] for f in news_notice["fields"]}


# -- signatures: fixed vectors ----------------------------------------------------------------------------------


def test_sm3_published_vectors() -> None:  # GB/T 32905-2016 appendix A
    assert sm3(b"abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3(b"abcd" * 16) == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"


def test_hmac_sm3_is_rfc2104_over_sm3() -> None:
    """An independent HMAC construction (RFC 2104: block size 64) over the library's SM3."""
    key, message = b"demo-provincial-sm3-key", b"<Body><Record/></Body>"
    padded = key.ljust(64, b"\0")
    inner = bytes.fromhex(sm3(bytes(b ^ 0x36 for b in padded) + message))
    expected = sm3(bytes(b ^ 0x5C for b in padded) + inner)
    assert hmac_sm3(key, message) == expected


def test_national_signature_fixed_vector() -> None:
    body = b'{"batch_id":"b-1","items":[]}'
    signature = national_signature(
        "demo-national-secret", "POST", "/api/v1/batches", 1795572000000, "0123456789abcdef", body
    )
    text = ("POST\n/api/v1/batches\n1795572000000\n0123456789abcdef\n" + hashlib.sha256(body).hexdigest()).encode()
    assert signature == hmac.new(b"demo-national-secret", text, hashlib.sha256).hexdigest()
    assert signature == "19784eff9236323b1f107071a860f06482d9d71526df397d7799a45d9d7f8d77"


# -- masking -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "masked"), [("张三", "张*"), ("张三丰", "张*"), ("欧阳修", "欧阳*"), ("司马相如", "司马*")]
)
def test_names_keep_the_surname(name: str, masked: str) -> None:
    assert mask_name(name) == masked


def test_document_numbers() -> None:
    assert mask_document("resident_id", "430102199003071234") == "4301**********1234"
    assert mask_document("passport", "E12345678") == "*****5678"


def test_notices_show_organisations_in_full_and_mask_people() -> None:
    portal = ADAPTERS["portal"]
    organisation = {f["label"]: f["value"] for f in portal.notice(item(Kind.LICENCE, "portal"), NOW)["fields"]}
    assert organisation["行政相对人名称"] == "怀化市鹤城建筑工程有限公司" and organisation["法定代表人"] == "张伟"
    assert organisation["统一社会信用代码"] == "91431200MA4L7P2K85"
    shop = {
        "name": "鹤城区李记装修部",
        "category": "individual_business",
        "id_type": "resident_id",
        "id_number": person()["id_number"],
        "legal_representative": "李四",
    }
    fields = {
        f["label"]: f["value"] for f in portal.notice(item(Kind.PENALTY, "portal", counterpart=shop), NOW)["fields"]
    }
    assert fields["行政相对人名称"] == "鹤城区李记装修部" and fields["法定代表人"] == "李*"
    assert fields["证件号码"].count("*") == 10


# -- replies -----------------------------------------------------------------------------------------------------


def exchange(keys: tuple[str, ...] = ("k1", "k2")) -> Exchange:
    return Exchange(Request("POST", "/api/v1/batches", {}, b"{}"), keys)


@pytest.mark.parametrize(
    ("status", "headers", "body", "code"),
    [
        (200, {"content-type": "text/html"}, b"<html><title>502 Bad Gateway</title></html>", "wrong_content_type"),
        (502, {"content-type": "text/html"}, b"<html>proxy error</html>", "502"),
        (
            200,
            {"content-type": "application/json"},
            b'{"code": "0", "data": {"receipt_id": "\xff"}}',
            "malformed_reply",
        ),
        (200, {"content-type": "application/json"}, b'{"code": "0", "data": {}}', "malformed_reply"),
        (429, {"content-type": "application/json", "retry-after": "12"}, b'{"code": "4290"}', "4290"),
        (503, {}, b"", "503"),
        (401, {"content-type": "application/json"}, b'{"code": "1001", "message": "bad signature"}', "1001"),
    ],
)
def test_national_replies_are_classified(status: int, headers: dict[str, str], body: bytes, code: str) -> None:
    outcomes = ADAPTERS["national"].interpret(exchange(), Reply(status, headers, body, NOW))
    assert [type(o) for o in outcomes] == [Retryable, Retryable]
    assert outcomes[0].code == code
    if status == 429:
        assert outcomes[0].retry_after == 12.0


def test_retry_after_as_an_http_date() -> None:
    reply = Reply(429, {"Retry-After": "Wed, 25 Nov 2026 02:00:30 GMT"}, b"", NOW)
    [outcome, _] = ADAPTERS["municipal"].interpret(exchange(), reply)
    assert isinstance(outcome, Retryable) and outcome.retry_after == 30.0


def test_xml_with_a_dtd_is_refused_unparsed() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<Receipt><MessageId>&b;</MessageId><Status>RECEIVED</Status></Receipt>"
    )
    outcomes = ADAPTERS["provincial"].interpret(exchange(), Reply(200, {"content-type": "application/xml"}, bomb, NOW))
    assert {o.code for o in outcomes if isinstance(o, Retryable)} == {"hostile_reply"}


def test_provincial_errors_and_receipts() -> None:
    xml = {"content-type": "application/xml"}
    receipt = b"<Receipt><MessageId>m-1</MessageId><Status>RECEIVED</Status><Count>2</Count></Receipt>"
    assert ADAPTERS["provincial"].interpret(exchange(), Reply(200, xml, receipt, NOW)) == [
        Received("k1", "m-1"),
        Received("k2", "m-1"),
    ]
    schema_error = b"<Error><Code>E100</Code><Message>bad</Message></Error>"
    assert {type(o) for o in ADAPTERS["provincial"].interpret(exchange(), Reply(400, xml, schema_error, NOW))} == {
        Rejected
    }
    signature = b"<Error><Code>E101</Code><Message>bad signature</Message></Error>"
    assert {type(o) for o in ADAPTERS["provincial"].interpret(exchange(), Reply(400, xml, signature, NOW))} == {
        Retryable
    }


def test_duplicate_acknowledgements_count_once() -> None:
    body = orjson.dumps(
        {
            "code": "0",
            "data": {
                "status": "finished",
                "items": [
                    {"key": "k1", "result": "accepted"},
                    {"key": "k1", "result": "rejected", "error_code": "2001"},
                    {"key": "k2", "result": "rejected", "error_code": "2002", "error_message": "USCC invalid"},
                ],
            },
        }
    )
    outcomes = ADAPTERS["national"].interpret_results(
        exchange(), Reply(200, {"content-type": "application/json"}, body, NOW), ["k1", "k2", "k3"]
    )
    assert [type(o) for o in outcomes] == [Accepted, Rejected, Retryable]
    assert outcomes[1] == Rejected("k2", "2002", "USCC invalid") and outcomes[2].code == "missing_result"


def test_processing_results_are_none() -> None:
    body = orjson.dumps({"code": "0", "data": {"status": "processing", "items": []}})
    reply = Reply(200, {"content-type": "application/json"}, body, NOW)
    assert ADAPTERS["national"].interpret_results(exchange(), reply, ["k1"]) is None


@respx.mock
def test_transport_failures_become_retryable_outcomes() -> None:
    route = respx.post("https://platform.example/api/records")
    client = TargetClient(
        ADAPTERS["municipal"], Transport(httpx.Client(), "https://platform.example", lambda: NOW), NoAuth(), lambda: NOW
    )
    sent = [item(Kind.LICENCE, "municipal")]
    route.mock(side_effect=httpx.ReadTimeout("slow"))
    [timeout] = client.deliver(sent)
    assert isinstance(timeout, Retryable) and timeout.code == "timeout"
    route.mock(side_effect=httpx.ConnectError("refused"))
    [refused] = client.deliver(sent)
    assert isinstance(refused, Retryable) and refused.code == "connection"
    route.mock(return_value=httpx.Response(200, json={"accepted": [sent[0].key], "errors": []}))
    assert client.deliver(sent) == [Accepted(sent[0].key, "accepted")]
    client.close()


@respx.mock
@pytest.mark.parametrize(
    ("status", "headers", "code", "wait"),
    [
        (429, {"Retry-After": "120"}, "429", 120.0),  # throttled: an answer, not an outage
        (503, {"Retry-After": "45"}, "token", 45.0),  # down, but says when to come back
        (429, {}, "429", None),  # no Retry-After: the normal backoff applies
    ],
)
def test_a_token_endpoint_that_asks_us_to_wait_is_honoured(
    status: int, headers: dict[str, str], code: str, wait: float | None
) -> None:
    municipal = Municipal(MunicipalConfig("demo-municipal", "demo-municipal-secret"))
    token = respx.post("https://platform.example/oauth/token").mock(
        return_value=httpx.Response(status, headers=headers, json={"error": "slow_down"})
    )
    records = respx.post("https://platform.example/api/records")
    transport = Transport(httpx.Client(), "https://platform.example", lambda: NOW)
    client = TargetClient(municipal, transport, ClientCredentials(transport, municipal.token_request()), lambda: NOW)
    sent = [item(Kind.LICENCE, "municipal"), item(Kind.PENALTY, "municipal")]
    outcomes = client.deliver(sent)
    assert outcomes == [Retryable(i.key, code, f"token endpoint answered HTTP {status}", wait) for i in sent]
    assert (token.call_count, records.call_count) == (1, 0)  # the records were not sent without a token
    client.close()


def test_a_503_with_retry_after_carries_it() -> None:
    reply = Reply(503, {"content-type": "application/json", "Retry-After": "30"}, b'{"code":"5000"}', NOW)
    outcomes = ADAPTERS["municipal"].interpret(exchange(("k1",)), reply)
    assert outcomes == [Retryable("k1", "503", 'target answered HTTP 503: {"code":"5000"}', 30.0)]


@respx.mock
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_batch_stops_at_the_first_request_that_times_out(concurrency: int) -> None:
    """A hanging portal costs a batch of notices one deadline, not one per notice (issue 8, defect 1)."""
    route = respx.route(host="platform.example").mock(side_effect=httpx.ReadTimeout("trickling"))
    transport = Transport(httpx.Client(), "https://platform.example", lambda: NOW)
    client = TargetClient(ADAPTERS["portal"], transport, NoAuth(), lambda: NOW, concurrency=concurrency)
    sent = [
        Item(f"cg-{i}-v1-u-portal", f"hhzjj-{i}", Kind.LICENCE, Operation.UPSERT, 1, content(Kind.LICENCE))
        for i in range(12)
    ]
    outcomes = client.deliver(sent)
    assert len(outcomes) == 12 and all(isinstance(o, Retryable) for o in outcomes)
    assert route.call_count <= concurrency  # only those already under way when the first one timed out
    assert {o.code for o in outcomes} == {"timeout", "not_sent"}
    assert sum(o.code == "timeout" for o in outcomes) == route.call_count
