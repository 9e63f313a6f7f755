"""Log context, trace propagation helpers and the agent's metrics, without servers."""

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

from hitl_agent.metrics import AgentMetrics
from hitl_contracts import ApprovalDecided, Channel, Decision, RunEvent, RunEventType
from hitl_shared import context, telemetry
from hitl_shared.logs import ContextFilter, JsonFormatter
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from prometheus_client import generate_latest

# The global provider can be set once per process: a non-recording one, like the default.
trace.set_tracer_provider(TracerProvider(sampler=ALWAYS_OFF))


class _Broker:
    subscribers: list[object] = []


def _line(logger: logging.Logger, msg: str, **extra: str) -> dict[str, str]:
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, msg, (), None, extra=extra)
    ContextFilter().filter(record)
    line: dict[str, str] = json.loads(JsonFormatter("test").format(record))
    return line


def test_lines_logged_inside_a_bound_block_carry_its_ids_and_only_there() -> None:
    logger = logging.getLogger("test.observability")
    with context.bound(correlation_id="c-1", run_id="r-1"):
        inside = _line(logger, "deep inside a handler")
        explicit = _line(logger, "names its own run", run_id="r-2")
    outside = _line(logger, "after the handler")
    assert (inside["correlation_id"], inside["run_id"]) == ("c-1", "r-1")
    assert explicit["run_id"] == "r-2", "an explicit extra wins over the context"
    assert "run_id" not in outside
    assert "correlation_id" not in outside


def test_a_task_id_is_its_runs_id() -> None:
    class Task:
        task_id = "t-1"

    assert context.ids_of(Task()) == {"correlation_id": None, "run_id": "t-1"}


def test_ids_bound_in_one_task_do_not_leak_into_another() -> None:
    async def main() -> list[dict[str, str]]:
        async def one(run: str) -> dict[str, str]:
            context.bind(run_id=run)
            await asyncio.sleep(0)
            return context.ids()

        return list(await asyncio.gather(one("a"), one("b")))

    assert asyncio.run(main()) == [{"run_id": "a"}, {"run_id": "b"}]


def test_ids_are_generated_and_forwarded_even_when_nothing_is_recorded() -> None:
    incoming = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"
    with telemetry.consuming("t.approval.decided", {"traceparent": incoming.encode()}):
        assert telemetry.trace_ids()["trace_id"] == incoming.split("-")[1]
        with telemetry.producing("t.agent.runs"):
            headers: dict[str, str] = {}
            telemetry.inject(headers)
    out = headers["traceparent"].split("-")
    assert out[1] == incoming.split("-")[1], "same trace"
    assert out[2] != incoming.split("-")[2], "a new span of it"
    with telemetry.producing("t.agent.tasks"):
        fresh = telemetry.current_traceparent()
    assert fresh is not None, "a root span still gets ids"
    assert not telemetry.recording()


def test_a_stored_trace_is_continued_rather_than_the_current_one() -> None:
    stored = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    with telemetry.serving("POST", "/v1/approvals/x/decision", {}):
        reviewer_trace = telemetry.trace_ids()["trace_id"]
        with telemetry.continuing(stored, "approval outcome"):
            continued = telemetry.trace_ids()["trace_id"]
        with telemetry.continuing(None, "approval outcome"):
            unchanged = telemetry.trace_ids()["trace_id"]
    assert continued == stored.split("-")[1]
    assert unchanged == reviewer_trace


def _run_event(run_id: str, type_: RunEventType, **detail: object) -> RunEvent:
    return RunEvent(run_id=run_id, task_id=run_id, type=type_, detail=detail)


def test_resume_latency_is_measured_only_for_the_decision_being_handled() -> None:
    metrics = AgentMetrics(_Broker())  # type: ignore[arg-type]
    decided = ApprovalDecided(
        correlation_id="c-1",
        run_id="r-1",
        decision=Decision.APPROVED,
        reviewer="dev",
        channel=Channel.API,
        decided_at=datetime.now(UTC) - timedelta(milliseconds=50),
    )
    metrics.published(_run_event("r-1", RunEventType.RESUMED))  # a relay re-send: no cause
    token = context.handling.set(decided)
    try:
        metrics.published(_run_event("r-2", RunEventType.RESUMED))  # another run
        metrics.published(_run_event("r-1", RunEventType.RESUMED))
    finally:
        context.handling.reset(token)
    count = metrics.registry.get_sample_value("hitl_agent_decision_to_resume_seconds_count")
    total = metrics.registry.get_sample_value("hitl_agent_decision_to_resume_seconds_sum")
    assert count == 1
    assert total is not None
    assert 0.05 <= total < 5


def test_a_completed_runs_tokens_are_the_total_of_its_last_model_reply() -> None:
    metrics = AgentMetrics(_Broker())  # type: ignore[arg-type]
    metrics.published(_run_event("r-1", RunEventType.MODEL_REPLIED, total_tokens=150))
    metrics.published(_run_event("r-1", RunEventType.AWAITING_APPROVAL))
    metrics.published(_run_event("r-1", RunEventType.MODEL_REPLIED, total_tokens=300))
    metrics.published(_run_event("r-1", RunEventType.COMPLETED, output="done"))
    metrics.published(_run_event("r-2", RunEventType.MODEL_REPLIED, total_tokens=10))
    metrics.published(_run_event("r-2", RunEventType.FAILED, error="boom"))
    text = generate_latest(metrics.registry).decode()
    assert "hitl_agent_run_tokens_count 1.0" in text
    assert "hitl_agent_run_tokens_sum 300.0" in text
    assert 'hitl_agent_runs_finished_total{outcome="failed"} 1.0' in text
    assert not metrics._tokens_so_far, "nothing kept for runs that moved on"
