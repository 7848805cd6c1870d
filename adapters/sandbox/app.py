"""The sandbox server: the four target platforms of PROTOCOLS.md under /national, /provincial, /municipal and
/portal, plus /_admin for tests and benchmarks. Written from PROTOCOLS.md; it never imports adapters' code.

Each platform checks what the real one would: signatures, nonces and clock skew (national), the XSD and the
HMAC-SM3 signature (provincial), OAuth2 tokens (municipal), a bearer token and masked notices (portal). Paths in
signatures are relative to the platform's base URL, so the same client works whether the sandbox stands alone
(``credit-gateway sandbox``) or is mounted under ``/sandbox`` of the gateway (``serve --sandbox``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from adapters.sandbox import articles, rules
from adapters.sandbox.faults import Faults
from adapters.sandbox.routing import Router
from adapters.sandbox.state import TARGETS, Entry, Result, SandboxState
from adapters.sandbox.subjects import Subjects, register
from adapters.sandbox.subjects import admin_router as subjects_admin

MAX_BODY = 5 * 1024 * 1024
RECORD_TYPES = ("XK", "CF", "CN", "MD")
COLUMNS = {"xzxk": False, "xzcf": False, "dxal": True, "gzdt": True}  # column: whether its notices are articles
NONCE_TTL = 600.0
SKEW = 300.0
TOKEN_TTL = 600


@dataclass
class Credentials:
    """The sandbox's demo credentials (the gateway's defaults), documented in the README."""

    national: dict[str, str] = field(default_factory=lambda: {"demo-national": "demo-national-secret"})
    provincial_senders: dict[str, str] = field(default_factory=lambda: {"431200-ZJJ": "demo-provincial-sm3-key"})
    municipal: dict[str, str] = field(default_factory=lambda: {"demo-municipal": "demo-municipal-secret"})
    portal_tokens: set[str] = field(default_factory=lambda: {"demo-portal-token"})


class _JSON(Response):
    """A JSON reply; without extra headers its two are set as Starlette's ``init_headers`` would set them."""

    media_type = "application/json"

    def __init__(self, body: bytes, status: int, headers: dict[str, str] | None) -> None:
        if headers is not None or status < 200 or status in (204, 304):
            super().__init__(body, status, headers)
            return
        self.status_code, self.background, self.body = status, None, body
        self.raw_headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return _JSON(orjson.dumps(body), status, headers)


def _xml(element: etree._Element, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        etree.tostring(element, xml_declaration=True, encoding="UTF-8"), status, headers, media_type="application/xml"
    )


def _relative_path(request: Request, platform: str) -> str:
    """The path under the platform's base URL, as the client signed it (mount point and platform prefix cut)."""
    path = str(request.scope["path"]).removeprefix(str(request.scope.get("root_path", ""))).removeprefix(platform)
    query = request.scope.get("query_string", b"").decode()
    return path + (f"?{query}" if query else "")


