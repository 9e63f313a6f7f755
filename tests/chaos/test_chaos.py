"""Chaos: banking load with reviewers, SIGKILLed services, broker and store restarts,
malformed input on every consumed topic; afterwards every promise is checked.

Real processes (approval, two agents, notifier) on a private Kafka + FerretDB that
this test starts and stops, so restarting them disturbs nobody. The agent plans
with the offline planner. Signed decisions (the approval service's key; agent-1 pins
its public half, agent-2 and the notifier fetch it from GET /v1/keys) and, where
infra.sh can make one, a SASL_SSL broker with one SCRAM user and its ACLs per service
(`HITL_CHAOS_KAFKA_SECURITY=plaintext` turns that off). Sizes and seed come from the environment (README,
"Chaos suite"): `HITL_CHAOS_TASKS=200` is the long mode.
"""

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from hitl_shared.topics import Topics, dlq
from pymongo import AsyncMongoClient

from tests.support import recorder
from tests.support.chaos_bad_input import Injected, consumers, inject
from tests.support.chaos_checks import TERMINAL_RUN, Observed, violations
from tests.support.chaos_fleet import Fleet
from tests.support.chaos_infra import SERVICE_USERS, PrivateInfra
from tests.support.chaos_load import THRESHOLD, Task, plan, seed_accounts, submit_all
from tests.support.chaos_monkey import Journal, schedule, unleash
from tests.support.chaos_report import summary
from tests.support.chaos_reviewer import Reviewer
from tests.support.chaos_tap import Tap, caught_up, tapping
from tests.support.http_server import serve
from tests.support.stack import DEV_TOKEN, Stack
from tests.support.wait import eventually

TASKS = int(os.environ.get("HITL_CHAOS_TASKS") or 36)
SEED = int(os.environ.get("HITL_CHAOS_SEED") or random.SystemRandom().randrange(2**31))
# Seconds over which tasks are submitted and faults happen.
WINDOW = float(os.environ.get("HITL_CHAOS_WINDOW") or max(40.0, 0.9 * TASKS))
APPROVAL_TIMEOUT = float(os.environ.get("HITL_CHAOS_APPROVAL_TIMEOUT") or 10)
KILLS_PER_REPLICA = 2 + TASKS // 100
BAD_INPUT_WAVES = 1 + TASKS // 100
SETTLE_TIMEOUT = 180.0 + TASKS
PARTITIONS = 3
REPLICAS = {"approval": "approval", "agent-1": "agent", "agent-2": "agent", "notifier": "notifier"}
# agent-1 keeps the stack's pinned decision key; agent-2 fetches the keys from the
# approval service (GET /v1/keys), as the notifier does: both ways must verify.
REPLICA_ENV = {"agent-2": {"AGENT_DECISION_KEYS": ""}}


@pytest.fixture
def infra(tmp_path: Path) -> Iterator[PrivateInfra]:
    private = PrivateInfra(tmp_path / "infra")
    private.run("start")
    try:
        yield private
    finally:
        private.run("stop")


@pytest.fixture
def hooks() -> Iterator[tuple[recorder.Recorder, str]]:
    received = recorder.Recorder()
    with serve(recorder.app_for(received)) as url:
        yield received, url


