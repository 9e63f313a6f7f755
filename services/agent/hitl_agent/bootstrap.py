"""Composition root of the agent service."""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from hitl_contracts import ApprovalRequested, RunEvent, TaskSubmitted
from hitl_shared.decision_keys import DecisionKeys
from hitl_shared.health import store_and_broker
from hitl_shared.http_limits import BodyLimit, install_unavailable_handlers
from hitl_shared.http_tracing import BIND_PATH_IDS, instrument
from hitl_shared.kafka import ensure_topics, make_broker, publish
from hitl_shared.metrics import endpoint
from hitl_shared.mongo import database, make_client, ping

from hitl_agent import catalog
from hitl_agent.adapters.approvals import ApprovalClient
from hitl_agent.adapters.chat import ChatModel
from hitl_agent.adapters.ledger import Ledger
from hitl_agent.adapters.llm import make_model
from hitl_agent.adapters.runs import RunStore
from hitl_agent.adapters.sandbox import Sandbox
from hitl_agent.entrypoints import api, consumer, errors, events
from hitl_agent.metrics import AgentMetrics, MeteredModel
from hitl_agent.service_layer.executions import Executions, crash_after
from hitl_agent.service_layer.outbox import Outbox
from hitl_agent.service_layer.runner import Runner
from hitl_agent.service_layer.steps import Steps
from hitl_agent.settings import AgentSettings

log = logging.getLogger(__name__)


def build_app(settings: AgentSettings | None = None, *, model: ChatModel | None = None) -> FastAPI:
    settings = settings or AgentSettings()
    mongo = make_client(settings)
    db = database(mongo, settings)
    store, ledger = RunStore(db), Ledger(db)
    sandbox = Sandbox(settings.agent_files_sandbox)
    broker = make_broker(settings, client_id="hitl-agent")
    metrics = AgentMetrics(broker)
    topics = settings.topics
    approvals = ApprovalClient(settings.agent_approval_url, settings.agent_approval_token)
    keys = DecisionKeys.configured(
        approval_url=settings.agent_approval_url,
        inline=settings.agent_decision_keys,
        file=settings.agent_decision_keys_file,
        source="AGENT_DECISION_KEYS",
    )

    async def publish_request(request: ApprovalRequested) -> None:
        await publish(
            broker,
            topics.approval_requested,
            request,
            key=request.run_id,
            correlation_id=request.correlation_id,
        )

    async def publish_event(event: RunEvent) -> None:
        await publish(broker, topics.agent_runs, event, key=event.run_id)
        metrics.published(event)

    async def submit_task(task: TaskSubmitted) -> None:
        await publish(broker, topics.agent_tasks, task, key=task.task_id)

    fault = settings.agent_fault_crash_after_execution
    outbox = Outbox(
        store, publish_request=publish_request, publish_event=publish_event, approvals=approvals
    )
    runner = Runner(
        store=store,
        agents=catalog.agents(settings, ledger=ledger, sandbox=sandbox),
        steps=Steps(
            model=MeteredModel(
                model
                or make_model(
                    api_key=settings.openai_api_key,
                    base_url=settings.openai_base_url,
                    model=settings.openai_model,
                ),
                metrics,
            ),
            executions=Executions(
                store,
                owner=f"agent-{uuid.uuid4().hex[:8]}",
                wait_seconds=settings.agent_execution_wait_seconds,
                after_execute=crash_after(fault) if fault else None,
            ),
            approval_timeout=timedelta(seconds=settings.agent_approval_timeout_seconds),
        ),
        outbox=outbox,
        keys=keys,
    )
    consumer.register(
        broker,
        settings,
        runner,
        healthy=store_and_broker(mongo, broker),
        on_dead_letter=metrics.dead_lettered,
    )

    async def relay_forever() -> None:
        grace = timedelta(seconds=settings.agent_outbox_grace_seconds)
        stalled = timedelta(seconds=settings.agent_stalled_after_seconds)
        while True:
            try:
                await outbox.relay(grace=grace)
                await runner.recover(stalled_after=stalled)
            except Exception:
                log.exception("outbox relay / run recovery failed; retrying")
            await asyncio.sleep(settings.agent_outbox_interval_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.ensure_indexes()
        await ledger.ensure_indexes()
        await ledger.seed(settings.agent_seed_accounts)
        # A store written by an older hitl: balances from its ledger, once.
        await ledger.migrate()
        if not sandbox.ensure():
            log.error("cannot create the files sandbox %s; the files agent will fail", sandbox.root)
        await ensure_topics(settings, settings.topics.all(), partitions=settings.kafka_partitions)
        await broker.start()
        relay = asyncio.create_task(relay_forever())
        log.info(
            "agent service ready (model: %s, agents: %s, sandbox: %s, decision keys: %s)",
            runner.model_name,
            ", ".join(f"{n} ({s.policy.style.value})" for n, s in runner.agents.items()),
            sandbox.root,
            keys.describe,
        )
        try:
            yield
        finally:
            relay.cancel()
            with contextlib.suppress(Exception):
                # Spares the next start-up re-delivering what was already delivered.
                await outbox.forget_delivered()
            await broker.stop()
            await approvals.close()
            await mongo.close()

    app = FastAPI(
        title="hitl agent service",
        version="0.2.0",
        lifespan=lifespan,
        dependencies=[BIND_PATH_IDS],
    )
    instrument(app)
    app.add_middleware(BodyLimit)
    install_unavailable_handlers(app)
    app.add_exception_handler(RequestValidationError, errors.on_validation_error)
    app.state.directory = settings.directory()
    app.add_api_route(
        "/metrics",
        endpoint(metrics.registry, metrics.lag.refresh),
        methods=["GET"],
        tags=["health"],
        summary="Prometheus metrics",
    )
    app.state.settings = settings
    app.state.runner = runner
    app.state.ledger = ledger
    app.state.submit_task = submit_task
    app.include_router(api.router)
    app.include_router(events.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> dict[str, Any]:
        await ping(mongo)
        return {"ready": await broker.ping(timeout=2.0)}

    return app
