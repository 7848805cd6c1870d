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
# The token patterns start with a character class, so that the regex engine skips to the candidates at C speed: a
# pattern that starts with \b, a lookbehind or an IGNORECASE letter is tried at every position (4 times the CPU on
# a notice). The boundary is tested after the first character instead, and the case-insensitive spelling is written
# out: these are ``\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+`` under re.IGNORECASE, with the characters IGNORECASE
# matches to ASCII letters (ſ for s; İ and ı for i; the Kelvin sign for k), and
# ``(?<![0-9A-Za-z])([0-9]{17}[0-9Xx])(?![0-9A-Za-z])``; tests/unit/test_excerpts_reference.py checks them against
# the originals for every code point.
_BEARER = re.compile(
    r"([Bb](?<!\w[Bb])(?:[Ee][Aa][Rr][Ee][Rr]|[Aa][Ss\u017f][Ii\u0130\u0131][Cc]))"
    r"\s+[A-Za-z0-9._~+/=\u0130\u0131\u017f\u212a-]+"
)
_RESIDENT_ID = re.compile(r"([0-9](?<![0-9A-Za-z][0-9])[0-9]{16}[0-9Xx])(?![0-9A-Za-z])")
_XML_ELEMENT = re.compile(r"<((?:[\w.-]+:)?[\w.-]+)(\s[^>]*)?>([^<]*)</\1>")
_XML_ATTRIBUTE = re.compile(r"([\w.:-]+)=(\"[^\"]*\"|'[^']*')")
# Characters a token (an ID number, a Bearer value) is made of: the work is bounded by cutting between tokens
_TOKEN_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._~+/=-")
_MARGIN = 64  # characters read past the limit, so that the kept part never depends on where the reading stopped


@dataclass(frozen=True, slots=True)
class Excerpt:
    request: str
    reply: str


_KEYS: dict[str, bool] = {}  # secret() of JSON keys: a dict look-up costs a third of the lru_cache call


@functools.lru_cache(maxsize=4096)  # the same few keys in every body: 35 searches per notice otherwise
def secret(name: str) -> bool:
    return bool(_SECRET.search(name))


def mask_ids(text: str) -> str:
    def masked(match: re.Match[str]) -> str:
        number = match.group(1).upper()
        # the check character, then a real birth date (not ric.validate: it also wants a known region); the check
        # character first because it is ten times cheaper and rules out 10 in 11 numbers that are not IDs
        if ric.calc_check_digit(number) != number[17]:
            return match.group(0)
        try:
            ric.get_birth_date(number)
        except ValueError:
            return match.group(0)
        return mask_id_number(number)

    return _RESIDENT_ID.sub(masked, text)


def _hide_json(value: Any) -> Any:
    """``value``, as orjson parsed it, with the value of every key named as a secret replaced, in place: copying
    every dict and list of a 500-item batch cost three times what the walk itself costs."""
    if type(value) is dict:
        for k, v in value.items():
            hidden = _KEYS.get(k)
            if hidden is None:
                if len(_KEYS) >= 4096:  # replies may carry keys made of data: bounded like secret()'s cache
                    _KEYS.clear()
                hidden = _KEYS[k] = secret(k)
            if hidden:
                value[k] = HIDDEN  # a value replaced, not a key added: allowed while iterating
            elif type(v) is dict or type(v) is list:
                _hide_json(v)
    elif type(value) is list:
        for v in value:
            if type(v) is dict or type(v) is list:
                _hide_json(v)
    return value


def _xml(text: str) -> str:
    def element(match: re.Match[str]) -> str:
        name, attrs, inner = match.group(1), match.group(2) or "", match.group(3)
        attrs = _attributes(attrs)
        return f"<{name}{attrs}>{HIDDEN if secret(name) else inner}</{name}>"

    return _attributes(_XML_ELEMENT.sub(element, text))


def _attributes(text: str) -> str:
    """``_XML_ATTRIBUTE.sub`` with secret values hidden, the search started from each "=": the pattern starts with
    a name, so the engine tries it at every character and, in a run of name characters (CJK text is one), at every
    length (1.1 ms for 8 KB of a provincial batch). A match can only start where a run of name characters starts,
    and its "=" is the first one after that: the run that ends at an "=" is where the pattern is tried."""
    parts: list[str] = []
    done = 0
    at = text.find("=")
    while at != -1:
        start = at
        while start > done and (text[start - 1].isalnum() or text[start - 1] in "_.:-"):  # [\w.:-]
            start -= 1
        match = _XML_ATTRIBUTE.match(text, start) if start < at else None
        if match is None:
            at = text.find("=", at + 1)
            continue
        name = match.group(1)
        parts += (text[done:start], f'{name}="{HIDDEN}"' if secret(name) else match.group(0))
        done = match.end()
        at = text.find("=", done)
    return "".join(parts) + text[done:] if parts else text


def _body(body: bytes, content_type: str, limit: int) -> tuple[str, int | None]:
    """The body as an operator may read it, and None if that is all of it, else the size (bytes) to report for it.
    JSON and forms are read whole (they must parse); XML only as far as the excerpt can show, so a batch of 500
    items costs what its first 8 KB cost."""
    if not body:
        return "", None
    for encoding in ("utf-8", "gb18030"):
        try:
            text = body.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        return f"(binary, {len(body)} bytes)", None
    kind = content_type.lower()
    stripped = text.lstrip()
    if "json" in kind or stripped[:1] in ("{", "["):
        try:  # orjson: the standard library's encoder drops to pure Python once asked to indent (90 µs a notice)
            return _decoded(orjson.dumps(_hide_json(orjson.loads(text)), option=orjson.OPT_INDENT_2), limit)
        except (orjson.JSONDecodeError, TypeError):
            pass
    if "x-www-form-urlencoded" in kind:
        return urlencode([(k, HIDDEN if secret(k) else v) for k, v in parse_qsl(text, keep_blank_values=True)]), None
    if "xml" in kind or "html" in kind or stripped.startswith("<"):
        read = _before_last_element(text, limit)
        return _xml(read), None if read is text else len(body)
    return text, None


def _decoded(data: bytes, limit: int) -> tuple[str, int | None]:
    """Valid UTF-8 that _cut will cut (JSON as orjson writes it), decoded only as far as _cut reads it, with its
    size: a 500-item batch is 370 KB of text, 8 KB of which are shown. The part must end on a character that is not
    blank, as the whole does (JSON ends with a bracket, a quote, a digit or a letter): the excerpt strips the end."""
    if len(data) > 4 * (limit + _MARGIN + 2):
        part = data[: 4 * (limit + _MARGIN + 2)].decode("utf-8", errors="ignore").rstrip()  # a character cut ends it
        if len(part) > limit + _MARGIN:
            return part, len(data)
    return data.decode(), None


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
    body, size = _body(request.body, content_type, limit)
    return _cut(f"{head}\n\n{body}".rstrip(), limit, None if size is None else len(head.encode()) + 2 + size)


def reply_excerpt(reply: Reply, limit: int = LIMIT) -> str:
    content_type = next((v for k, v in reply.headers.items() if k.lower() == "content-type"), "")
    head = f"HTTP {reply.status}\n{_headers(reply.headers)}"
    body, size = _body(reply.body, content_type, limit)
    return _cut(f"{head}\n\n{body}".rstrip(), limit, None if size is None else len(head.encode()) + 2 + size)


def failed(code: str, message: str) -> str:
    """The reply excerpt of an exchange that got no reply (timeout, refused connection, cut off)."""
    return _cut(f"（无应答）{code}: {message}", LIMIT)
