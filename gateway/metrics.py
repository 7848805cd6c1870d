"""Prometheus metrics, on a registry of the app's own so several apps (tests) never collide."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.enums import Kind


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ingested = Counter(
            "credit_gateway_ingested_items",
            "Records posted by sources, by kind and result",
            ["kind", "status"],
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "credit_gateway_ingest_transaction_seconds",
            "Time spent in the ingest transaction",
            ["kind"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.withdrawals = Counter(
            "credit_gateway_withdrawals",
            "Records withdrawn, by kind and reason",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.busy_refusals = Counter(
            "credit_gateway_busy_refusals",
            "Requests answered 503 server-busy: too many request body bytes in flight (MAX_BODY_BYTES_IN_FLIGHT)",
            registry=self.registry,
        )

        self.target_up = Gauge(
            "credit_gateway_target_up",
            "1 while the target's breaker is closed (it answers), 0 while open or half-open (down, being probed)",
            ["target"],
            registry=self.registry,
        )
        self.target_alert = Gauge(
            "credit_gateway_target_alert",
            "1 when the target has been down longer than alert_after_seconds",
            ["target"],
            registry=self.registry,
        )

    def health(self, status: Mapping[str, Mapping[str, object]]) -> None:
        """Copy the targets' shared health (``gateway.target_health``) into gauges at scrape time."""
        for target, gate in status.items():
            self.target_up.labels(target).set(1 if gate["breaker"] == "closed" else 0)
            self.target_alert.labels(target).set(1 if gate["alert"] else 0)

    def rejected(self, kind: Kind, count: int) -> None:
        self.ingested.labels(kind.value, "rejected").inc(count)
