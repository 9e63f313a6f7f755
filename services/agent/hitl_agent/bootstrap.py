"""Composition root of the agent service."""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from hitl_contracts import ApprovalRequested, RunEvent, TaskSubmitted
from hitl_contracts.base import utcnow
from hitl_sdk import App, Resources
from hitl_shared.decision_keys import DecisionKeys
from hitl_shared.directory import Role
from hitl_shared.health import store_and_broker
from hitl_shared.http_auth import require_any
from hitl_shared.http_limits import BodyLimit, install_unavailable_handlers
from hitl_shared.http_tracing import BIND_PATH_IDS, instrument
from hitl_shared.kafka import Outgoing, ensure_topics, make_broker, publish, publish_in_order
from hitl_shared.metrics import endpoint
from hitl_shared.mongo import database, make_client, ping

from hitl_agent import catalog
from hitl_agent.adapters.approvals import ApprovalClient
from hitl_agent.adapters.apps import AppLoadError, parse_apps, resolve
from hitl_agent.adapters.chat import ChatModel
from hitl_agent.adapters.live import RunFeed
from hitl_agent.adapters.llm import make_model
from hitl_agent.adapters.oversight import OversightStore
from hitl_agent.adapters.run_rows import RunRows
from hitl_agent.adapters.runs import RunStore
from hitl_agent.adapters.workers import WorkerRegistry
from hitl_agent.domain.cost import PriceTable
from hitl_agent.entrypoints import api, consumer, cost, errors, events, live, oversight
from hitl_agent.metrics import AgentMetrics, MeteredModel
from hitl_agent.service_layer.executions import Executions, crash_after
from hitl_agent.service_layer.outbox import Outbox
from hitl_agent.service_layer.oversight import Oversight
from hitl_agent.service_layer.runner import Runner
from hitl_agent.service_layer.steps import Steps
from hitl_agent.settings import AgentSettings
from hitl_agent.views import RunViews

log = logging.getLogger(__name__)


def load_apps(named: list[str], settings: AgentSettings) -> list[App]:
    """The apps named on the command line, else AGENT_APPS, else the installed ones."""
    return [loaded.app for loaded in resolve(named or parse_apps(settings.agent_apps))]


