"""Fault injection of the sandbox (PROTOCOLS.md "The sandbox"): what a real platform does on a bad day.

Set per target through ``PUT /_admin/{target}/faults`` or at start from a JSON file (``--faults FILE``:
``{"national": {...}, "portal": {...}}``). Rates are probabilities per request (or per item for late
rejections), drawn from a seeded generator so a test run is repeatable.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MalformedKind = Literal["html", "truncated", "invalid_utf8", "dtd_entities", "wrong_content_type", "huge"]


class RejectRule(BaseModel):
    """Reject every item whose field ``field`` equals ``equals`` (a business rejection)."""

    field: str
    equals: str
    code: str = "2004"
    message: str = "rejected by the sandbox's rejection rule"


class Faults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0, ge=0)
    timeout_rate: float = Field(default=0, ge=0, le=1)  # process, then hold the reply for hang_seconds
    hang_seconds: float = Field(default=30, ge=0)
    error_rate: float = Field(default=0, ge=0, le=1)  # 500 code 5000
    throttle_rate: float = Field(default=0, ge=0, le=1)  # 429 with Retry-After
    retry_after_seconds: int = Field(default=2, ge=0)
    token_throttle_rate: float = Field(default=0, ge=0, le=1)  # municipal: its OAuth2 token endpoint answers 429
    malformed_rate: float = Field(default=0, ge=0, le=1)
    malformed_kind: MalformedKind = "html"
    duplicate_acks: bool = False  # results list every item twice
    outage_start: float | None = None  # epoch seconds; 503 while start <= now < end
    outage_end: float | None = None
    late_rejection_rate: float = Field(default=0, ge=0, le=1)  # accepted at receipt, rejected in the result
    reject_rule: RejectRule | None = None
    result_delay_seconds: float | None = Field(default=None, ge=0)  # overrides the sandbox's default delay
    seed: int = 7


class FaultState:
    """The current faults of one target and the random generator that decides them."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.set(faults or Faults())

    def set(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)

    def hit(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def in_outage(self, now: float) -> bool:
        f = self.faults
        return f.outage_start is not None and f.outage_end is not None and f.outage_start <= now < f.outage_end
