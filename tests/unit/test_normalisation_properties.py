"""Properties of normalisation and validation, for any input (hypothesis; issue 8, "Must show").

* Normalisation is idempotent: a record's canonical content, validated again, is itself, with the same hash
  (normalise(normalise(x)) == normalise(x)); so is each field normaliser on its own.
* Validation never raises: whatever JSON a source sends, ``validate`` answers a ``Canonical`` or the project's
  validation errors (a non-empty list of ``FieldError`` with a documented code and a message), never an exception.

Deterministic in CI: every test is derandomised (the examples follow from the test's code, not from a seed that
changes per run) and keeps no example database; bounded examples and no per-example deadline (the machine is
shared, so timing is not a property).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from schemas import fields
from schemas.enums import Fulfilment, Kind, Labelled, spellings
from schemas.errors import FieldError
from schemas.records import DATE_FIELDS, MODELS
from schemas.validation import Canonical, content_hash, validate
from tests import corpus
from tests.factories import BUILDERS, COMPANY, make_resident_id
from tests.properties import derandomised

TODAY = dt.date(2026, 11, 25)
FIELD_CODES = {
    "required",
    "unknown_field",
    "wrong_type",
    "too_long",
    "too_many_items",
    "unknown_value",
    "invalid_uscc",
    "invalid_id_number",
    "invalid_date",
    "future_date",
    "date_order",
    "invalid_amount",
    "too_many_decimals",
    "duplicate_value",
    "not_applicable",
    "invalid_source_id",
    "empty_after_cleaning",
}
PROPERTY = derandomised(150)

# -- inputs ----------------------------------------------------------------------------------------------------

WIDE = str.maketrans({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
PADDING = st.sampled_from(["", " ", "\u3000", "\t", "  \u3000"])
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)


# Article bodies as sources write them: allowed markup, hostile markup and text; one paragraph always survives.
HTML_PARTS = st.sampled_from(
    [
        "<p>正文</p>",
        "<strong>加粗</strong>",
        "a &amp; b &lt; c",
        '<img src="https://a.example/x.png" alt="图">',
        '<img src="data:image/png;base64,AAAA" onerror="alert(1)">',
        '<a href="javascript:alert(1)">链接</a>',
        '<a href="https://a.example/" target="_blank">链接</a>',
        "<script>alert(1)</script>",
        "<!-- 注释 -->",
        "<div><span style='color:red'>红</span></div>",
        "<table><tr><td>1</td></tr></table>",
        "<ul><li>一</li><p>不闭合",
        "\u3000",
    ]
)
HTML = st.lists(HTML_PARTS, max_size=6).map(lambda parts: "<p>正文</p>" + "".join(parts))


@st.composite
def padded(draw: st.DrawFn, value: str) -> str:
    return draw(PADDING) + value + draw(PADDING)


@st.composite
def spelled(draw: st.DrawFn, value: str) -> str:
    """A value as a source might write it: padded, full width or lower case where the API folds that."""
    return draw(padded(draw(st.sampled_from([value, value.translate(WIDE), value.lower()]))))


CODE_FIELDS = {"uscc", "authority_uscc", "source_unit_uscc", "accepting_unit_uscc", "deciding_unit_uscc"}


@st.composite
def variant(draw: st.DrawFn, kind: Kind, *, wild: bool = False, pad_enums: bool = True) -> dict[str, Any]:
    """A valid record of ``kind`` written the many ways the API accepts; ``wild``: now and again one field is
    replaced by any JSON value at all, or remarks by any text."""
    record: dict[str, Any] = BUILDERS[kind.value]()
    if kind in (Kind.LICENCE, Kind.PENALTY) and draw(st.booleans()):
        record["counterpart"] = {
            "name": draw(padded("张三")),
            "category": draw(st.sampled_from(["natural_person", "自然人"])),
            "id_type": draw(st.sampled_from(["resident_id", "身份证", "居民身份证"])),
            "id_number": draw(spelled(make_resident_id())),
        }
    elif "counterpart" in record:
        record["counterpart"] = dict(record["counterpart"]) | {"uscc": draw(spelled(COMPANY))}
    if "content_html" in record:
        record["content_html"] = draw(HTML)
    for name in CODE_FIELDS & set(record):
        record[name] = draw(spelled(record[name]))
    for name in DATE_FIELDS & set(record):
        record[name] = draw(padded(draw(st.sampled_from([record[name], record[name].translate(WIDE)]))))
    model = MODELS[kind]
    for name, info in model.model_fields.items():
        key = info.alias or name
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, Labelled) and key in record:
            spelling = st.sampled_from(spellings(annotation))
            record[key] = draw(spelling.flatmap(padded) if pad_enums else spelling)
    if kind is Kind.COMMITMENT and Fulfilment.parse(record["fulfilment"]) in (
        Fulfilment.PARTIAL,
        Fulfilment.UNFULFILLED,
    ):
        record |= {"unfulfilled_content": draw(padded("未按期提交材料")), "liability_action": "列入重点关注名单"}
    if kind is Kind.PENALTY:
        record["fine_amount"] = draw(
            st.one_of(
                st.sampled_from(["0.2", "0.20", "０.２", " 0.200000 ", "12.5", "0.000001"]),
                st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10**6), places=6).map(str),
                st.sampled_from([0.2, 1, 3.5, 1234.123456]),
            )
        )
    if wild and draw(st.booleans()):
        target = draw(st.sampled_from(sorted(record)))
        record[target] = draw(JSONISH)
    if wild and draw(st.booleans()):
        record["remarks"] = draw(st.one_of(st.none(), TEXT))
    return record


KINDS = st.sampled_from(list(Kind))
RECORDS = KINDS.flatmap(lambda kind: st.tuples(st.just(kind), variant(kind)))
SCHEMA_SPELLED = KINDS.flatmap(lambda kind: st.tuples(st.just(kind), variant(kind, pad_enums=False)))
WILD = KINDS.flatmap(lambda kind: st.tuples(st.just(kind), variant(kind, wild=True)))
ANYTHING = st.tuples(KINDS, JSONISH)
MUTATED = KINDS.flatmap(
    lambda kind: st.tuples(
        st.just(kind),
        st.builds(
            lambda base, extra: base | extra,
            st.just(BUILDERS[kind.value]()),
            st.dictionaries(st.sampled_from([*sorted(BUILDERS[kind.value]()), "x", "list_type"]), JSONISH, max_size=3),
        ),
    )
)


# -- properties ------------------------------------------------------------------------------------------------


def answered(kind: Kind, data: Any) -> Canonical | list[FieldError]:
    result = validate(kind, data, today=TODAY)  # any exception here fails the property
    if isinstance(result, list):
        assert result, "a refusal names at least one reason"
        for error in result:
            assert isinstance(error, FieldError)
            assert error.code in FIELD_CODES, error
            assert error.message, error
    else:
        assert isinstance(result, Canonical)
    return result


@PROPERTY
@given(RECORDS)
def test_normalisation_is_idempotent(case: tuple[Kind, dict[str, Any]]) -> None:
    kind, data = case
    first = answered(kind, data)
    assert isinstance(first, Canonical), first  # every spelling the variants use is one the API accepts
    again = answered(kind, orjson.loads(orjson.dumps(first.content)))  # as it is stored and read back
    assert isinstance(again, Canonical), again
    assert again.content == first.content
    assert again.content_hash == first.content_hash == content_hash(first.content)


@PROPERTY
@given(st.one_of(WILD, ANYTHING, MUTATED))
def test_validation_answers_every_input_without_raising(case: tuple[Kind, Any]) -> None:
    kind, data = case
    result = answered(kind, data)
    if isinstance(result, Canonical):  # and what it accepted, it accepts again as it is
        assert isinstance(answered(kind, result.content), Canonical)


@PROPERTY
@given(st.one_of(TEXT, TEXT.map(lambda t: t.translate(WIDE)), SCALARS))
@example("ΐ")  # upper-cases into a sequence that NFKC composes: normalise_code once lost idempotence here
@example("ｘ\u3000ᾳ ")
def test_each_field_normaliser_is_idempotent(value: Any) -> None:
    once = fields.normalise_code(value)
    assert fields.normalise_code(once) == once
    stripped = fields._strip_text(value)
    assert fields._strip_text(stripped) == stripped


@PROPERTY
@given(SCHEMA_SPELLED)
def test_the_contract_files_accept_what_the_api_accepts(case: tuple[Kind, dict[str, Any]]) -> None:
    """Padded and full-width codes and dates, amounts as numbers or strings, labels or codes: each variant the
    API accepts, the shipped JSON Schema accepts too (enumerations unpadded: that leniency is documented)."""
    kind, data = case
    assert isinstance(answered(kind, data), Canonical)
    errors = [e.message for e in corpus.validator(kind.value).iter_errors(data)]
    assert errors == []