class Sandbox:
    def __init__(self, state: SandboxState, credentials: Credentials | None = None) -> None:
        self.state = state
        self.credentials = credentials or Credentials()
        self.nonces: dict[str, float] = {}
        self.tokens: dict[str, float] = {}
        self.subjects = Subjects()
        self._changed: asyncio.Condition | None = None
        self.waiting = 0  # requests parked on ``/_admin/{target}/wait``

    @property
    def changed(self) -> asyncio.Condition:
        if self._changed is None:  # created inside the server's event loop
            self._changed = asyncio.Condition()
        return self._changed

    async def touch(self) -> None:
        """Wake whoever waits on ``/_admin/{target}/wait``: the platforms' holdings changed."""
        if not self.waiting:  # the usual case in benchmarks: no lock to take, nobody to notify
            return
        async with self.changed:
            self.changed.notify_all()

    # -- faults --------------------------------------------------------------------------------------------

    async def before(self, target: str) -> Response | None:
        with self.state.lock:  # every data request that reached the platform, answered or not (``requests``)
            self.state.count(target, "requests")
        await self.touch()
        faults = self.state.faults[target]
        f = faults.faults
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        if faults.in_outage(self.state.now()):
            return self.error(target, 503, "5000", "platform down (sandbox outage window)")
        if faults.hit(f.throttle_rate):
            return self.error(target, 429, "4290", "too many requests", {"Retry-After": str(f.retry_after_seconds)})
        if faults.hit(f.error_rate):
            return self.error(target, 500, "5000", "internal error (sandbox fault)")
        return None

    async def after(self, target: str, response: Response) -> Response:
        faults = self.state.faults[target]
        if faults.hit(faults.faults.timeout_rate):
            await asyncio.sleep(faults.faults.hang_seconds)
        if faults.hit(faults.faults.malformed_rate):
            return malformed(faults.faults.malformed_kind)
        return response

    def error(
        self, target: str, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        if target == "provincial":
            root = etree.Element("Error")
            etree.SubElement(root, "Code").text = code
            etree.SubElement(root, "Message").text = message
            return _xml(root, status, headers)
        if target == "municipal" and status == 401:
            return _json({"error": "invalid_token", "error_description": message}, 401, headers)
        return _json({"code": code, "message": message, "data": None}, status, headers)


def malformed(kind: str) -> Response:
    """Replies a broken platform or proxy sends."""
    if kind == "html":
        return Response(
            b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", 200, media_type="text/html"
        )
    if kind == "truncated":
        return Response(b'{"code": "0", "data": {"recei', 200, media_type="application/json")
    if kind == "invalid_utf8":
        return Response(b'{"code": "0", "message": "\xff\xfe\xfa"}', 200, media_type="application/json")
    if kind == "dtd_entities":
        bomb = (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]><Receipt><MessageId>&c;</MessageId></Receipt>'
        )
        return Response(bomb, 200, media_type="application/xml")
    if kind == "wrong_content_type":
        return Response(b'{"code": "0", "data": {}}', 200, media_type="text/plain")

    async def huge() -> AsyncIterator[bytes]:
        chunk = b" " * (1024 * 1024)
        yield b'{"code": "0", "padding": "'
        for _ in range(50):
            yield chunk
        yield b'"}'

    return StreamingResponse(huge(), 200, media_type="application/json")


# -- national ------------------------------------------------------------------------------------------------