def build_app(
    settings: AgentSettings | None = None,
    *,
    model: ChatModel | None = None,
    apps: list[App] | None = None,
) -> FastAPI:
    settings = settings or AgentSettings()
    apps = load_apps([], settings) if apps is None else apps
    try:
        hosted = catalog.agents(settings, apps)
    except ValueError as exc:
        raise AppLoadError(str(exc)) from exc
    mongo = make_client(settings)
    db = database(mongo, settings)
    store = RunStore(db)
    workers = WorkerRegistry(db, stale_after=timedelta(seconds=settings.agent_worker_stale_seconds))
    worker_id = f"agent-{uuid.uuid4().hex[:8]}"
    resources = Resources(database=db, environment=settings.hitl_env)
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

    async def publish_request(requests: list[ApprovalRequested]) -> None:
        await publish_in_order(
            broker,
            [
                Outgoing(topics.approval_requested, r, r.run_id, correlation_id=r.correlation_id)
                for r in requests
            ],
        )

    async def publish_event(events: list[RunEvent]) -> None:
        await publish_in_order(broker, [Outgoing(topics.agent_runs, e, e.run_id) for e in events])
        for event in events:
            metrics.published(event)

    async def submit_task(task: TaskSubmitted) -> None:
        await publish(broker, topics.agent_tasks, task, key=task.task_id)

    fault = settings.agent_fault_crash_after_execution
    try:
        prices = PriceTable.load(inline=settings.agent_prices, file=settings.agent_prices_file)
    except (ValueError, OSError) as exc:
        raise AppLoadError(str(exc)) from exc
    supervision = Oversight(
        OversightStore(db),
        approval_timeout=timedelta(seconds=settings.agent_approval_timeout_seconds),
    )
    run_rows = RunRows(db)
    run_feed = RunFeed(settings, db)
    cost_metrics = cost.CostMetrics(
        metrics.registry, run_rows, prices, ttl=settings.agent_cost_metrics_seconds
    )
    outbox = Outbox(
        store, publish_request=publish_request, publish_event=publish_event, approvals=approvals
    )
    runner = Runner(
        store=store,
        agents=hosted,
        steps=Steps(
            model=MeteredModel(
                model
                or make_model(
                    api_key=settings.openai_api_key,
                    base_url=settings.openai_base_url,
                    model=settings.openai_model,
                    offline_rules=[
                        agent.offline_plan
                        for hosted_app in apps
                        for agent in hosted_app.agents
                        if agent.offline_plan is not None
                    ],
                ),
                metrics,
            ),
            executions=Executions(
                store,
                owner=worker_id,
                wait_seconds=settings.agent_execution_wait_seconds,
                after_execute=crash_after(fault) if fault else None,
            ),
            approval_timeout=timedelta(seconds=settings.agent_approval_timeout_seconds),
        ),
        outbox=outbox,
        keys=keys,
        oversight=supervision,
    )
    consumer.register(
        broker,
        settings,
        runner,
        workers=workers,
        healthy=store_and_broker(mongo, broker),
        on_dead_letter=metrics.dead_lettered,
        on_unhosted=metrics.unhosted,
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

    started_at = utcnow()

    async def beat_forever() -> None:
        while True:
            await asyncio.sleep(settings.agent_worker_heartbeat_seconds)
            try:
                await workers.beat(worker_id, sorted(runner.agents), started_at=started_at)
            except Exception:
                log.exception("worker heartbeat failed; retrying")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.ensure_indexes()
        for hosted_app in apps:
            for hook in hosted_app.startup:
                await hook(resources)
        await ensure_topics(settings, settings.topics.all(), partitions=settings.kafka_partitions)
        # Listed before consuming, so no worker marks this one's tasks unhosted.
        await workers.beat(worker_id, sorted(runner.agents), started_at=started_at)
        await broker.start()
        background = [
            asyncio.create_task(relay_forever()),
            asyncio.create_task(beat_forever()),
        ]
        log.info(
            "agent worker %s ready (model: %s, agents: %s, decision keys: %s)",
            worker_id,
            runner.model_name,
            ", ".join(f"{n} ({s.policy.style.value})" for n, s in runner.agents.items()),
            keys.describe,
        )
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await run_feed.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner.uow.settle(), 5.0)
            with contextlib.suppress(Exception):
                # Spares the next start-up re-delivering what was already delivered.
                await outbox.forget_delivered()
            await broker.stop()
            with contextlib.suppress(Exception):
                # Outcome records still on their way, those of handlers that ran until
                # the consumer stopped included; before the store's client closes.
                await asyncio.wait_for(runner.steps.executions.settle(), 5.0)
            with contextlib.suppress(Exception):
                await workers.leave(worker_id)
            for hosted_app in apps:
                for hook in hosted_app.shutdown:
                    try:
                        await hook(resources)
                    except Exception:
                        log.exception("an app's shutdown hook failed")
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
        endpoint(metrics.registry, metrics.lag.refresh, cost_metrics.refresh),
        methods=["GET"],
        tags=["health"],
        summary="Prometheus metrics",
    )
    app.state.settings = settings
    app.state.runner = runner
    app.state.views = RunViews(store, run_rows, supervision.store)
    app.state.workers = workers
    app.state.on_unhosted = metrics.unhosted
    app.state.submit_task = submit_task
    app.state.oversight = supervision
    app.state.run_rows = run_rows
    app.state.run_feed = run_feed
    app.state.prices = prices
    app.include_router(live.router)
    app.include_router(api.router)
    app.include_router(events.router)
    app.include_router(oversight.router)
    app.include_router(cost.router)
    for hosted_app in apps:
        for router in hosted_app.routers:
            if not isinstance(router, APIRouter):
                raise AppLoadError(
                    f"app {hosted_app!r}: routers must be fastapi.APIRouter, got {router!r}"
                )
            # An app's routes are served to principals that may read runs (e.g. the
            # demo's balances), like the runs API itself.
            app.include_router(router, dependencies=[require_any(Role.READ, Role.OPERATE)])

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> dict[str, Any]:
        await ping(mongo)
        return {"ready": await broker.ping(timeout=2.0)}

    return app