@pytest.mark.chaos
@pytest.mark.timeout(WINDOW + SETTLE_TIMEOUT + 300)
async def test_promises_hold_under_kills_restarts_and_malformed_input(
    infra: PrivateInfra, hooks: tuple[recorder.Recorder, str], tmp_path: Path
) -> None:
    # Our own clients log every failed reconnect while the broker restarts: expected noise.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    print(f"\nchaos seed {SEED}: {TASKS} tasks over {WINDOW:.0f}s; logs in {tmp_path}/logs")
    rng = random.Random(SEED)
    tasks = plan(rng, TASKS, window=WINDOW)
    faults = schedule(
        rng,
        list(REPLICAS),
        window=WINDOW,
        kills_per_replica=KILLS_PER_REPLICA,
        bad_input_waves=BAD_INPUT_WAVES,
    )
    (tmp_path / "logs").mkdir()
    print(f"kafka: {infra.security}")
    stack = Stack(
        infra.endpoints,
        tmp_path / "logs",
        env_extra=_service_env(tasks, hooks[1]),
        service_env=infra.service_env(),
        suffix=infra.suffix,  # the broker's ACLs name this run's topics and groups
    )
    assert stack.prefix == infra.topic_prefix
    stack.env_extra["AGENT_APPROVAL_URL"] = stack.url("approval")
    fleet = Fleet(stack)
    for name, service in REPLICAS.items():
        fleet.add(name, service, REPLICA_ENV.get(name))
    kafka = infra.client()
    topics = Topics(stack.prefix)
    watched = [
        topics.approval_requested,
        topics.approval_decided,
        topics.agent_runs,
        *(dlq(t) for t in consumers(topics)),
    ]
    started = time.monotonic()
    journal = Journal()
    try:
        for name in REPLICAS:
            await fleet.start(name)
        reviewer = Reviewer(stack.url("approval"), DEV_TOKEN, {t.task_id: t for t in tasks})
        injected: list[Injected] = []
        async with (
            tapping(kafka, watched, partitions=PARTITIONS) as tap,
            _producer(kafka) as producer,
        ):
            tap.on(lambda r: reviewer.see(r) if r.topic == topics.approval_requested else None)

            async def bad_input(wave: int) -> int:
                sent = await inject(
                    producer, topics, partitions=PARTITIONS, victim=tasks[0].account, wave=wave
                )
                injected.extend(sent)
                return len(sent)

            journal.started = time.monotonic()
            await asyncio.gather(
                submit_all(producer, topics.agent_tasks, tasks),
                unleash(faults, fleet=fleet, infra=infra, bad_input=bad_input, journal=journal),
            )
            journal.note("load and faults done; waiting for the system to settle")
            observed = await _settle(
                stack, infra, kafka, tasks, tap, topics, reviewer, injected, hooks[0]
            )
            journal.note("settled")
        observed.key_id = stack.signer.key_id
        problems = violations(observed)
        if infra.secured:
            problems.update(_kafka_users(fleet))
        down = [name for name in REPLICAS if not fleet.running(name)]
        if down:
            problems["services_alive"] = [f"{n} is not running:\n{fleet.tail(n)}" for n in down]
        print(
            summary(
                observed, seed=SEED, fleet=fleet, journal=journal, took=time.monotonic() - started
            )
        )
        assert not problems, (
            f"seed {SEED}; service logs in {stack.logs}\n" + json.dumps(problems, indent=2)[:20_000]
        )
    finally:
        fleet.stop_all()


def _service_env(tasks: list[Task], hooks_url: str) -> dict[str, str]:
    return {
        "AGENT_SEED_ACCOUNTS": json.dumps(seed_accounts(tasks)),
        "AGENT_TRANSFER_APPROVAL_THRESHOLD": str(THRESHOLD),
        "AGENT_APPROVAL_TIMEOUT_SECONDS": str(APPROVAL_TIMEOUT),
        "AGENT_OUTBOX_INTERVAL_SECONDS": "0.5",
        "AGENT_STALLED_AFTER_SECONDS": "15",
        "APPROVAL_SWEEP_INTERVAL_SECONDS": "0.5",
        "APPROVAL_OUTBOX_INTERVAL_SECONDS": "0.5",
        "NOTIFIER_WEBHOOK_URLS": hooks_url + "/hook",
    }


def _kafka_users(fleet: Fleet) -> dict[str, list[str]]:
    """On the secured broker every replica connected as its own SCRAM user."""
    wrong = []
    for name, replica in fleet.replicas.items():
        said = f"SASL_SSL, SCRAM-SHA-512 as {SERVICE_USERS[replica.service]}"
        log = fleet.stack.logs / f"{name}.log"
        if said not in (log.read_text(errors="replace") if log.exists() else ""):
            wrong.append(f"{name}: its log never says {said!r}")
    return {"kafka_users": wrong} if wrong else {}


class _producer:
    """A producer allowed to send the oversized messages (the broker takes up to 10 MB)."""

    def __init__(self, kafka: dict[str, Any]) -> None:
        self.producer = AIOKafkaProducer(
            **kafka,
            acks="all",
            max_request_size=8 * 1024 * 1024,
            request_timeout_ms=10_000,
        )

    async def __aenter__(self) -> AIOKafkaProducer:
        await self.producer.start()
        return self.producer

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()


async def _get(http: httpx.AsyncClient, path: str) -> tuple[int, Any]:
    try:
        response = await http.get(path)
    except httpx.HTTPError:
        return 0, None
    return response.status_code, (response.json() if response.status_code == 200 else None)