def national_router(sb: Sandbox) -> Router:
    router = Router(prefix="/national")

    async def authorised(request: Request, body: bytes) -> Response | None:
        h = request.headers
        key, stamp, nonce, signature = (
            h.get("x-app-key"),
            h.get("x-timestamp"),
            h.get("x-nonce"),
            h.get("x-signature"),
        )
        secret = sb.credentials.national.get(key or "")
        if secret is None or not stamp or not nonce or not signature or not stamp.isdigit():
            return sb.error("national", 401, "1001", "missing or unknown X-App-Key / signature headers")
        now = sb.state.now()
        if abs(now - int(stamp) / 1000) > SKEW:
            return sb.error("national", 401, "1002", "timestamp outside the 5-minute window")
        path, digest = _relative_path(request, "/national"), hashlib.sha256(body).hexdigest()
        text = f"{request.method}\n{path}\n{stamp}\n{nonce}\n{digest}"
        expected = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return sb.error("national", 401, "1001", "signature does not match")
        for old in [n for n, t in sb.nonces.items() if t < now - NONCE_TTL]:
            del sb.nonces[old]
        if len(nonce) < 16 or nonce in sb.nonces:
            return sb.error("national", 401, "1003", "nonce shorter than 16 characters or already used")
        sb.nonces[nonce] = now
        return None

    @router.post("/api/v1/batches")
    async def submit(request: Request) -> Response:
        body = await request.body()
        refused = await authorised(request, body) or await sb.before("national")
        if refused:
            return refused
        if len(body) > MAX_BODY:
            return sb.error("national", 413, "4130", "body over 5 MB")
        try:
            doc = orjson.loads(body)
            batch, entries = str(doc["batch_id"]), json_entries(doc["items"], "data")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            return sb.error("national", 400, "4000", f"malformed batch: {exc}")
        if not 0 < len(entries) <= 500:
            return sb.error("national", 400, "4001", "a batch holds 1 to 500 items")
        receipt = "r-" + hashlib.sha256(batch.encode()).hexdigest()[:32]
        seen = sb.state.receipt("national", receipt, hashlib.sha256(body).hexdigest(), [e.key for e in entries])
        if seen == "other":
            return sb.error("national", 409, "4009", "batch_id already used with another body")
        sb.state.accept_items("national", entries, receipt)
        await sb.touch()
        status = 200 if seen == "same" else 202
        reply = _json(
            {"code": "0", "message": "received", "data": {"receipt_id": receipt, "received": len(entries)}}, status
        )
        return await sb.after("national", reply)

    @router.get("/api/v1/batches/{receipt_id}")
    async def feedback(receipt_id: str, request: Request) -> Response:
        refused = await authorised(request, b"") or await sb.before("national")
        if refused:
            return refused
        found = sb.state.results("national", receipt_id)
        if found is None:
            return sb.error("national", 404, "4040", "unknown receipt")
        finished, results = found
        items = [_national_result(r) for r in _acks(sb, "national", results)]
        data = {"status": "finished" if finished else "processing", "items": items}
        return await sb.after("national", _json({"code": "0", "message": "ok", "data": data}))

    @router.get("/api/v1/records")
    async def records(request: Request, type: str | None = None, page: int = 1, page_size: int = 500) -> Response:
        refused = await authorised(request, b"") or await sb.before("national")
        if refused:
            return refused
        size = max(1, min(page_size, 500))
        total, rows = sb.state.holdings("national", type, (max(page, 1) - 1) * size, size)
        items = [
            {
                "record_id": r["record_id"],
                "key": r["key"],
                "type": r["type"],
                "status": r["status"],
                "data": r["data"],
                "updated_at": _iso(r["updated_at"]),
            }
            for r in rows
        ]
        return _json({"code": "0", "message": "ok", "data": {"total": total, "items": items}})

    register(router, sb, sb.subjects, authorised)
    return router


def json_entries(items: list[dict[str, Any]], data_key: str) -> list[Entry]:
    """Items of the JSON platforms; a missing member raises KeyError, which the caller answers with a 400."""
    return [
        Entry(str(i["key"]), str(i["record_id"]), str(i["op"]), str(i["type"]), i.get(data_key) or {}, i.get("reason"))
        for i in items
    ]


def _acks(sb: Sandbox, target: str, results: list[Result]) -> list[Result]:
    return results * 2 if sb.state.faults[target].faults.duplicate_acks else results


def _national_result(r: Result) -> dict[str, Any]:
    return {
        "key": r.key,
        "result": r.result,
        "error_code": r.code,
        "error_message": r.message,
        "processed_at": _iso(r.processed_at),
    }


@functools.lru_cache(maxsize=1024)  # a receipt's results share one processing time
def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# -- provincial ----------------------------------------------------------------------------------------------

