"""What an operator may see of one exchange: an excerpt of the request and of the reply, each at most 8 KB.

Kept with every attempt so that "why did the platform say no" is answered from the console, not from a packet
capture. What must never be kept is removed first: signatures, tokens, secrets and passwords wherever they stand
(headers, query parameters, JSON keys, XML elements and attributes, form fields, ``Bearer`` values), and resident
ID numbers (18 characters with a valid GB 11643 check character) are masked as the public form masks them
(``4312**********0312``). Pure functions: no network, no database.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from stdnum.cn import ric

from adapters.base import Reply, Request
from schemas.identifiers import mask_id_number

LIMIT = 8192
HIDDEN = "***"
_SECRET = re.compile(r"sign|token|secret|passw|authori[sz]|cookie|api_?key|credential|sm3", re.I)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I)
_RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])([0-9]{17}[0-9Xx])(?![0-9A-Za-z])")
_XML_ELEMENT = re.compile(r"<((?:[\w.-]+:)?[\w.-]+)(\s[^>]*)?>([^<]*)</\1>")
_XML_ATTRIBUTE = re.compile(r"([\w.:-]+)=(\"[^\"]*\"|'[^']*')")
# Characters a token (an ID number, a Bearer value) is made of: the work is bounded by cutting between tokens
_TOKEN_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._~+/=-")
_MARGIN = 64  # characters read past the limit, so that the kept part never depends on where the reading stopped


@dataclass(frozen=True, slots=True)
class Excerpt:
    request: str
    reply: str


@functools.lru_cache(maxsize=4096)  # the same few keys in every body: 35 searches per notice otherwise
def secret(name: str) -> bool:
    return bool(_SECRET.search(name))


def mask_ids(text: str) -> str:
    def masked(match: re.Match[str]) -> str:
        number = match.group(1).upper()
        try:  # the check character and a real birth date (not ric.validate: it also wants a known region)
            ric.get_birth_date(number)
        except ValueError:
            return match.group(0)
        return mask_id_number(number) if ric.calc_check_digit(number) == number[17] else match.group(0)

    return _RESIDENT_ID.sub(masked, text)


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: HIDDEN if secret(str(k)) else _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def _xml(text: str) -> str:
    def attribute(match: re.Match[str]) -> str:
        return f'{match.group(1)}="{HIDDEN}"' if secret(match.group(1)) else match.group(0)

    def element(match: re.Match[str]) -> str:
        name, attrs, inner = match.group(1), match.group(2) or "", match.group(3)
        attrs = _XML_ATTRIBUTE.sub(attribute, attrs)
        return f"<{name}{attrs}>{HIDDEN if secret(name) else inner}</{name}>"

    return _XML_ATTRIBUTE.sub(attribute, _XML_ELEMENT.sub(element, text))


def _body(body: bytes, content_type: str, limit: int) -> tuple[str, bool]:
    """The body as an operator may read it, and whether it was read whole. JSON and forms are read whole (they
    must parse); XML only as far as the excerpt can show, so a batch of 500 items costs what its first 8 KB cost."""
    if not body:
        return "", True
    for encoding in ("utf-8", "gb18030"):
        try:
            text = body.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        return f"(binary, {len(body)} bytes)", True
    kind = content_type.lower()
    stripped = text.lstrip()
    if "json" in kind or stripped[:1] in ("{", "["):
        try:  # orjson: the standard library's encoder drops to pure Python once asked to indent (90 µs a notice)
            return orjson.dumps(_json(orjson.loads(text)), option=orjson.OPT_INDENT_2).decode(), True
        except (orjson.JSONDecodeError, TypeError):
            pass
    if "x-www-form-urlencoded" in kind:
        return urlencode([(k, HIDDEN if secret(k) else v) for k, v in parse_qsl(text, keep_blank_values=True)]), True
    if "xml" in kind or "html" in kind or stripped.startswith("<"):
        read = _before_last_element(text, limit)
        return _xml(read), read is text
    return text, True


def _before_last_element(text: str, limit: int) -> str:
    """At most ``limit`` + a margin of ``text``, cut before the last opening tag it reaches: the element a cut would
    split (a secret's name kept, its value half there) is left out whole. A leaf element cannot hold an opening
    tag, so every leaf that opened before the cut also closed before it."""
    if len(text) <= limit + _MARGIN:
        return text
    head = text[: limit + _MARGIN]
    at = head.rfind("<")
    while at > 0 and text[at + 1 : at + 2] == "/":  # text, not head: a "<" may be head's last character
        at = head.rfind("<", 0, at)
    return head[:at] if at > 0 else ""


def _headers(headers: Any) -> str:
    return "\n".join(f"{k}: {HIDDEN if secret(str(k)) else v}" for k, v in dict(headers).items())


def _path(path: str) -> str:
    parts = urlsplit(path)
    if not parts.query:
        return path
    query = urlencode([(k, HIDDEN if secret(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)])
    return urlunsplit(parts._replace(query=query))


def _cut(text: str, limit: int, size: int | None = None) -> str:
    """Secrets out and IDs masked first, then at most ``limit`` bytes of UTF-8 (a cut says so, with ``size``, the
    length of what was cut, when the body was already read only in part).

    The token patterns run over the first ``limit`` characters and a margin only, cut between two tokens: every
    character after that lies past ``limit`` bytes, and no ID number or Bearer value is split by it."""
    read = text
    if len(text) > limit + _MARGIN:
        end = limit + _MARGIN
        while end > limit and text[end - 1] in _TOKEN_CHARS:
            end -= 1
        read = text[:end]
    clean = mask_ids(_BEARER.sub(lambda m: f"{m.group(1)} {HIDDEN}", read))
    data = clean.encode()
    if len(data) <= limit and read is text and size is None:
        return clean
    total = size if size is not None else len(text.encode())
    note = f"\n…（已截断，原长 {total} 字节）"
    room = limit - len(note.encode())
    return data[:room].decode("utf-8", errors="ignore") + note


def request_excerpt(request: Request, limit: int = LIMIT) -> str:
    content_type = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "")
    head = f"{request.method} {_path(request.path)}\n{_headers(request.headers)}"
    body, whole = _body(request.body, content_type, limit)
    return _cut(f"{head}\n\n{body}".rstrip(), limit, None if whole else len(head.encode()) + 2 + len(request.body))


def reply_excerpt(reply: Reply, limit: int = LIMIT) -> str:
    content_type = next((v for k, v in reply.headers.items() if k.lower() == "content-type"), "")
    head = f"HTTP {reply.status}\n{_headers(reply.headers)}"
    body, whole = _body(reply.body, content_type, limit)
    return _cut(f"{head}\n\n{body}".rstrip(), limit, None if whole else len(head.encode()) + 2 + len(reply.body))


def failed(code: str, message: str) -> str:
    """The reply excerpt of an exchange that got no reply (timeout, refused connection, cut off)."""
    return _cut(f"（无应答）{code}: {message}", LIMIT)
