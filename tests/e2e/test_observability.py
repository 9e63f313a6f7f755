"""Observability through real processes: /metrics, JSON logs with ids, one trace per task.

The stack runs with `HITL_TRACING=console`, so spans are printed (one JSON object a
line) next to the logs, and the test reads the Kafka topics to compare the
`traceparent` headers every hop carried.
"""

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hitl_shared.topics import Topics
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fake_openai import Call, Say, ScriptedLLM
from tests.support.infra import Infra
from tests.support.recorder import Recorder
from tests.support.stack import Stack, approvals_of
from tests.support.wait import eventually

PROMPT, COMPLETION = 120, 30


@pytest.fixture(scope="module")
def obs(
    infra: Infra,
    llm: tuple[ScriptedLLM, str],
    webhooks: tuple[Recorder, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Stack, str]]:
    """All three services, tracing to the console, one webhook that always refuses."""
    broken = f"/obs-broken-{uuid.uuid4().hex[:8]}"
    webhooks[0].fail(broken, status=410, times=None)
    logs = tmp_path_factory.mktemp("obs-logs")
    s = Stack(
        infra,
        logs,
        env_extra={
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": llm[1] + "/v1",
            "OPENAI_MODEL": "scripted",
            "NOTIFIER_WEBHOOK_URLS": f"{webhooks[1]}/obs-hook,{webhooks[1]}{broken}",
            "NOTIFIER_ATTEMPTS": "1",
            "HITL_TRACING": "console",
        },
    )
    try:
        s.start_all()
        yield s, broken
    finally:
        s.close()
        print(f"service logs: {logs}")


def samples(text: str, name: str, **labels: str) -> list[float]:
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


def value(text: str, name: str, **labels: str) -> float:
    found = samples(text, name, **labels)
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