_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def provincial_router(sb: Sandbox, schema: Callable[[], etree.XMLSchema]) -> Router:
    router = Router(prefix="/provincial")

    @router.post("/exchange/submit")
    async def submit(request: Request) -> Response:
        refused = await sb.before("provincial")
        if refused:
            return refused
        body = await request.body()
        if len(body) > MAX_BODY:
            return sb.error("provincial", 413, "E100", "message over 5 MB")
        if not request.headers.get("content-type", "").startswith(("application/xml", "text/xml")):
            return sb.error("provincial", 400, "E100", "Content-Type must be application/xml")
        if b"<!DOCTYPE" in body:
            return sb.error("provincial", 400, "E100", "DTDs are not accepted")
        try:
            root = etree.fromstring(body, _XML_PARSER)
        except etree.XMLSyntaxError as exc:
            return sb.error("provincial", 400, "E100", f"not well-formed: {exc}")
        validator = schema()
        if not validator.validate(root):
            return sb.error("provincial", 400, "E100", f"schema: {last_error(validator)}")
        sender = root.findtext("Header/Sender") or ""
        key = sb.credentials.provincial_senders.get(sender)
        body_element = root.find("Body")
        assert body_element is not None  # the schema requires it
        canonical = etree.tostring(body_element, method="c14n", exclusive=True, with_comments=False)
        if key is None or not hmac.compare_digest(
            _hmac_sm3(key.encode(), canonical), root.findtext("Header/Signature") or ""
        ):
            return sb.error("provincial", 400, "E101", "HMAC-SM3 signature does not match the Body")
        message_id = root.findtext("Header/MessageId") or ""
        entries = [
            Entry(
                r.get("key") or "",
                r.get("recordId") or "",
                r.get("op") or "",
                r.get("type") or "",
                {c.tag: c.text or "" for c in r},
                r.get("reason"),
            )
            for r in body_element.iter("Record")
        ]
        seen = sb.state.receipt(
            "provincial", message_id, hashlib.sha256(canonical).hexdigest(), [e.key for e in entries]
        )
        if seen == "other":
            return sb.error("provincial", 400, "E102", "MessageId already used with other content")
        sb.state.accept_items("provincial", entries, message_id)
        await sb.touch()
        receipt = etree.Element("Receipt")
        etree.SubElement(receipt, "MessageId").text = message_id
        etree.SubElement(receipt, "Status").text = "RECEIVED"
        etree.SubElement(receipt, "Count").text = str(len(entries))
        return await sb.after("provincial", _xml(receipt))

    @router.get("/exchange/feedback")
    async def feedback(messageId: str) -> Response:
        refused = await sb.before("provincial")
        if refused:
            return refused
        found = sb.state.results("provincial", messageId)
        if found is None:
            return sb.error("provincial", 404, "E404", "unknown MessageId")
        finished, results = found
        root = etree.Element("Feedback", messageId=messageId, status="DONE" if finished else "PROCESSING")
        for r in _acks(sb, "provincial", results):
            etree.SubElement(
                root, "Item", key=r.key, result=r.result.upper(), code=r.code or "", message=r.message or ""
            )
        return await sb.after("provincial", _xml(root))

    @router.get("/exchange/holdings")
    async def holdings(type: str | None = None, page: int = 1, size: int = 500) -> Response:
        size = max(1, min(size, 500))
        total, rows = sb.state.holdings("provincial", type, (max(page, 1) - 1) * size, size)
        root = etree.Element("Holdings", total=str(total))
        for r in rows:
            record = etree.SubElement(
                root,
                "Record",
                recordId=r["record_id"],
                key=r["key"],
                type=r["type"],
                status=r["status"].upper(),
                updated=_iso(r["updated_at"]),
            )
            for code, value in r["data"].items():
                etree.SubElement(record, code).text = value
        return _xml(root)

    return router


def last_error(validator: etree.XMLSchema) -> str:
    error = validator.error_log.last_error  # type: ignore[attr-defined]  # lxml-stubs lack it; lxml has it
    return f"line {error.line}: {error.message}" if error else "invalid"


def _hmac_sm3(key: bytes, data: bytes) -> str:
    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize().hex()


# -- municipal -----------------------------------------------------------------------------------------------


