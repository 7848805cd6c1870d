"""Articles' ``content_html`` cleaned to the portal's allow-list (PROTOCOLS.md "Articles"), and what was removed.

The portal and 信用怀化 take only ``p br strong em b i u ul ol li table thead tbody tr th td``, ``img`` with an
``https:`` ``src`` and an ``alt``, and ``a`` with an ``https:`` ``href``; anything else is refused with ``3001``.
The gateway cleans before it stores, so what is stored, hashed and sent is what the platforms take.

nh3 (the Rust ``ammonia`` sanitiser, an HTML5 parser) does the cleaning: its output is the stored text. A survey
of the source's own text with the standard library's tokenizer says what went and where (line, column), so the
source learns what to fix; the survey explains, nh3 decides. Scripts and styles go with their content; other
elements off the list lose their tags and keep their text; comments go; URLs other than ``https:`` go (a
``javascript:`` link, a ``data:`` image, a relative path the portal could not resolve), and an image whose URL
went goes with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

import nh3

ALLOWED_TAGS = frozenset(
    {"p", "br", "strong", "em", "b", "i", "u", "ul", "ol", "li", "table", "thead", "tbody"}
    | {
        "tr",
        "th",
        "td",
        "img",
        "a",
    }
)
ALLOWED_ATTRIBUTES = {"img": frozenset({"src", "alt"}), "a": frozenset({"href"})}
URL_ATTRIBUTES = frozenset({("img", "src"), ("a", "href")})
DROPPED_WITH_CONTENT = frozenset({"script", "style"})
FIELD = "content_html"


@dataclass(frozen=True, slots=True)
class Removal:
    """One thing cleaning took out: an ``element``, an ``attribute``, a ``url`` (its scheme) or a ``comment``,
    at a 1-based line and column of the text the source sent."""

    what: str
    name: str
    line: int
    column: int
    element: str | None = None  # for attributes and URLs: the element that carried them

    def as_dict(self) -> dict[str, object]:
        where = f"line {self.line}, column {self.column}"
        on = f" of <{self.element}>" if self.element else ""
        messages = {
            "element": f"<{self.name}> is not on the portal's allow-list ({where})",
            "attribute": f"attribute {self.name}{on} is not on the portal's allow-list ({where})",
            "url": f"{self.name} URL{on} removed: the portal takes https: links and images only ({where})",
            "comment": f"comment removed ({where})",
        }
        return {
            "field": FIELD,
            "code": f"{self.what}_removed",
            "name": self.name,
            "line": self.line,
            "column": self.column,
            "message": messages[self.what],
        }


def https_url(value: str) -> bool:
    return value.strip().lower().startswith("https:")


def _keep(element: str, attribute: str, value: str) -> str | None:
    if (element, attribute) in URL_ATTRIBUTES and not https_url(value):
        return None
    return value


def _scheme(value: str) -> str:
    text = "".join(value.split()).lower()
    head, sep, _ = text.partition(":")
    if sep and head.isascii() and head.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return head + ":"
    return "relative" if text else "empty"


class _Survey(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.removed: list[Removal] = []

    def _at(self) -> tuple[int, int]:
        line, offset = self.getpos()
        return line, offset + 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line, column = self._at()
        if tag not in ALLOWED_TAGS:
            self.removed.append(Removal("element", tag, line, column))
            return
        allowed = ALLOWED_ATTRIBUTES.get(tag, frozenset())
        for name, value in attrs:
            if name not in allowed:
                self.removed.append(Removal("attribute", name, line, column, tag))
            elif (tag, name) in URL_ATTRIBUTES and not https_url(value or ""):
                self.removed.append(Removal("url", _scheme(value or ""), line, column, tag))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_comment(self, data: str) -> None:
        self.removed.append(Removal("comment", "comment", *self._at()))

    def handle_decl(self, decl: str) -> None:
        self.removed.append(Removal("element", "!" + decl.split()[0].lower() if decl.split() else "!", *self._at()))

    def handle_pi(self, data: str) -> None:
        self.removed.append(Removal("element", "?", *self._at()))


def survey(html: str) -> list[Removal]:
    """What cleaning removes from ``html``, in document order."""
    parser = _Survey()
    parser.feed(html)
    parser.close()
    return parser.removed


# An <img> as nh3 writes it (attributes always double-quoted); one left without a src had a URL that was not https.
_IMG = re.compile(r'<img((?:\s+[a-z-]+="[^"]*")*)\s*/?>')


def _https_images_only(html: str) -> str:
    return _IMG.sub(lambda m: m.group(0) if ' src="' in m.group(1) else "", html)


def sanitise(html: str) -> str:
    """``html`` as the portal takes it: nh3 with the allow-list, https URLs only, no rel added, no comments; an
    image whose URL went goes too (images only by https URL)."""
    return _https_images_only(
        nh3.clean(
            html,
            tags=set(ALLOWED_TAGS),
            clean_content_tags=set(DROPPED_WITH_CONTENT),
            attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
            attribute_filter=_keep,
            url_schemes={"https"},
            link_rel=None,
            strip_comments=True,
        )
    )


def clean(html: str) -> tuple[str, list[Removal]]:
    """The cleaned text and what was removed (empty when the source sent clean HTML)."""
    return sanitise(html), survey(html)
