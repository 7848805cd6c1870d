"""adapters/excerpts.py is written for speed (it runs for every notice the portal target sends); this file keeps the
plain version it replaced as the reference and checks, on generated inputs (hypothesis, derandomized) and
exhaustively over every code point where a pattern was rewritten, that both give the same excerpt for any input."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from stdnum.cn import ric

from adapters import excerpts
from adapters.base import Reply, Request
from schemas.identifiers import mask_id_number
from tests.factories import make_resident_id, with_wrong_check_digit
from tests.properties import derandomised

# a fuzz run (every code point in every slot, generated bodies): about a minute, so with the slow tests in CI;
# tests/unit/test_excerpts.py keeps the behaviour itself in `make test`
pytestmark = pytest.mark.slow

# -- the reference: adapters/excerpts.py as it was before it was made fast (commit 611ccc7) --------------------

LIMIT = 8192
HIDDEN = "***"
_SECRET = re.compile(r"sign|token|secret|passw|authori[sz]|cookie|api_?key|credential|sm3", re.I)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I)
_RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])([0-9]{17}[0-9Xx])(?![0-9A-Za-z])")
_XML_ELEMENT = re.compile(r"<((?:[\w.-]+:)?[\w.-]+)(\s[^>]*)?>([^<]*)</\1>")
_XML_ATTRIBUTE = re.compile(r"([\w.:-]+)=(\"[^\"]*\"|'[^']*')")
_TOKEN_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._~+/=-")
_MARGIN = 64


def secret(name: str) -> bool:
    return bool(_SECRET.search(name))


def mask_ids(text: str) -> str:
    def masked(match: re.Match[str]) -> str:
        number = match.group(1).upper()
        try:
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
        try:
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
    if len(text) <= limit + _MARGIN:
        return text
    head = text[: limit + _MARGIN]
    at = head.rfind("<")
    while at > 0 and text[at + 1 : at + 2] == "/":
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
    return _cut(f"（无应答）{code}: {message}", LIMIT)


# -- every code point, slot by slot, where a pattern was rewritten ----------------------------------------------

EVERY = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)


def _every(template: str) -> str:
    """``template`` with each code point in turn for ``{c}``, one a line."""
    before, after = template.split("{c}")
    return before + (after + "\n" + before).join(EVERY) + after


@pytest.mark.parametrize(
    "template",
    [
        "{c}earer t",  # each letter of the keywords, in every case Python's IGNORECASE knows
        "B{c}arer t",
        "Be{c}rer t",
        "Bea{c}er t",
        "B{c}sic t",
        "Ba{c}ic t",
        "Bas{c}c t",
        "{c}Bearer t",  # the word boundary before the keyword
        "{c}bAsIc t",
        "Bearer{c}t",  # the blank after it
        "Bearer {c}",  # the characters of the value
        "Basic a{c}b",
    ],
)
def test_the_bearer_pattern_matches_as_the_original_for_every_character(template: str) -> None:
    text = _every(template)
    assert excerpts._BEARER.sub(r"<\1>", text) == _BEARER.sub(r"<\1>", text)


@pytest.mark.parametrize("template", ["{c}431202198506120315", "431202198506120315{c}", "43120219850612031{c}"])
def test_the_id_pattern_matches_as_the_original_for_every_character(template: str) -> None:
    text = _every(template)
    assert excerpts._RESIDENT_ID.sub(r"<\1>", text) == _RESIDENT_ID.sub(r"<\1>", text)


# -- generated inputs ----------------------------------------------------------------------------------------------

ID = make_resident_id()
PROPERTY = derandomised(200)
CASES = ["Bearer", "bearer", "BEARER", "bEaReR", "Basic", "BASIC", "baſic", "BaSİc", "bası c", "Baſıc", "Basic"]
_ids = st.one_of(
    st.builds(
        make_resident_id,
        st.sampled_from(["431202", "110101", "000000", "999999"]),
        st.sampled_from(["19850612", "20000229", "19990229", "20261120", "00000101", "19851301"]),
        st.from_regex(r"\A[0-9]{3}\Z"),
    ),
    st.just(ID).map(with_wrong_check_digit),
    st.just(make_resident_id(seq="004")).map(str.lower),  # an X check character, written x
    st.from_regex(r"\A[0-9]{17}[0-9Xx]\Z"),
    st.from_regex(r"\A[0-9]{15,20}\Z"),
)
_bearers = st.builds(
    "{}{}{}".format,
    st.sampled_from(CASES),
    st.sampled_from([" ", "  ", "\t", "\n", "\u3000", "\xa0", ""]),
    st.from_regex(r"\A[A-Za-z0-9._~+/=\-ſKİı]{0,12}\Z"),
)
_pieces = st.one_of(
    _ids,
    _bearers,
    st.text(alphabet="公示许可张伟　，。0123456789abcXxBbſKİı _-./=:\"'<>&\n", max_size=12),
    st.sampled_from(["x", "中", "9", "_", "-", " ", "\n", "sign", "token=", 'sign="s"', "<a>", "</a>", "<", "</"]),
)
_text = st.lists(_pieces, max_size=40).map("".join)
_limits = st.sampled_from([LIMIT, 60, 90, 200, 400])


def _padded(text: str, pad: int, where: str) -> str:
    """Text moved about the cut: ``pad`` characters of ``where`` before it."""
    return where * pad + text


@st.composite
def _json_value(draw: st.DrawFn, depth: int = 0) -> Any:
    if depth > 3 or draw(st.booleans()):
        return draw(st.one_of(_text, st.integers(), st.floats(allow_nan=False), st.booleans(), st.none()))
    if draw(st.booleans()):
        return [draw(_json_value(depth + 1)) for _ in range(draw(st.integers(0, 4)))]
    keys = st.one_of(st.sampled_from(["sign", "Token", "name", "ſign", "ID", "x", "authorisation", "api_key"]), _text)
    return {draw(keys): draw(_json_value(depth + 1)) for _ in range(draw(st.integers(0, 4)))}


_values = st.sampled_from(['"v"', "'s'", '"a=b"', "v", '""', "\"x y='z'\""])


@st.composite
def _xml_document(draw: st.DrawFn) -> str:
    names = st.sampled_from(["Item", "Sm3Mac", "ns:Token", "Reason", "ZJHM", "a.b-c", "Sign", "x"])
    parts = []
    for _ in range(draw(st.integers(0, 30))):
        name = draw(names)
        attrs = "".join(f" {draw(names)}={draw(_values)}" for _ in range(2))
        parts.append(f"<{name}{attrs if draw(st.booleans()) else ''}>{draw(_text)}</{name}>")
        parts.append(draw(st.sampled_from(["", "<Wrap>", "</Wrap>", draw(_text)])))
    return "".join(parts)


_bodies = st.one_of(
    _text.map(str.encode),
    _json_value().map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    _json_value().map(lambda v: json.dumps(v, indent=1).encode()),
    _xml_document().map(str.encode),
    _xml_document().map(lambda x: x.encode("gb18030")),
    _text.map(lambda x: x.encode("gb18030")),
    st.builds(lambda k, v: urlencode([("client_secret", v), (k, v)]).encode(), _text, _text),
    st.binary(max_size=64),
)
_content_types = st.sampled_from(
    ["", "application/json", "application/xml; charset=UTF-8", "text/plain", "application/x-www-form-urlencoded"]
)


@st.composite
def _sized_body(draw: st.DrawFn) -> bytes:
    """A body, often repeated or padded to lengths about the cut of the limit drawn with it."""
    body = draw(_bodies)
    how = draw(st.sampled_from(["as is", "repeat", "pad"]))
    if how == "repeat" and body:
        body = body * draw(st.integers(1, 600 // max(1, min(len(body), 600)) + 40))
    elif how == "pad":
        body = draw(st.sampled_from([b" ", "中".encode(), b"9", b"a"])) * draw(st.integers(0, 9000)) + body
    return body


def _same(request: Request, limit: int) -> None:
    assert excerpts.request_excerpt(request, limit) == request_excerpt(request, limit)
    reply = Reply(200, request.headers, request.body)
    assert excerpts.reply_excerpt(reply, limit) == reply_excerpt(reply, limit)


@PROPERTY
@given(_text, st.integers(0, 9000), st.sampled_from(["", " ", "中", "x", "9", "ſ"]))
@example(f"xBearer Bearer abc Bearer\u3000x 中Bearer y {ID}", 0, "")
@example("Bearer abc", 0, "")
def test_texts_give_the_same_excerpt_masks_and_failures(text: str, pad: int, where: str) -> None:
    text = _padded(text, pad, where)
    assert excerpts.mask_ids(text) == mask_ids(text)
    assert excerpts._cut(text, LIMIT) == _cut(text, LIMIT)
    assert excerpts.failed("timeout", text) == failed("timeout", text)
    reply = Reply(200, {"Content-Type": "text/plain"}, text.encode())
    assert excerpts.reply_excerpt(reply) == reply_excerpt(reply)


@PROPERTY
@given(_sized_body(), _content_types, _limits, _text)
def test_bodies_of_every_kind_give_the_same_excerpts(body: bytes, content_type: str, limit: int, query: str) -> None:
    headers = {"Content-Type": content_type, "Authorization": "Bearer abc", "X-Note": query.replace("\n", " ")}
    _same(Request("POST", f"/api?sign=abc&q={query}", headers, body), limit)


@PROPERTY
@given(st.lists(_json_value(), min_size=1, max_size=3), st.integers(1, 700), _limits)
def test_large_json_gives_the_same_excerpt_at_every_size(values: list[Any], copies: int, limit: int) -> None:
    """Large enough that only the first part of the indented JSON is decoded."""
    body = json.dumps({"items": values * copies, "sign": "s"}, ensure_ascii=False).encode()
    _same(Request("POST", "/batches", {"Content-Type": "application/json"}, body), limit)


@pytest.mark.parametrize("pad", range(0, 200, 7))
def test_portal_like_json_about_the_cut_gives_the_same_excerpt(pad: int) -> None:
    """JSON whose indented form reaches the limit and the prefix-decoding threshold at every offset."""
    for copies in (1, 40, 70, 600):
        fields = [{"label": "许可编号" + "x" * pad, "value": ID}, {"label": "token", "value": "Bearer abc"}] * copies
        body = json.dumps({"column": "xzxk", "fields": fields, " " * pad: " " * 9000}, ensure_ascii=False)
        _same(Request("PUT", "/cms/api/notices/1", {"Content-Type": "application/json"}, body.encode()), LIMIT)


@pytest.mark.parametrize("limit", [LIMIT, 100])
@pytest.mark.parametrize("blank", [" ", "\u3000"])
def test_json_with_a_long_blank_run_across_the_decoded_part_gives_the_same_excerpt(limit: int, blank: str) -> None:
    """The decoded part of a large JSON body may end inside a run of blanks, which the excerpt strips from its end."""
    for n in (4 * limit, 4 * (limit + 66) - 20, 4 * (limit + 66) + 5, 10 * limit):
        body = json.dumps({"a": blank * n + "x", "b": "中" * n}, ensure_ascii=False).encode()
        _same(Request("POST", "/batches", {"Content-Type": "application/json"}, body), limit)


@pytest.mark.parametrize(
    "template", ['sign{c}x="s" ', "<a sign{c}x='s'>t</a>", 'a{c}="s" ', 'b="{c}" sign="s"', 'sign={c}"s" x="y"']
)
def test_xml_attributes_are_found_as_the_original_pattern_finds_them_for_every_character(template: str) -> None:
    """A character of a name lengthens it (``sign…x`` is a secret, ``x`` alone is not)."""
    text = _every(template)
    assert excerpts._xml(text) == _xml(text)
