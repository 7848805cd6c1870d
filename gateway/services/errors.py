"""What a use case can refuse with, for the edges to translate (problem+json, one CLI line):

StoreError                      the database failed (outbox.errors: the driver's errors never pass the store)
├── StoreUnavailable, StoreBusy, SchemaNotCurrent
└── RecordNotFound, AmbiguousRecord
AtomicBatchRefused              an all-or-nothing batch had an item the store refused; nothing was written
UnknownTarget (LookupError)     a target name the settings do not define
"""

from __future__ import annotations

from gateway.services.operations import UnknownTarget
from outbox.errors import (
    AmbiguousRecord,
    RecordNotFound,
    SchemaNotCurrent,
    StoreBusy,
    StoreError,
    StoreUnavailable,
)
from outbox.store import AtomicBatchRefused

__all__ = [
    "AmbiguousRecord",
    "AtomicBatchRefused",
    "RecordNotFound",
    "SchemaNotCurrent",
    "StoreBusy",
    "StoreError",
    "StoreUnavailable",
    "UnknownTarget",
]
