"""Reading replies without trusting them: content type, size, UTF-8, JSON, and XML with a safe parser.

A reply comes from across a network we do not control: a proxy may answer with an HTML error page, an attacker
or a broken platform with a DTD full of entities or a 50 MB body. Every such reply becomes a ``ReplyError`` with
a stable code, which the adapters classify as retryable; none of them crashes, hangs or expands entities.
The size cap is enforced twice: while streaming (``adapters.transport``) and here.
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from typing import Any

import orjson
from lxml import etree

from adapters.base import Outcome, Reply, ReplyError, Retryable

MAX_REPLY_BYTES = 8 * 1024 * 1024

_XML_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


def _media_type(reply: Reply) -> str:
    value = next((v for k, v in reply.headers.items() if k.lower() == "content-type"), "")
    return value.split(";")[0].strip().lower()


def _check_size(reply: Reply) -> None:
    if len(reply.body) > MAX_REPLY_BYTES:
        raise ReplyError("reply_too_large", f"reply of {len(reply.body)} bytes exceeds {MAX_REPLY_BYTES}")


def json_body(reply: Reply) -> Any:
    _check_size(reply)
    media = _media_type(reply)
    if media != "application/json" and not media.endswith("+json"):
        raise ReplyError("wrong_content_type", f"expected JSON, got {media or 'no content type'}: {_peek(reply)}")
    try:
        return orjson.loads(reply.body)
    except orjson.JSONDecodeError as exc:
        raise ReplyError("malformed_reply", f"reply is not valid JSON (UTF-8): {exc}") from None


def xml_body(reply: Reply) -> etree._Element:
    _check_size(reply)
    media = _media_type(reply)
    if media not in ("application/xml", "text/xml"):
        raise ReplyError("wrong_content_type", f"expected XML, got {media or 'no content type'}: {_peek(reply)}")
    if b"<!DOCTYPE" in reply.body or b"<!ENTITY" in reply.body:
        raise ReplyError("hostile_reply", "reply carries a DTD; refused without parsing it")
    try:
        return etree.fromstring(reply.body, _XML_PARSER)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise ReplyError("malformed_reply", f"reply is not well-formed XML: {exc}") from None


def _peek(reply: Reply) -> str:
    """The start of an unexpected body, for the operator's eyes: a proxy's HTML title says a lot."""
    text = reply.body[:200].decode("utf-8", "replace")
    return " ".join(text.split())[:120]


def retry_after(reply: Reply) -> float | None:
    """Retry-After in seconds: either form of RFC 9110 (delay-seconds or an HTTP date)."""
    value = next((v for k, v in reply.headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if reply.received_at is None or when.tzinfo is None:
        return None
    return max(0.0, (when - reply.received_at).total_seconds())


def transient_http(keys: Sequence[str], reply: Reply, code: str | None = None) -> list[Outcome] | None:
    """Outcomes for replies that are retryable whatever the protocol: 429, 5xx, 408, auth trouble.

    401/403 are retryable on purpose: wrong credentials are the gateway's configuration, not the record's fault,
    so records wait (and the target's alert shows) instead of being dead-lettered one by one.
    """
    status = reply.status
    if status == 429:
        wait = retry_after(reply)
        return [Retryable(k, code or "429", "throttled by the target", wait) for k in keys]
    if status >= 500 or status == 408:  # a 503 may say when to come back (RFC 9110 §10.2.3): honour it too
        wait = retry_after(reply)
        return [Retryable(k, code or str(status), f"target answered HTTP {status}: {_peek(reply)}", wait) for k in keys]
    if status in (401, 403):
        return [
            Retryable(k, code or str(status), f"target refused our credentials (HTTP {status}): {_peek(reply)}")
            for k in keys
        ]
    return None


def unreadable(keys: Sequence[str], error: ReplyError) -> list[Outcome]:
    return [Retryable(k, error.code, error.message) for k in keys]
