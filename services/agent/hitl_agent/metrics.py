"""Prometheus metrics of the agent service, on a registry of its own.

Latency and tokens are observed where they become facts: the model's reply (tokens),
and the publication of the run's events (resume, completion), so the runtime's
use cases stay free of metrics code.
"""

import time
from typing import Any

from faststream.kafka import KafkaBroker
from hitl_contracts import ApprovalDecided, RunEvent, RunEventType
from hitl_shared import context
from hitl_shared.metrics import ConsumerLag, dead_letter_counter
from prometheus_client import CollectorRegistry, Counter, Histogram

from hitl_agent.adapters.chat import ChatModel, Reply

# The promise is milliseconds; a run whose resume waited on a crashed replica takes seconds.
RESUME_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
TOKEN_BUCKETS = (100, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000)


class AgentMetrics:
    def __init__(self, broker: KafkaBroker) -> None:
        self.registry = CollectorRegistry()
        self.lag = ConsumerLag(broker, self.registry)
        self.dead_letters = dead_letter_counter(self.registry)
        self.resume_latency = Histogram(
            "hitl_agent_decision_to_resume_seconds",
            "From the decision's decided_at to this replica publishing the run's resumed event.",
            buckets=RESUME_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "hitl_agent_llm_tokens",
            "Tokens the model reported, by kind (prompt, completion).",
            ["kind"],
            registry=self.registry,
        )
        self.run_tokens = Histogram(
            "hitl_agent_run_tokens",
            "Total tokens of each completed run.",
            buckets=TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.run_outcomes = Counter(
            "hitl_agent_runs_finished",
            "Runs that ended, by outcome (completed, failed, cancelled).",
            ["outcome"],
            registry=self.registry,
        )
        self.refused = Counter(
            "hitl_agent_decisions_refused",
            "Decisions the agent refused to act on, by reason (unsigned, unknown_key, "
            "bad_signature, wrong_run, wrong_agent, wrong_tool, wrong_call, widening_edit).",
            ["reason"],
            registry=self.registry,
        )
        # Cumulative tokens of runs in the middle of a step: a run's completion is
        # published right after the model reply that carries its total.
        self._tokens_so_far: dict[str, int] = {}

    def dead_lettered(self, topic: str) -> None:
        self.dead_letters.labels(topic=topic).inc()

    def replied(self, reply: Reply) -> None:
        self.tokens.labels(kind="prompt").inc(reply.prompt_tokens)
        self.tokens.labels(kind="completion").inc(reply.completion_tokens)

    def published(self, event: RunEvent) -> None:
        if event.type is RunEventType.DECISION_REFUSED:
            self.refused.labels(reason=str(event.detail.get("code", "unknown"))).inc()
            return
        if event.type is RunEventType.MODEL_REPLIED:
            self._tokens_so_far[event.run_id] = int(event.detail.get("total_tokens") or 0)
            return
        so_far = self._tokens_so_far.pop(event.run_id, None)
        if event.type is RunEventType.RESUMED:
            # Only a resume caused by the decision being handled has a decided_at to measure from.
            cause = context.handling.get()
            if isinstance(cause, ApprovalDecided) and cause.run_id == event.run_id:
                waited = time.time() - cause.decided_at.timestamp()
                self.resume_latency.observe(max(waited, 0.0))
        elif event.type is RunEventType.COMPLETED:
            self.run_outcomes.labels(outcome="completed").inc()
            if so_far is not None:
                self.run_tokens.observe(so_far)
        elif event.type in (RunEventType.FAILED, RunEventType.CANCELLED):
            self.run_outcomes.labels(outcome=event.type.value).inc()


class MeteredModel:
    """A chat model that counts the tokens each reply reports."""

    def __init__(self, inner: ChatModel, metrics: AgentMetrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.name = inner.name

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        reply = await self.inner.complete(messages, tools)
        self.metrics.replied(reply)
        return reply

    async def plan(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> Reply:
        reply = await self.inner.plan(messages, schema)
        self.metrics.replied(reply)
        return reply
