"""The canonical kinds of CONTRACT.md, field for field: the four records with the national standard's lengths,
and the two articles (典型案例, 工作动态) of CONTRACT.md "Articles".

The models hold shape and per-field rules (types, enumerations, lengths, identifier check digits). Rules that
tie fields together (an identifier required by the counterpart's category, date order, a fine amount required by
the ``fine`` category) live in ``schemas.rules`` so that each error can name the exact field it is about.
"""

from __future__ import annotations

import datetime as dt
import typing
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, model_validator

from schemas.enums import (
    CaseType,
    CommitmentType,
    CounterpartCategory,
    Disclosure,
    Fulfilment,
    IdType,
    Kind,
    LicenceCategory,
    LicenceStatus,
    ListAction,
    ListType,
    PenaltyCategory,
)
from schemas.fields import Day, Html, IdNumber, Money, SourceId, TextField, Uscc, enum_of

CategoryField = Annotated[CounterpartCategory, BeforeValidator(enum_of(CounterpartCategory))]
IdTypeField = Annotated[IdType, BeforeValidator(enum_of(IdType))]
LicenceCategoryField = Annotated[LicenceCategory, BeforeValidator(enum_of(LicenceCategory))]
LicenceStatusField = Annotated[LicenceStatus, BeforeValidator(enum_of(LicenceStatus))]
PenaltyCategoryField = Annotated[PenaltyCategory, BeforeValidator(enum_of(PenaltyCategory))]
CommitmentTypeField = Annotated[CommitmentType, BeforeValidator(enum_of(CommitmentType))]
FulfilmentField = Annotated[Fulfilment, BeforeValidator(enum_of(Fulfilment))]
DisclosureField = Annotated[Disclosure, BeforeValidator(enum_of(Disclosure))]
ListTypeField = Annotated[ListType, BeforeValidator(enum_of(ListType))]
ListActionField = Annotated[ListAction, BeforeValidator(enum_of(ListAction))]
CaseTypeField = Annotated[CaseType, BeforeValidator(enum_of(CaseType))]


class _Model(BaseModel):
    # Unknown fields are refused: a misspelt optional field would otherwise vanish without a word.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Counterpart(_Model):
    """行政相对人 (for commitments: the committer; for list changes: the subject)."""

    name: TextField = Field(max_length=200)
    category: CategoryField
    uscc: Uscc | None = None
    legal_representative: TextField | None = Field(default=None, max_length=50)
    legal_representative_id_type: IdTypeField | None = None
    legal_representative_id_type_other: TextField | None = Field(default=None, max_length=60)
    legal_representative_id_number: IdNumber | None = None
    id_type: IdTypeField | None = None
    id_type_other: TextField | None = Field(default=None, max_length=60)
    id_number: IdNumber | None = None


class Document(_Model):
    """What every kind has: the business key, the owning department and the date its period counts from."""

    kind: ClassVar[Kind]
    source_id: SourceId
    department: TextField = Field(max_length=64)

    @property
    def decided_on(self) -> dt.date:
        """The date that places the document in a period (MISSION.md, 公示率; the plan's quotas)."""
        raise NotImplementedError


class RecordBase(Document):
    """Fields common to every record kind."""

    counterpart: Counterpart
    authority: TextField = Field(max_length=200)
    authority_uscc: Uscc
    source_unit: TextField = Field(max_length=200)
    source_unit_uscc: Uscc
    remarks: TextField | None = Field(default=None, max_length=512)


class Licence(RecordBase):
    """行政许可."""

    kind: ClassVar[Kind] = Kind.LICENCE
    document_name: TextField = Field(max_length=64)
    document_number: TextField = Field(max_length=64)
    licence_category: LicenceCategoryField
    certificate_name: TextField | None = Field(default=None, max_length=64)
    licence_number: TextField | None = Field(default=None, max_length=64)
    content: TextField = Field(max_length=4000)
    decision_date: Day
    valid_from: Day
    valid_to: Day
    status: LicenceStatusField

    @model_validator(mode="before")
    @classmethod
    def _licence_number_stands_in(cls, data: Any) -> Any:
        # STANDARDS.md §1.2 #15: a decision without a document number carries its 许可编号 there.
        if isinstance(data, dict) and not data.get("document_number") and data.get("licence_number"):
            return {**data, "document_number": data["licence_number"]}
        return data

    @property
    def decided_on(self) -> dt.date:
        return self.decision_date


