"""Prometheus metrics of the approval service, on a registry of its own.

Counters count what this replica did; the pending gauge is read from the store on
each scrape, so every replica reports the same, true number.
"""

from hitl_contracts import ApprovalDecided
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# `*_created` series double the output and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# From a quick human click to a week-long wait.
DECISION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400, 7 * 86400)


class ApprovalMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pending = Gauge(
            "hitl_approvals_pending",
            "Approvals waiting for a decision (read from the store at scrape time).",
            registry=self.registry,
        )
        self.decisions = Counter(
            "hitl_approval_decisions",
            "Terminal decisions recorded by this replica, by outcome.",
            ["outcome", "channel"],
            registry=self.registry,
        )
        self.time_to_decision = Histogram(
            "hitl_approval_time_to_decision_seconds",
            "From requested_at to the terminal decision, by outcome.",
            ["outcome"],
            buckets=DECISION_BUCKETS,
            registry=self.registry,
        )
        self.expiries = Counter(
            "hitl_approval_expiries", "Approvals that timed out.", registry=self.registry
        )
        self.escalations = Counter(
            "hitl_approval_escalations",
            "Approvals whose deadline was extended once by on_timeout=escalate.",
            registry=self.registry,
        )
        self.votes = Counter(
            "hitl_approval_votes",
            "Approvals recorded toward a quorum without completing it.",
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "hitl_dead_letters",
            "Messages this service sent to a dead-letter topic, by source topic.",
            ["topic"],
            registry=self.registry,
        )
        self.sweep_failures = Counter(
            "hitl_approval_sweep_failures",
            "Approvals the expiry sweep could not handle (logged; the sweep went on).",
            registry=self.registry,
        )
        self.outbox_relayed = Counter(
            "hitl_approval_outbox_relayed",
            "Events the outbox relay published after the inline publish did not happen.",
            registry=self.registry,
        )

    def decided(self, decided: ApprovalDecided, requested_at_seconds: float) -> None:
        outcome = decided.decision.value
        self.decisions.labels(outcome=outcome, channel=decided.channel.value).inc()
        waited = decided.decided_at.timestamp() - requested_at_seconds
        self.time_to_decision.labels(outcome=outcome).observe(max(waited, 0.0))
        if outcome == "expired":
            self.expiries.inc()

    def dead_lettered(self, topic: str) -> None:
        self.dead_letters.labels(topic=topic).inc()

    def render(self, pending: int) -> bytes:
        self.pending.set(pending)
        return generate_latest(self.registry)
