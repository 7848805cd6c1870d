"""Field errors as CONTRACT.md writes them: a JSON path, a machine code and the rule in plain words."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_core import ErrorDetails

# pydantic's own error types, renamed into the codes our error body promises.
_CODES = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "string_too_long": "too_long",
    "string_too_short": "required",
    "too_short": "required",
    "string_type": "wrong_type",
    "list_type": "wrong_type",
    "model_type": "wrong_type",
    "model_attributes_type": "wrong_type",
    "dict_type": "wrong_type",
}


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}

    def under(self, prefix: str) -> FieldError:
        """The same error seen from an enclosing document (``items[3]`` + ``counterpart.uscc``)."""
        if not self.field:
            return FieldError(prefix, self.code, self.message)
        sep = "" if self.field.startswith("[") else "."
        return FieldError(f"{prefix}{sep}{self.field}", self.code, self.message)


def json_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _code(detail: ErrorDetails) -> str:
    code = detail["type"]
    if code == "too_long":  # pydantic uses one type for long lists and (after some validators) long strings
        return "too_many_items" if (detail.get("ctx") or {}).get("field_type") == "List" else "too_long"
    return _CODES.get(code, code)


def _message(detail: ErrorDetails) -> str:
    code = detail["type"]
    ctx = detail.get("ctx") or {}
    if code == "missing":
        return "is required"
    if code == "extra_forbidden":
        return "is not a field of this record kind"
    if code == "string_too_long" or (code == "too_long" and ctx.get("field_type") != "List"):
        return f"is longer than the limit of {ctx.get('max_length')} characters"
    if code in {"string_too_short", "too_short"}:
        return "may not be empty"
    return str(detail["msg"])


def from_pydantic(exc: ValidationError) -> list[FieldError]:
    return [from_detail(d) for d in exc.errors(include_url=False, include_input=False)]


def from_detail(detail: ErrorDetails) -> FieldError:
    loc = [p for p in detail["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    return FieldError(json_path(loc), _code(detail), _message(detail))


def under(prefix: str, errors: Iterable[FieldError]) -> list[FieldError]:
    return [e.under(prefix) for e in errors]