def municipal_router(sb: Sandbox) -> Router:
    router = Router(prefix="/municipal")

    def token_ok(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expires = sb.tokens.get(token)
        return scheme.lower() == "bearer" and expires is not None and sb.state.now() < expires

    @router.post("/oauth/token")
    async def token(request: Request) -> Response:
        faults = sb.state.faults["municipal"]
        if faults.hit(faults.faults.token_throttle_rate):
            wait = str(faults.faults.retry_after_seconds)
            return _json(
                {"error": "slow_down", "error_description": "too many token requests"}, 429, {"Retry-After": wait}
            )
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        client, secret = form.get("client_id", ""), form.get("client_secret", "")
        if form.get("grant_type") != "client_credentials" or sb.credentials.municipal.get(client) != secret:
            return _json({"error": "invalid_client"}, 401)
        value = secrets.token_urlsafe(24)
        sb.tokens[value] = sb.state.now() + TOKEN_TTL
        return _json({"access_token": value, "token_type": "Bearer", "expires_in": TOKEN_TTL})

    async def take(request: Request, path: str) -> Response:
        """POST /api/records (≤ 200 records) and POST /api/articles (≤ 50 articles, ≤ 5 MB): the same answer."""
        if not token_ok(request):
            return sb.error("municipal", 401, "invalid_token", "token expired or unknown")
        refused = await sb.before("municipal")
        if refused:
            return refused
        raw = await request.body()
        article = path == "articles"
        if article and len(raw) > MAX_BODY:
            return _json({"code": "4130", "message": "body over 5 MB"}, 413)
        try:
            entries = json_entries(orjson.loads(raw), "fields")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            return _json({"code": "4000", "message": f"malformed request: {exc}"}, 400)
        limit = 50 if article else 200
        if not 0 < len(entries) <= limit:
            return _json({"code": "4001", "message": f"1 to {limit} items per request"}, 400)
        astray = [e.type for e in entries if (e.type in articles.ARTICLE_TYPES) != article]
        if astray:
            other = "/api/records" if article else "/api/articles"
            return _json({"code": "4002", "message": f"type {astray[0]} is sent to {other}"}, 400)
        results = sb.state.accept_items("municipal", entries, None)
        await sb.touch()
        body = {
            "accepted": [r.key for r in results if r.result == "accepted"],
            "errors": [{"key": r.key, "code": r.code, "message": r.message} for r in results if r.result != "accepted"],
        }
        return await sb.after("municipal", _json(body))

    @router.post("/api/records")
    async def submit(request: Request) -> Response:
        return await take(request, "records")

    @router.post("/api/articles")
    async def submit_articles(request: Request) -> Response:
        return await take(request, "articles")

    async def listing(request: Request, path: str, type: str | None, cursor: str | None, limit: int) -> Response:
        if not token_ok(request):
            return sb.error("municipal", 401, "invalid_token", "token expired or unknown")
        offset = int(cursor) if cursor and cursor.isdigit() else 0
        size = max(1, min(limit, 500))
        kinds = articles.ARTICLE_TYPES if path == "articles" else RECORD_TYPES
        if type is not None and type not in kinds:
            return _json({"items": [], "next_cursor": None})
        total, rows = sb.state.holdings("municipal", type or kinds, offset, size)
        items = [
            {
                "record_id": r["record_id"],
                "key": r["key"],
                "type": r["type"],
                "status": r["status"],
                "fields": r["data"],
                "updated_at": _iso(r["updated_at"]),
            }
            for r in rows
        ]
        more = offset + len(rows) < total
        return _json({"items": items, "next_cursor": str(offset + size) if more else None})

    @router.get("/api/records")
    async def records(
        request: Request, type: str | None = None, cursor: str | None = None, limit: int = 500
    ) -> Response:
        return await listing(request, "records", type, cursor, limit)

    @router.get("/api/articles")
    async def article_list(
        request: Request, type: str | None = None, cursor: str | None = None, limit: int = 500
    ) -> Response:
        return await listing(request, "articles", type, cursor, limit)

    return router


# -- portal --------------------------------------------------------------------------------------------------


def unmasked(rows: list[dict[str, str]]) -> str | None:
    """PROTOCOLS.md: natural persons are masked (name keeps its surname, ID numbers keep 4+4 or the last 4)."""
    values = {row["label"]: row["value"] for row in rows}
    category = values.get("行政相对人类别")
    name = values.get("行政相对人名称", "")
    if category == "自然人" and not (name.endswith("*") and len(name) <= 3):
        return "a natural person's name is shown in clear; public notices keep the surname only (张*)"
    number = values.get("证件号码")
    if number is not None and category in ("自然人", "个体工商户"):
        clear = number.replace("*", "")
        if "*" not in number or (len(number) == 18 and clear != number[:4] + number[-4:]) or len(clear) > 8:
            return "a person's document number is shown in clear; public notices mask it (4301**********1234)"
    return None


def portal_router(sb: Sandbox) -> Router:
    router = Router(prefix="/portal")

    def token_ok(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token in sb.credentials.portal_tokens

    def refuse(status: int, message: str) -> Response:
        return _json({"code": str(status), "message": message}, status)

    @router.put("/cms/api/notices/{external_id}")
    async def put(external_id: str, request: Request) -> Response:
        if not token_ok(request):
            return refuse(401, "bad token")
        refused = await sb.before("portal")
        if refused:
            return refused
        try:
            notice = orjson.loads(await request.body())
            fields = notice["fields"]
            article = COLUMNS[notice["column"]]
            ok = (
                notice["title"]
                and isinstance(notice["published_on"], str)
                and all(isinstance(f["label"], str) and isinstance(f["value"], str) for f in fields)
                and isinstance(notice.get("content_html"), str) == article
            )
        except (orjson.JSONDecodeError, KeyError, TypeError):
            ok = False
        if not ok:
            return refuse(
                400,
                "a notice is {column: xzxk|xzcf|dxal|gzdt, title, published_on: YYYY/MM/DD, fields: [...]}, "
                "with content_html in the article columns (dxal, gzdt) only",
            )
        if article and (unclean := articles.check_html(notice["content_html"])):
            return _json({"code": unclean[0], "message": unclean[1]}, 422)
        wrong = rules.check_notice(notice["published_on"], {f["label"]: f["value"] for f in fields})
        if wrong:
            return _json({"code": wrong[0], "message": wrong[1]}, 422)
        problem = unmasked(notice["fields"])
        if problem:
            return refuse(422, problem)
        created, _ = sb.state.put_notice(external_id, notice["column"], notice)
        await sb.touch()
        body = {
            "notice_id": hashlib.sha256(external_id.encode()).hexdigest()[:12],
            "url": f"/xyzl/{notice['column']}/{external_id}.html",
        }
        return await sb.after("portal", _json(body, 201 if created else 200))

    @router.delete("/cms/api/notices/{external_id}")
    async def delete(external_id: str, request: Request) -> Response:
        if not token_ok(request):
            return refuse(401, "bad token")
        refused = await sb.before("portal")
        if refused:
            return refused
        deleted = sb.state.delete_notice(external_id)
        await sb.touch()
        return Response(status_code=204) if deleted else refuse(404, "no such notice")

    @router.get("/cms/api/notices")
    async def notices(request: Request, column: str | None = None, page: int = 1, size: int = 100) -> Response:
        if not token_ok(request):
            return refuse(401, "bad token")
        size = max(1, min(size, 100))
        total, rows = sb.state.holdings("portal", column, (max(page, 1) - 1) * size, size)
        items = [
            {
                "external_id": r["record_id"],
                "notice_id": hashlib.sha256(r["record_id"].encode()).hexdigest()[:12],
                "column": r["type"],
                "title": r["data"]["title"],
                "published_on": r["data"]["published_on"],
                "fields": r["data"]["fields"],
                **({"content_html": r["data"]["content_html"]} if "content_html" in r["data"] else {}),
                "updated_at": _iso(r["updated_at"]),
            }
            for r in rows
            if r["status"] == "public"
        ]
        return _json({"total": total, "items": items})

    return router


# -- admin ---------------------------------------------------------------------------------------------------


def admin_router(sb: Sandbox) -> Router:
    router = Router(prefix="/_admin")

    def known(target: str) -> Response | None:
        return None if target in TARGETS else _json({"error": f"unknown target {target}"}, 404)

    @router.get("/noop")
    async def noop() -> Response:
        """Does nothing: the benchmarks' measure of the raw request rate against this server."""
        return _json({"ok": True})

    @router.get("/{target}/stats")
    async def stats(target: str) -> Response:
        return known(target) or _json(sb.state.stats(target))

    @router.get("/{target}/wait")
    async def wait(
        target: str,
        unique_keys: int = 0,
        public: int = 0,
        withdrawn: int = 0,
        requests: int = 0,
        timeout: float = 30.0,
    ) -> Response:
        """Long-poll until the target's stats reach these numbers (408 with the stats if they do not in time)."""
        if (missing := known(target)) is not None:
            return missing
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(timeout, 600.0)
        sb.waiting += 1  # before the first look at the stats, so no change after it goes unnoticed
        try:
            while True:
                found = sb.state.stats(target)
                enough = found["unique_keys"] >= unique_keys and found["public"] >= public
                if enough and found["withdrawn"] >= withdrawn and found["requests"] >= requests:
                    return _json(found)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return _json(found, 408)
                async with sb.changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(sb.changed.wait(), remaining)
        finally:
            sb.waiting -= 1

    @router.get("/{target}/faults")
    async def get_faults(target: str) -> Response:
        return known(target) or _json(sb.state.faults[target].faults.model_dump())

    @router.put("/{target}/faults")
    async def set_faults(target: str, request: Request) -> Response:
        if (missing := known(target)) is not None:
            return missing
        sb.state.faults[target].set(Faults.model_validate_json(await request.body()))
        return _json(sb.state.faults[target].faults.model_dump())

    @router.delete("/{target}/faults")
    async def clear_faults(target: str) -> Response:
        if (missing := known(target)) is not None:
            return missing
        sb.state.faults[target].set(Faults())
        return Response(status_code=204)

    @router.post("/{target}/forget")
    async def forget(target: str, request: Request) -> Response:
        if (missing := known(target)) is not None:
            return missing
        keys = orjson.loads(await request.body())["keys"]
        return _json({"forgotten": sb.state.forget(target, [str(k) for k in keys])})

    @router.post("/{target}/alter")
    async def alter(target: str, request: Request) -> Response:
        if (missing := known(target)) is not None:
            return missing
        body = orjson.loads(await request.body())
        found = sb.state.alter(target, str(body["key"]), {str(k): str(v) for k, v in body["fields"].items()})
        return _json({"altered": found}, 200 if found else 404)

    return router


def create_sandbox(
    *,
    db: str = ":memory:",
    now: Callable[[], float] = time.time,
    result_delay: float = 1.0,
    faults: dict[str, Faults] | None = None,
    credentials: Credentials | None = None,
) -> Starlette:
    """The sandbox as an ASGI app (standalone or mounted under the gateway)."""
    from functools import cache
    from importlib import resources

    @cache
    def schema() -> etree.XMLSchema:
        xsd = resources.files("schemas") / "contract" / "provincial-exchange.xsd"
        return etree.XMLSchema(etree.fromstring(xsd.read_bytes(), _XML_PARSER))

    state = SandboxState(db, now=now, result_delay=result_delay)
    for target, settings in (faults or {}).items():
        state.faults[target].set(settings)
    sb = Sandbox(state, credentials)
    # the portal first: one request per notice, the most frequent by far, is matched against fewer routes
    routers = (portal_router(sb), national_router(sb), provincial_router(sb, schema), municipal_router(sb))
    admin = (subjects_admin(sb.subjects), admin_router(sb))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        state.save_counts()  # counters are kept in memory: a --db file gets them at the end too

    app = Starlette(routes=[route for router in (*routers, *admin) for route in router.routes], lifespan=lifespan)
    app.state.sandbox = sb
    return app
