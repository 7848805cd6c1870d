"""Articles' content_html cleaned to the portal's allow-list (schemas.html): what goes, what stays, and the list of
what went with its position in the source's text."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from adapters.sandbox.articles import check_html
from schemas.enums import Kind
from schemas.html import clean
from schemas.validation import Canonical, validate
from tests.factories import case, news
from tests.unit.test_normalisation_properties import HTML, PROPERTY

TODAY = dt.date(2026, 11, 25)


def test_the_four_hostile_things_are_removed_and_listed_with_their_position() -> None:
    source = (
        "<p>正文<script>steal()</script></p>\n"
        '<p><img src="https://a.example/x.png" alt="图" onerror="steal()"></p>\n'
        '<p><a href=" JavaScript:steal()">点</a><img src="data:image/png;base64,AAAA"></p>'
    )
    cleaned, removed = clean(source)
    assert cleaned == '<p>正文</p>\n<p><img src="https://a.example/x.png" alt="图"></p>\n<p><a>点</a></p>'
    assert [(r.what, r.name, r.line, r.column) for r in removed] == [
        ("element", "script", 1, 6),
        ("attribute", "onerror", 2, 4),
        ("url", "javascript:", 3, 4),
        ("url", "data:", 3, 39),
    ]
    assert removed[1].as_dict()["message"] == (
        "attribute onerror of <img> is not on the portal's allow-list (line 2, column 4)"
    )


def test_allowed_markup_passes_unchanged_and_nothing_is_listed() -> None:
    source = (
        "<p><strong>粗</strong><em>斜</em><b>b</b><i>i</i><u>u</u><br></p><ul><li>一</li></ul><ol><li>二</li></ol>"
        '<table><thead><tr><th>表</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table><a href="https://x.cn/">链</a>'
    )
    assert clean(source) == (source, [])


def test_other_elements_lose_their_tags_but_keep_their_text_and_no_rel_is_added() -> None:
    cleaned, removed = clean('<div class="x"><span>文字</span></div><a href="https://x.cn" target="_blank">链</a>')
    assert cleaned == '文字<a href="https://x.cn">链</a>'
    assert [(r.what, r.name) for r in removed] == [("element", "div"), ("element", "span"), ("attribute", "target")]


def test_validation_stores_the_cleaned_text_and_keeps_the_list() -> None:
    result = validate(Kind.NEWS, news(content_html="<p>正文</p><style>p{}</style><!-- 注 -->"), today=TODAY)
    assert isinstance(result, Canonical)
    assert result.content["content_html"] == "<p>正文</p>"
    assert [r.as_dict()["code"] for r in result.removed] == ["element_removed", "comment_removed"]
    submitted = result.storable(news(content_html="<p>正文</p><style>p{}</style>"))
    assert submitted["content_html"] == "<p>正文</p>"
    plain = validate(Kind.CASE, case(), today=TODAY)
    assert isinstance(plain, Canonical) and plain.removed == ()


@PROPERTY
@given(HTML, st.text(max_size=30))
def test_cleaning_is_idempotent(html: str, noise: str) -> None:
    once, _ = clean(html + noise)
    again, removed_again = clean(once)
    assert again == once
    assert removed_again == []


@PROPERTY
@given(HTML, st.text(max_size=30))
def test_what_the_gateway_cleans_the_platforms_accept(html: str, noise: str) -> None:
    """The sandbox's checker is written from PROTOCOLS.md apart from the cleaner: each must agree with the other."""
    cleaned, _ = clean(html + noise)
    assert check_html(cleaned) is None, cleaned


def test_the_platforms_refuse_each_thing_the_gateway_removes() -> None:
    for hostile in (
        "<p>x<script>1</script></p>",
        '<p onclick="x()">x</p>',
        '<a href="javascript:x()">x</a>',
        '<img src="data:image/png;base64,AAAA" alt="x">',
        '<img src="/relative.png" alt="x">',
        "<!-- x -->",
        '<div class="x">x</div>',
    ):
        cleaned, removed = clean(hostile)
        assert removed and check_html(hostile) is not None and check_html(cleaned) is None, hostile
        assert check_html(hostile)[0] == "3001"  # type: ignore[index]