async def _settle(
    stack: Stack,
    infra: PrivateInfra,
    kafka: dict[str, Any],
    tasks: list[Task],
    tap: Tap,
    topics: Topics,
    reviewer: Reviewer,
    injected: list[Injected],
    hooks: recorder.Recorder,
) -> Observed:
    """Wait (bounded) until runs, approvals, events and dead letters have all arrived."""
    runs: dict[str, dict[str, Any]] = {}
    approvals: dict[str, dict[str, Any]] = {}
    auth = {"Authorization": f"Bearer {DEV_TOKEN}"}
    agent = stack.agent()
    approval = httpx.AsyncClient(base_url=stack.url("approval"), timeout=10, headers=auth)
    observed = Observed(
        tasks=tasks,
        topics=topics,
        tap=tap,
        runs=runs,
        approvals=approvals,
        attempted=reviewer.attempted,
        balances={},
        ledger=[],
        approval_events=[],
        injected=injected,
        webhooks=[],
    )

    async def quiet() -> bool:
        for task in tasks:
            if runs.get(task.task_id, {}).get("status") not in TERMINAL_RUN:
                status, body = await _get(agent, f"/v1/runs/{task.task_id}")
                assert status == 200, f"GET run {task.task_id}: HTTP {status}"
                assert body["status"] in TERMINAL_RUN, f"run {task.task_id} is {body['status']}"
                runs[task.task_id] = body
        for cids in observed.requested().values():
            for cid in cids:
                if approvals.get(cid, {}).get("status") in (None, "pending"):
                    status, body = await _get(approval, f"/v1/approvals/{cid}")
                    assert status == 200, f"GET approval {cid}: HTTP {status}"
                    assert body["status"] != "pending", f"approval {cid} is pending"
                    approvals[cid] = body
        decided = {
            str((e or {}).get("correlation_id")) for e in observed.events(topics.approval_decided)
        }
        assert set(approvals) <= decided, f"no approval.decided for {set(approvals) - decided}"
        # Every run's lifecycle events are on agent.runs (the outbox relays what a crash held).
        positions: dict[str, set[int]] = {}
        for event in observed.events(topics.agent_runs):
            positions.setdefault(str(event.get("run_id")), set()).add(int(event.get("seq") or 0))
        short = [r for r, b in runs.items() if len(positions.get(r, ())) < int(b["events"])]
        assert not short, f"agent.runs lacks events of runs {short}"
        letters = {
            (letter.get("topic"), letter.get("partition"), letter.get("offset"))
            for topic in consumers(topics)
            for letter in observed.events(dlq(topic))
        }
        missing = [i for i in injected if (i.topic, i.partition, i.offset) not in letters]
        assert not missing, f"not dead-lettered yet: {missing}"
        return True

    try:
        await eventually(quiet, timeout=SETTLE_TIMEOUT, interval=1.0, what="the system to settle")
        await reviewer.drain(timeout=60)
        # Redelivered copies may still trickle in: read each topic to its end once more.
        await eventually(
            lambda: caught_up(
                kafka,
                tap,
                [topics.approval_decided, topics.agent_runs, *(dlq(t) for t in consumers(topics))],
                partitions=PARTITIONS,
            ),
            timeout=60,
            what="the tap to reach the end of every topic",
        )
        for task in tasks:  # final state, after any late redelivery
            runs[task.task_id] = (await _get(agent, f"/v1/runs/{task.task_id}"))[1]
        for cid in list(approvals):
            approvals[cid] = (await _get(approval, f"/v1/approvals/{cid}"))[1]
        observed.balances = (await agent.get("/v1/accounts")).json()
        for item in injected:
            if item.kind in ("future_version", "huge") and item.topic == topics.agent_tasks:
                observed.leaked[item.marker] = (await _get(agent, f"/v1/runs/{item.marker}"))[0]
            if item.kind in ("future_version", "huge") and item.topic == topics.approval_requested:
                observed.leaked[item.marker] = (
                    await _get(approval, f"/v1/approvals/{item.marker}")
                )[0]
    finally:
        reviewer.cancel()
        await agent.aclose()
        await approval.aclose()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.endpoints.mongodb_url)
    try:
        db = client[stack.database]
        observed.ledger = await db["ledger"].find({}).to_list(None)
        observed.approval_events = (
            await db["approval_events"]
            .find({}, {"correlation_id": 1, "type": 1, "seq": 1})
            .to_list(None)
        )
    finally:
        await client.close()
    observed.webhooks = list(hooks.received)
    return observed