async def scrape(stack: Stack, service: str) -> str:
    async with stack.agent() as client:
        response = await client.get(stack.url(service) + "/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
    return lines


Hop = tuple[str, bytes, dict[str, str]]


async def read_hops(
    infra: Infra, topics: list[str], key: str, done: Callable[[list[Hop]], bool]
) -> list[Hop]:
    """(topic, value, headers) of the messages keyed `key` on `topics`, until `done`."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[Hop] = []
    try:

        async def probe() -> bool:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    if r.key == key.encode() and r.value is not None:
                        headers = {k: v.decode() for k, v in r.headers}
                        found.append((r.topic, r.value, headers))
            return done(found)

        await eventually(probe, timeout=30, what=f"the messages of {key}")
    finally:
        await consumer.stop()
    return found


def trace_id(traceparent: str) -> str:
    version, trace, span, _flags = traceparent.split("-")
    assert version == "00", traceparent
    assert (len(trace), len(span)) == (32, 16), traceparent
    return trace


async def test_one_approved_transfer_shows_in_metrics_logs_and_one_trace(
    obs: tuple[Stack, str], infra: Infra, llm: tuple[ScriptedLLM, str]
) -> None:
    stack, _ = obs
    topics = Topics(stack.prefix)
    tag = f"[{uuid.uuid4().hex[:8]}]"
    llm[0].script(
        tag,
        [Call("transfer", {"to_account": "alice", "amount": 500})],
        Say("Final: {tool_results}"),
        tokens=(PROMPT, COMPLETION),
    )
    # The submitter's own trace: everything the task causes must stay in it.
    client_trace = uuid.uuid4().hex
    submitted = f"00-{client_trace}-{uuid.uuid4().hex[:16]}-01"
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        response = await agent.post(
            "/v1/runs",
            json={"input": f"Transfer 500 to Alice {tag}"},
            headers={"traceparent": submitted},
        )
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]

        async def pending() -> list[Any]:
            return await approvals_of(reviewer, run_id, "pending")

        (approval,) = await eventually(pending, timeout=60, what="the pending approval")
        cid = approval["correlation_id"]
        waiting = await scrape(stack, "approval")
        assert value(waiting, "hitl_approvals_pending") == 1

        decided = await reviewer.post(f"/v1/approvals/{cid}/decision", json={"decision": "approve"})
        assert decided.status_code == 200, decided.text

        async def completed() -> bool:
            state = (await agent.get(f"/v1/runs/{run_id}")).json()
            assert state["status"] != "failed", state
            return bool(state["status"] == "completed")

        await eventually(completed, timeout=60, what="the run to complete")

    # Garbage on the two topics the services consume from the reviewer's side.
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topics.approval_requested, b"not json", key=b"garbage")
        await producer.send_and_wait(topics.approval_decided, b"\xff\xfe", key=b"garbage")
    finally:
        await producer.stop()

    # Approval: nothing pending, one approved decision through the API, one dead letter.
    async def approval_metrics() -> str:
        text = await scrape(stack, "approval")
        assert value(text, "hitl_dead_letters_total", topic=topics.approval_requested) == 1
        return text

    text = await eventually(approval_metrics, timeout=30, what="approval metrics")
    assert value(text, "hitl_approvals_pending") == 0
    assert value(text, "hitl_approval_decisions_total", outcome="approved", channel="api") == 1
    assert value(text, "hitl_approval_time_to_decision_seconds_count", outcome="approved") == 1
    lags = samples(text, "hitl_consumer_lag", topic=topics.approval_requested)
    assert lags, "no lag series for approval.requested"
    assert all(lag >= 0 for lag in lags), lags

    # Agent: tokens of both model calls, one completed run, one measured resume.
    async def agent_metrics() -> str:
        text = await scrape(stack, "agent")
        assert value(text, "hitl_dead_letters_total", topic=topics.approval_decided) == 1
        return text

    text = await eventually(agent_metrics, timeout=30, what="agent metrics")
    assert value(text, "hitl_agent_llm_tokens_total", kind="prompt") == 2 * PROMPT
    assert value(text, "hitl_agent_llm_tokens_total", kind="completion") == 2 * COMPLETION
    assert value(text, "hitl_agent_run_tokens_count") == 1
    assert value(text, "hitl_agent_run_tokens_sum") == 2 * (PROMPT + COMPLETION)
    assert value(text, "hitl_agent_runs_finished_total", outcome="completed") == 1
    assert value(text, "hitl_agent_decision_to_resume_seconds_count") == 1
    resume = value(text, "hitl_agent_decision_to_resume_seconds_sum")
    assert 0 <= resume < 30, resume
    assert samples(text, "hitl_consumer_lag", topic=topics.approval_decided)

    # Notifier: the good webhook got the request, the refusing one failed for good.
    async def notifier_metrics() -> str:
        text = await scrape(stack, "notifier")
        assert value(text, "hitl_dead_letters_total", topic=topics.approval_requested) == 1
        assert value(text, "hitl_dead_letters_total", topic=topics.approval_decided) == 1
        sent = "hitl_notifier_deliveries_total"
        assert value(text, sent, channel="webhook", kind="requested", status="sent") == 1
        assert value(text, sent, channel="webhook", kind="decided", status="sent") == 1
        failed = "hitl_notifier_failures_total"
        # Only those told of the request hear of the decision: the refusing hook never was.
        assert value(text, failed, channel="webhook", kind="requested") == 1
        return text

    await eventually(notifier_metrics, timeout=30, what="notifier metrics")

    # One trace, from the submitter's request to the completed event.
    def every_hop(found: list[Hop]) -> bool:
        completed = any(
            t == topics.agent_runs and json.loads(body)["type"] == "completed"
            for t, body, _ in found
        )
        return completed and len({t for t, _, _ in found}) == 4

    hops = await read_hops(
        infra,
        [topics.agent_tasks, topics.approval_requested, topics.approval_decided, topics.agent_runs],
        run_id,
        every_hop,
    )
    for topic, body, headers in hops:
        assert "traceparent" in headers, (topic, headers)
        assert trace_id(headers["traceparent"]) == client_trace, (topic, body[:200])
    decided_headers = [h for t, _, h in hops if t == topics.approval_decided]
    assert decided_headers[0]["correlation_id"] == cid

    # The spans were exported by all three services, in that one trace.
    def spans_of(service: str) -> list[dict[str, Any]]:
        return [
            line
            for line in json_lines(stack.logs / f"{service}.log")
            if "context" in line and line["context"].get("trace_id") == f"0x{client_trace}"
        ]

    assert {s["name"] for s in spans_of("agent")} >= {
        "POST /v1/runs",
        f"{topics.agent_tasks} process",
        f"{topics.approval_decided} process",
    }
    assert f"{topics.approval_requested} process" in {s["name"] for s in spans_of("approval")}
    assert f"{topics.approval_decided} publish" in {s["name"] for s in spans_of("approval")}
    assert f"{topics.approval_decided} process" in {s["name"] for s in spans_of("notifier")}

    # Every log line that talks about the run or the approval names them.
    agent_lines = [line for line in json_lines(stack.logs / "agent.log") if "msg" in line]
    about_run = [line for line in agent_lines if line.get("run_id") == run_id]
    assert len(about_run) >= 3, agent_lines[-20:]
    for line in agent_lines:
        if run_id in line["msg"] or cid in line["msg"]:
            assert line.get("run_id") == run_id, line
    assert any(line.get("correlation_id") == cid for line in about_run)
    assert any(line.get("trace_id") == client_trace for line in about_run)

    approval_lines = [line for line in json_lines(stack.logs / "approval.log") if "msg" in line]
    assert any(line.get("correlation_id") == cid for line in approval_lines), approval_lines[-20:]
    for line in approval_lines:
        if cid in line["msg"] or run_id in line["msg"]:
            assert line.get("correlation_id") == cid, line
            assert line.get("run_id") == run_id, line
    notifier_lines = [line for line in json_lines(stack.logs / "notifier.log") if "msg" in line]
    for line in notifier_lines:
        if cid in line["msg"] or run_id in line["msg"]:
            assert line.get("correlation_id") == cid, line
    # The dead letter's warning names nothing: garbage concerns no run.
    dlq = [line for line in approval_lines if line["msg"].startswith("dead-lettered")]
    assert dlq, "no dead-letter warning logged"
    assert "run_id" not in dlq[0], dlq
