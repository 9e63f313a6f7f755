"""Store and broker calls on the decision path, counted on the real store.

A decision costs: the approval service storing and publishing it, then the agent
applying it, executing the approved transfer and finishing the run. Every MongoDB
command is counted with a PyMongo CommandListener and every publish by the
publishers, so the README's figure is measured, and a change that adds round trips
to the hot path fails here. The bounds are the counts measured when written.
"""

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import hitl_demo
import pytest
from hitl_agent import catalog
from hitl_agent.adapters.offline import OfflinePlanner
from hitl_agent.adapters.oversight import OversightStore
from hitl_agent.adapters.runs import RunStore
from hitl_agent.domain.run import RunStatus
from hitl_agent.service_layer.executions import Executions
from hitl_agent.service_layer.outbox import Outbox
from hitl_agent.service_layer.oversight import Oversight
from hitl_agent.service_layer.runner import Runner
from hitl_agent.service_layer.steps import Steps
from hitl_agent.settings import AgentSettings
from hitl_approval.adapters.repository import ApprovalRepository
from hitl_approval.bootstrap import build_service
from hitl_approval.domain.model import Verb
from hitl_approval.service_layer.outbox import OutboxEvent
from hitl_approval.service_layer.services import DecideCommand
from hitl_contracts import ApprovalDecided, ApprovalRequested, Channel, RunEvent, TaskSubmitted
from hitl_contracts.signing import DecisionSigner, DecisionVerifier
from hitl_demo.ledger import Ledger
from hitl_demo.offline import banking_plan
from hitl_demo.settings import DemoSettings
from hitl_sdk import Resources
from hitl_shared.decision_keys import DecisionKeys
from pymongo import AsyncMongoClient

from tests.support.commands import Commands
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


@dataclass
class Published:
    counting: bool = False
    events: list[Any] = field(default_factory=list)

    def add(self, event: Any) -> None:
        if self.counting:
            self.events.append(event)


async def test_one_decision_costs_a_bounded_number_of_round_trips(
    infra: Infra, tmp_path: Any
) -> None:
    commands, published = Commands(), Published()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, event_listeners=[commands]
    )
    name = f"hitl_it_{uuid.uuid4().hex[:8]}"
    db = client[name]
    try:
        decided: list[ApprovalDecided] = []
        requested: list[ApprovalRequested] = []

        async def publish_decision(event: OutboxEvent) -> None:
            published.add(event)
            if isinstance(event, ApprovalDecided):
                decided.append(event)

        async def publish_request(batch: list[ApprovalRequested]) -> None:
            for request in batch:
                published.add(request)
                requested.append(request)

        async def publish_event(batch: list[RunEvent]) -> None:
            for event in batch:
                published.add(event)

        signer = DecisionSigner.generate()
        approvals = build_service(
            ApprovalRepository(db, instance="a"), publish_decision, signer=signer
        )
        settings = AgentSettings()
        demo = hitl_demo.build(
            DemoSettings(
                agent_files_sandbox=tmp_path, agent_seed_accounts={"checking": 10_000, "alice": 0}
            )
        )
        for hook in demo.startup:
            await hook(Resources(database=db))
        ledger, store = Ledger(db), RunStore(db)
        await store.ensure_indexes()
        runner = Runner(
            store=store,
            keys=DecisionKeys(pinned=DecisionVerifier([signer.key.public_key()])),
            agents=catalog.agents(settings, [demo]),
            steps=Steps(
                model=OfflinePlanner(rules=[banking_plan]),
                executions=Executions(store, owner="t"),
                approval_timeout=timedelta(hours=1),
            ),
            outbox=Outbox(
                store,
                publish_request=publish_request,
                publish_event=publish_event,
                approvals=None,
            ),
            # As deployed: interrupt and halt flags read at every step boundary.
            oversight=Oversight(OversightStore(db), approval_timeout=timedelta(hours=1)),
        )

        async def paused() -> tuple[TaskSubmitted, ApprovalRequested]:
            task = TaskSubmitted(
                task_id=str(uuid.uuid4()), agent="banking", input="Transfer 500 to alice"
            )
            await runner.start(task)
            request = requested[-1]
            await approvals.ingest(request)
            return task, request

        # A first decision warms the processes up (what they keep in memory is kept).
        _, warm = await paused()
        await approvals.decide(DecideCommand(warm.correlation_id, Verb.APPROVE, "ann", Channel.API))
        await runner.resume(decided[-1])
        decided.clear()
        task, request = await paused()

        commands.counting = published.counting = True
        await approvals.decide(
            DecideCommand(request.correlation_id, Verb.APPROVE, "ann", Channel.API)
        )
        approval_calls, approval_publishes = commands.total, len(published.events)
        (decision,) = decided
        await runner.resume(decision)
        await runner.steps.executions.settle()  # the outcome record, written off the path
        commands.counting = published.counting = False

        run = await runner.get(task.task_id)
        assert run is not None
        assert run.status is RunStatus.COMPLETED
        assert await ledger.balance_cents("alice") == 100_000
        total, publishes = commands.total, len(published.events)
        print(
            f"\napproval: {approval_calls} store calls, {approval_publishes} publishes; "
            f"agent: {total - approval_calls} store calls, "
            f"{publishes - approval_publishes} publishes"
        )
        for command, count in sorted(commands.seen.items()):
            print(f"  {count:3d} {command}")
        assert approval_publishes == 1
        # 4 before a decision started from the stream this replica stored (no probe).
        assert approval_calls <= 3
        # 14 before the ledger started from the heads it knows (no probe of both chains).
        assert total - approval_calls <= 12
    finally:
        await client.drop_database(name)
        await client.close()
