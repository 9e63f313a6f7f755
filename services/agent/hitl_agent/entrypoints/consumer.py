"""Kafka entrypoints: `agent.tasks` starts runs, `approval.decided` resumes them.

Different runs proceed concurrently (at most AGENT_CONCURRENCY at once); the
messages of one run are handled in their order. Both handlers are idempotent per
message (a task already started, a decision already applied is recognised), which
a redelivered batch relies on.

Each hosted agent has a consumer group of its own (`<prefix>hitl-agent.<agent>`) on
both topics; its consumer skips (commits) every message about another agent, so a
worker acts only on its agents, replicas hosting the same agent share the work, and
a worker that does not host an agent never drops or dead-letters its messages. One
more group shared by every worker (`<prefix>hitl-agent`) dead-letters what nobody
could parse, and makes tasks for agents no live worker hosts visible (`unhosted`).
"""

from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker
from hitl_contracts import ApprovalDecided, TaskSubmitted
from hitl_shared.health import Probe
from hitl_shared.kafka import PoisonMessage, subscribe_concurrent

from hitl_agent.adapters.workers import WorkerRegistry
from hitl_agent.service_layer.runner import InvalidTask, Runner
from hitl_agent.service_layer.trust import DecisionRefused
from hitl_agent.settings import AgentSettings


def agent_group(settings: AgentSettings, agent: str) -> str:
    return f"{settings.group_id('agent')}.{agent}"


def register(
    broker: KafkaBroker,
    settings: AgentSettings,
    runner: Runner,
    *,
    workers: WorkerRegistry,
    healthy: Probe,
    on_dead_letter: Callable[[str], None] | None = None,
    on_unhosted: Callable[[str], None] | None = None,
) -> None:
    def agent_of(task: TaskSubmitted) -> TaskSubmitted:
        # Older producers left the agent out: the deployment's default agent runs it.
        return (
            task if task.agent else task.model_copy(update={"agent": settings.agent_default_agent})
        )

    async def watch_task(task: TaskSubmitted) -> None:
        task = agent_of(task)
        if not task.agent:
            raise PoisonMessage("the task names no agent and AGENT_DEFAULT_AGENT is not set")
        if runner.hosts(task.agent) or task.agent in await workers.live_agents():
            return  # that agent's own group starts it
        try:
            _, stored = await runner.hold(task, hosted_elsewhere=False)
        except InvalidTask as exc:
            raise PoisonMessage(str(exc)) from None
        if stored and on_unhosted is not None:
            on_unhosted(task.agent)

    async def watch_decided(decided: ApprovalDecided) -> None:
        return None  # parsing it is the check: the agent's own group acts on it

    def tasks_for(agent: str) -> Callable[[TaskSubmitted], Awaitable[None]]:
        async def on_task(task: TaskSubmitted) -> None:
            task = agent_of(task)
            if task.agent != agent:
                return
            try:
                await runner.start(task)
            except InvalidTask as exc:
                raise PoisonMessage(str(exc)) from None

        return on_task

    def decisions_for(agent: str) -> Callable[[ApprovalDecided], Awaitable[None]]:
        async def on_decided(decided: ApprovalDecided) -> None:
            owner = decided.agent
            if not owner:
                # Decisions from approval services older than `agent` on the event.
                run = await runner.get(decided.run_id)
                owner = run.agent if run is not None else ""
            if owner != agent:
                return
            # KeysUnavailable (the approval service's keys cannot be fetched) propagates:
            # transient, retried, never read as a verdict on the decision.
            try:
                await runner.resume(decided)
            except DecisionRefused as exc:
                raise PoisonMessage(str(exc)) from None

        return on_decided

    shared = settings.group_id("agent")
    topics = settings.topics
    subscribe_concurrent(
        broker,
        settings,
        topic=topics.agent_tasks,
        group=shared,
        model=TaskSubmitted,
        handler=watch_task,
        key=lambda task: task.task_id,
        limit=settings.agent_concurrency,
        healthy=healthy,
        on_dead_letter=on_dead_letter,
    )
    subscribe_concurrent(
        broker,
        settings,
        topic=topics.approval_decided,
        group=shared,
        model=ApprovalDecided,
        handler=watch_decided,
        key=lambda decided: decided.run_id,
        limit=settings.agent_concurrency,
        healthy=healthy,
        on_dead_letter=on_dead_letter,
    )
    for agent in runner.agents:
        group = agent_group(settings, agent)
        subscribe_concurrent(
            broker,
            settings,
            topic=topics.agent_tasks,
            group=group,
            model=TaskSubmitted,
            handler=tasks_for(agent),
            key=lambda task: task.task_id,
            limit=settings.agent_concurrency,
            healthy=healthy,
            on_dead_letter=on_dead_letter,
            dead_letter_invalid=False,
        )
        subscribe_concurrent(
            broker,
            settings,
            topic=topics.approval_decided,
            group=group,
            model=ApprovalDecided,
            handler=decisions_for(agent),
            key=lambda decided: decided.run_id,
            limit=settings.agent_concurrency,
            healthy=healthy,
            on_dead_letter=on_dead_letter,
            dead_letter_invalid=False,
        )
