"""The platforms' checks of articles (PROTOCOLS.md "Articles"), written from the protocol notes, not from the
gateway's cleaner: the portal's HTML allow-list (code ``3001``) and 信用怀化's ``WZ_*`` fields.

Allowed: ``p br strong em b i u ul ol li table thead tbody tr th td``, ``img`` with an ``https:`` ``src`` (and an
``alt``), ``a`` with an ``https:`` ``href``. Anything else (another element, an event or any other attribute, a
``javascript:`` or ``data:`` URL, a comment or declaration) is refused, naming the first offence and where it is.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

Problem = tuple[str, str]

TAGS = {"p", "br", "strong", "em", "b", "i", "u", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td"}
LINKED = {"img": ("src", {"src", "alt"}), "a": ("href", {"href"})}  # element: (its URL attribute, allowed ones)
ARTICLE_TYPES = ("AL", "DT")
CASE_TYPES = ("守信激励", "失信惩戒")
LENGTHS = {"WZ_BT": 200, "WZ_ZY": 500, "WZ_ZW": 100_000, "WZ_FBRQ": 10, "WZ_LYDW": 200, "WZ_ZZ": 50, "WZ_ALLX": 10}
REQUIRED = ("WZ_BT", "WZ_ZW", "WZ_FBRQ", "WZ_LYDW")
_DATE = re.compile(r"\d{4}/\d{2}/\d{2}")


class _Offence(Exception):
    pass


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def _refuse(self, what: str) -> None:
        line, offset = self.getpos()
        raise _Offence(f"{what} at line {line}, column {offset + 1} is not allowed")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in TAGS:
            if attrs:
                self._refuse(f"attribute {attrs[0][0]} on <{tag}>")
            return
        if tag not in LINKED:
            self._refuse(f"element <{tag}>")
        url_attribute, allowed = LINKED[tag]
        values = dict(attrs)
        for name in values:
            if name not in allowed:
                self._refuse(f"attribute {name} on <{tag}>")
        url = (values.get(url_attribute) or "").strip()
        if tag == "img" and not url.lower().startswith("https:"):
            self._refuse(f"an image not by an https: URL ({url[:20] or 'none'})")
        if url_attribute in values and not url.lower().startswith("https:"):
            self._refuse(f"{url_attribute}={url[:20]!r} on <{tag}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_comment(self, data: str) -> None:
        self._refuse("a comment")

    def handle_decl(self, decl: str) -> None:
        self._refuse("a declaration")

    def handle_pi(self, data: str) -> None:
        self._refuse("a processing instruction")

    def unknown_decl(self, data: str) -> None:
        self._refuse("a declaration")


def check_html(text: str) -> Problem | None:
    """None when ``text`` holds only what the portal accepts, else (``3001``, what and where)."""
    checker = _Checker()
    try:
        checker.feed(text)
        checker.close()
    except _Offence as exc:
        return "3001", f"content_html: {exc}"
    return None


def check_article(type_code: str, data: Mapping[str, Any]) -> Problem | None:
    """信用怀化's checks of an article item's fields (2001, 2003, 2004, 2005 as for records; 3001 for the HTML)."""
    if type_code not in ARTICLE_TYPES:
        return "2004", f"unknown article type {type_code!r} (AL 典型案例, DT 工作动态)"
    for code, value in data.items():
        if code not in LENGTHS:
            return "2004", f"unknown field code {code}"
        if not isinstance(value, str):
            return "2004", f"{code} must be text"
        if len(value) > LENGTHS[code]:
            return "2005", f"{code} exceeds {LENGTHS[code]} characters"
    for code in (*REQUIRED, "WZ_ALLX") if type_code == "AL" else REQUIRED:
        if not data.get(code):
            return "2001", f"required field {code} is missing"
    if type_code == "AL" and data["WZ_ALLX"] not in CASE_TYPES:
        return "2004", f"WZ_ALLX {data['WZ_ALLX']!r} is not one of {', '.join(CASE_TYPES)}"
    if type_code == "DT" and "WZ_ALLX" in data:
        return "2004", "WZ_ALLX belongs to typical cases (AL) only"
    if not _date_ok(data["WZ_FBRQ"]):
        return "2003", "WZ_FBRQ must be a real date written YYYY/MM/DD"
    return check_html(data["WZ_ZW"])


def _date_ok(value: str) -> bool:
    if not _DATE.fullmatch(value):
        return False
    try:
        dt.date(int(value[:4]), int(value[5:7]), int(value[8:]))
    except ValueError:
        return False
    return True
