"""The delivery vocabulary: states, operations, and which states still owe the target something."""

from __future__ import annotations

import enum


class DeliveryState(enum.StrEnum):
    PENDING = "pending"  # waiting for its first attempt
    IN_FLIGHT = "in_flight"  # leased by a worker, request under way
    AWAITING_RESULT = "awaiting_result"  # receipt received, business result not yet
    RETRY_WAIT = "retry_wait"  # failed retryably; next_attempt_at says when
    PUBLISHED = "published"  # business acceptance received
    DEAD = "dead"  # permanent rejection or retries exhausted: an operator decides
    SUPERSEDED = "superseded"  # a newer version or a withdrawal replaced it before it was sent
    CANCELLED = "cancelled"  # an operator, or the gateway with a stated reason, called it off


class Operation(enum.StrEnum):
    PUBLISH = "publish"
    WITHDRAW = "withdraw"


# Not yet sent (or sent and failed for good): a newer version may replace these without the target noticing.
REPLACEABLE = (DeliveryState.PENDING, DeliveryState.RETRY_WAIT, DeliveryState.DEAD)

# The target may hold the record: a withdrawal must be sent there.
MAY_HOLD = (DeliveryState.IN_FLIGHT, DeliveryState.AWAITING_RESULT, DeliveryState.PUBLISHED)

# Waiting for a worker to lease them (the lease query's partial index covers exactly these).
DUE = (DeliveryState.PENDING, DeliveryState.RETRY_WAIT)


def idempotency_key(record_id: int, version: int, operation: Operation, target: str) -> str:
    """Stable per (record version, operation, target); within PROTOCOLS.md's 64 chars of [A-Za-z0-9._:-]."""
    return f"cg-{record_id}-v{version}-{operation.value[0]}-{target}"
