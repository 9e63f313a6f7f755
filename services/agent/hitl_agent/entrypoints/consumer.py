"""Kafka entrypoints: `agent.tasks` starts runs, `approval.decided` resumes them.

Different runs proceed concurrently (at most AGENT_CONCURRENCY at once); the
messages of one run are handled in their order. Both handlers are idempotent per
message (a task already started, a decision already applied is recognised), which
a redelivered batch relies on.
"""

from collections.abc import Callable

from faststream.kafka import KafkaBroker
from hitl_contracts import ApprovalDecided, TaskSubmitted
from hitl_shared.health import Probe
from hitl_shared.kafka import PoisonMessage, subscribe_concurrent

from hitl_agent.service_layer.agents import UnknownAgent
from hitl_agent.service_layer.runner import InvalidTask, Runner
from hitl_agent.service_layer.trust import DecisionRefused
from hitl_agent.settings import AgentSettings


def register(
    broker: KafkaBroker,
    settings: AgentSettings,
    runner: Runner,
    *,
    healthy: Probe,
    on_dead_letter: Callable[[str], None] | None = None,
) -> None:
    async def on_task(task: TaskSubmitted) -> None:
        if not task.agent:
            # Older producers left the agent out: the deployment's default agent runs it.
            task = task.model_copy(update={"agent": settings.agent_default_agent})
        try:
            await runner.start(task)
        except (UnknownAgent, InvalidTask) as exc:
            raise PoisonMessage(str(exc)) from None

    async def on_decided(decided: ApprovalDecided) -> None:
        # KeysUnavailable (the approval service's keys cannot be fetched) propagates:
        # transient, retried, never read as a verdict on the decision.
        try:
            await runner.resume(decided)
        except DecisionRefused as exc:
            raise PoisonMessage(str(exc)) from None

    group = settings.group_id("agent")
    subscribe_concurrent(
        broker,
        settings,
        topic=settings.topics.agent_tasks,
        group=group,
        model=TaskSubmitted,
        handler=on_task,
        key=lambda task: task.task_id,
        limit=settings.agent_concurrency,
        healthy=healthy,
        on_dead_letter=on_dead_letter,
    )
    subscribe_concurrent(
        broker,
        settings,
        topic=settings.topics.approval_decided,
        group=group,
        model=ApprovalDecided,
        handler=on_decided,
        key=lambda decided: decided.run_id,
        limit=settings.agent_concurrency,
        healthy=healthy,
        on_dead_letter=on_dead_letter,
    )