class Penalty(RecordBase):
    """行政处罚."""

    kind: ClassVar[Kind] = Kind.PENALTY
    decision_number: TextField = Field(max_length=128)
    violation_type: TextField = Field(max_length=2000)
    violation_facts: TextField = Field(max_length=5000)
    legal_basis: TextField = Field(max_length=2048)
    penalty_categories: list[PenaltyCategoryField] = Field(min_length=1, max_length=14)
    content: TextField = Field(max_length=4000)
    fine_amount: Money | None = None
    confiscated_amount: Money | None = None
    suspended_licence: TextField | None = Field(default=None, max_length=200)
    decision_date: Day
    valid_until: Day
    publish_until: Day | None = None
    # 严重失信: marked by the source; when absent, the credit check judges it from the categories (吊销许可证件,
    # 责令停产停业, 责令关闭, 限制从业, 行政拘留). Absent stays absent so existing records keep their content hash.
    serious: StrictBool | None = None

    @property
    def decided_on(self) -> dt.date:
        return self.decision_date


class Commitment(RecordBase):
    """信用承诺."""

    kind: ClassVar[Kind] = Kind.COMMITMENT
    commitment_type: CommitmentTypeField
    matter: TextField = Field(max_length=512)
    content: TextField = Field(max_length=4000)
    liability: TextField = Field(max_length=4000)
    commitment_date: Day
    valid_until: Day | None = None
    fulfilment: FulfilmentField
    unfulfilled_content: TextField | None = Field(default=None, max_length=4000)
    liability_action: TextField | None = Field(default=None, max_length=4000)
    accepting_unit: TextField = Field(max_length=200)
    accepting_unit_uscc: Uscc
    disclosure: DisclosureField

    @property
    def decided_on(self) -> dt.date:
        return self.commitment_date


class ListChange(RecordBase):
    """红黑名单变更: a subject put on, or taken off, a red or black list."""

    kind: ClassVar[Kind] = Kind.LIST_CHANGE
    list_type: ListTypeField = Field(alias="list")
    list_name: TextField = Field(max_length=100)
    action: ListActionField
    document_number: TextField = Field(max_length=128)
    reason: TextField = Field(max_length=2000)
    basis: TextField = Field(max_length=2048)
    deciding_unit: TextField = Field(max_length=200)
    deciding_unit_uscc: Uscc
    effective_date: Day
    expiry_date: Day | None = None

    @property
    def decided_on(self) -> dt.date:
        return self.effective_date


MAX_HTML_CHARS = 100_000


class ArticleBase(Document):
    """An article for the portal and 信用怀化 (CONTRACT.md "Articles"). ``content_html`` arrives as the source wrote
    it; ``schemas.validation`` cleans it to the portal's allow-list (``schemas.html``) before it is stored."""

    title: TextField = Field(max_length=200)
    summary: TextField | None = Field(default=None, max_length=500)
    content_html: Html = Field(max_length=MAX_HTML_CHARS)
    published_on: Day
    author: TextField | None = Field(default=None, max_length=50)
    source_unit: TextField = Field(max_length=200)

    @property
    def decided_on(self) -> dt.date:
        return self.published_on


class Case(ArticleBase):
    """典型案例: a 守信激励 or 失信惩戒 case; a natural person named as its counterpart is masked on the portal."""

    kind: ClassVar[Kind] = Kind.CASE
    case_type: CaseTypeField
    counterpart: Counterpart | None = None


class News(ArticleBase):
    """工作动态: work news of the bureau's credit work."""

    kind: ClassVar[Kind] = Kind.NEWS


Record = Licence | Penalty | Commitment | ListChange
Article = Case | News

MODELS: dict[Kind, type[Document]] = {m.kind: m for m in (Licence, Penalty, Commitment, ListChange, Case, News)}


def _dated(annotation: Any) -> bool:
    """Whether a field holds a date, through ``X | None`` and ``Annotated``."""
    if annotation is dt.date:
        return True
    if typing.get_origin(annotation) is Annotated:
        return _dated(typing.get_args(annotation)[0])
    return any(_dated(a) for a in typing.get_args(annotation))


# The records' own date fields (decision, validity, publication, commitment, list dates), read off the models so a
# new date field needs no list kept by hand (the archive import and the tests use it).
DATE_FIELDS: frozenset[str] = frozenset(
    name for model in MODELS.values() for name, field in model.model_fields.items() if _dated(field.annotation)
)
