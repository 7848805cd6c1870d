"""Hypothesis settings the property tests share: derandomised and with no example database, so that every run
tries the same examples (a failure seen once is seen again), and no deadline on a busy 2-core machine."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def derandomised(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
