"""Composition root: wire settings, store, broker, service and the HTTP app."""

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from hitl_contracts import ApprovalDecided
from hitl_contracts.base import utcnow
from hitl_contracts.signing import DecisionSigner
from hitl_shared import telemetry
from hitl_shared.directory import Directory
from hitl_shared.health import store_and_broker
from hitl_shared.http_limits import BodyLimit, install_unavailable_handlers
from hitl_shared.http_tracing import BIND_PATH_IDS, instrument
from hitl_shared.kafka import ensure_topics, make_broker, publish
from hitl_shared.metrics import ConsumerLag
from hitl_shared.mongo import database, make_client
from prometheus_client import Gauge

from hitl_approval.adapters.agent_runs import AgentRuns
from hitl_approval.adapters.analytics_store import AnalyticsStore
from hitl_approval.adapters.idempotency import IdempotencyStore
from hitl_approval.adapters.instances import InstanceRegistry
from hitl_approval.adapters.link_uses import LinkUses
from hitl_approval.adapters.metrics import ApprovalMetrics
from hitl_approval.adapters.notes import NoteRepository
from hitl_approval.adapters.repository import ApprovalRepository
from hitl_approval.adapters.signing_keys import KeyRing, configured_signer, load_keyring
from hitl_approval.adapters.store_time import background
from hitl_approval.adapters.traces import TraceStore
from hitl_approval.adapters.watched import StoreCommands, WatchedRepository
from hitl_approval.adapters.web_sessions import WebSessions
from hitl_approval.domain.errors import BrokenApproval
from hitl_approval.domain.model import Approval
from hitl_approval.domain.policy import PolicyBook
from hitl_approval.entrypoints import consumer
from hitl_approval.entrypoints.channels import router as integrations_router
from hitl_approval.entrypoints.rest import analytics as analytics_api
from hitl_approval.entrypoints.rest import (
    api,
    creating,
    decisions,
    errors,
    health,
    keys,
    waiting,
)
from hitl_approval.entrypoints.rest.auth import load_reviewers
from hitl_approval.entrypoints.web import router as web_router
from hitl_approval.entrypoints.web.session import SESSION_SECONDS
from hitl_approval.service_layer.analytics import Analytics
from hitl_approval.service_layer.outbox import AfterCommitHook, EventPublisher, Outbox, OutboxEvent
from hitl_approval.service_layer.services import ApprovalService, Clock
from hitl_approval.service_layer.watching import Watchers
from hitl_approval.settings import ApprovalSettings
from hitl_approval.views import Views

log = logging.getLogger(__name__)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


async def _every(seconds: float, name: str, job: Callable[[], Awaitable[int]]) -> None:
    while True:
        try:
            with background():
                await job()
        except Exception:
            # A background job's failure must not kill the service; it runs again.
            log.exception("%s failed; retrying in %.1fs", name, seconds)
        await asyncio.sleep(seconds)


async def _crash_after_commit(event: OutboxEvent) -> None:
    """Test fault (APPROVAL_FAULT_CRASH_AFTER_COMMIT): die like SIGKILL before publishing."""
    if isinstance(event, ApprovalDecided):
        log.error("fault injection: exiting after storing %s, before publishing", event.decision)
        os._exit(137)


async def _once(name: str, job: Callable[[], Awaitable[int]]) -> None:
    try:
        await job()
    except Exception:
        # The next start-up (or the minute's check) tries again.
        log.exception("%s failed", name)


def build_service(
    repo: ApprovalRepository,
    publish: EventPublisher,
    *,
    notes: NoteRepository | None = None,
    metrics: ApprovalMetrics | None = None,
    clock: Clock = utcnow,
    outbox_grace: timedelta = timedelta(seconds=2),
    replica_timeout: timedelta = timedelta(seconds=5),
    publish_timeout: timedelta = timedelta(seconds=5),
    after_commit: AfterCommitHook | None = None,
    policies: PolicyBook | None = None,
    reviewers: Directory | None = None,
    signer: DecisionSigner | None = None,
    refuse_unknown_submitter: bool = False,
    on_committed: Callable[[Approval], None] | None = None,
) -> ApprovalService:
    """The service and the outbox it commits through, on `repo`'s database."""
    metrics = metrics or ApprovalMetrics()
    outbox = Outbox(
        repo,
        publish,
        instances=InstanceRegistry(repo.db),
        metrics=metrics,
        clock=clock,
        grace=outbox_grace,
        replica_timeout=replica_timeout,
        publish_timeout=publish_timeout,
        after_commit=after_commit,
    )
    return ApprovalService(
        repo,
        outbox=outbox,
        notes=notes or NoteRepository(repo.db),
        metrics=metrics,
        policies=policies,
        reviewers=reviewers,
        signer=signer,
        refuse_unknown_submitter=refuse_unknown_submitter,
        clock=clock,
        on_committed=on_committed,
    )


def build_app(
    settings: ApprovalSettings | None = None, *, after_commit: AfterCommitHook | None = None
) -> FastAPI:
    settings = settings or ApprovalSettings()
    metrics = ApprovalMetrics()
    # Short per operation: a caller gets 503 within ~2 s when the store is away;
    # background work widens it (adapters.store_time). Commands are counted so what
    # waiters cost the store shows in /metrics (hitl_store_commands_total).
    mongo = make_client(
        settings,
        timeoutMS=settings.approval_store_timeout_ms,
        serverSelectionTimeoutMS=settings.approval_store_timeout_ms,
        event_listeners=[StoreCommands(metrics.registry)],
    )
    # One connection pool for the service's outbound HTTP (Slack's response_url).
    http = httpx.AsyncClient(timeout=5.0)
    db = database(mongo, settings)
    # Waiters learn of this replica's commits from the repository (no read), of other
    # changes by reading through their own repository (no writes, so no instance).
    watchers = Watchers(ApprovalRepository(db).get)
    # One id per process: outbox entries name the replica that publishes them.
    repo = WatchedRepository(
        db,
        instance=f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        on_projected=watchers.offer,
    )
    notes = NoteRepository(db)
    idempotency = IdempotencyStore(db)
    web_sessions = WebSessions(db, lifetime=timedelta(seconds=SESSION_SECONDS))
    broker = make_broker(settings, client_id="hitl-approval")
    reviewers = load_reviewers(settings)
    # Read now so a bad key stops start-up; the development key needs the store (lifespan).
    signer = configured_signer(settings)
    traces = TraceStore(db)

    async def publish_event(event: OutboxEvent) -> None:
        # A decision goes to approval.decided; an escalated request back to approval.requested.
        topic = (
            settings.topics.approval_decided
            if isinstance(event, ApprovalDecided)
            else settings.topics.approval_requested
        )
        # Published in the trace the request came with, not the reviewer's request's.
        traceparent = await traces.recall(event.correlation_id)
        with telemetry.continuing(traceparent, f"approval {event.correlation_id} outcome"):
            await publish(
                broker, topic, event, key=event.run_id, correlation_id=event.correlation_id
            )

    analytics_store = AnalyticsStore(db)
    analytics = Analytics(
        analytics_store,
        writer=repo.instance,
        clock=lambda: service.clock(),
        load=repo.get,
        alive=lambda: service.outbox.instances.alive(
            service.clock(), within=service.outbox.replica_timeout
        ),
        wait_refresh=timedelta(seconds=settings.approval_expected_wait_refresh_seconds),
    )
    if after_commit is None and settings.approval_fault_crash_after_commit:
        after_commit = _crash_after_commit
    service = build_service(
        repo,
        publish_event,
        notes=notes,
        policies=settings.policy_book(),
        reviewers=reviewers,
        refuse_unknown_submitter=settings.refuse_unknown_submitter,
        metrics=metrics,
        outbox_grace=timedelta(seconds=settings.approval_outbox_grace_seconds),
        replica_timeout=timedelta(seconds=settings.approval_replica_timeout_seconds),
        publish_timeout=timedelta(seconds=settings.approval_publish_timeout_seconds),
        after_commit=after_commit,
        on_committed=analytics.record,
    )
    consumer.register(
        broker,
        settings,
        service,
        healthy=store_and_broker(mongo, broker),
        traces=traces,
        analytics=analytics,
    )
    waiting.register_wakeups(broker, settings, watchers)
    Gauge(
        "hitl_approval_waiters",
        "Requests of this replica waiting for an approval to change (long-polls, SSE).",
        registry=metrics.registry,
    ).set_function(watchers.waiting)
    retention = timedelta(seconds=settings.approval_idempotency_retention_seconds)

    async def housekeeping() -> int:
        forgotten = await idempotency.forget_before(service.clock() - retention)
        return forgotten + await web_sessions.forget_before(service.clock())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with background():
            await repo.ensure_indexes()
            await notes.ensure_indexes()
            await idempotency.ensure_indexes()
            await web_sessions.ensure_indexes()
            await analytics_store.ensure_indexes()
            ring: KeyRing = await load_keyring(settings, db, signer)
        app.state.keyring = ring
        service.signer = ring.signer
        # What a crashed replica kept out of the decision rollup (looked for only then).
        repair = asyncio.create_task(_once("analytics start", analytics.start))
        await ensure_topics(settings, settings.topics.all(), partitions=settings.kafka_partitions)
        await broker.start()
        with background():
            await service.outbox.heartbeat()
        jobs = [
            asyncio.create_task(
                _every(
                    settings.approval_outbox_interval_seconds, "heartbeat", service.outbox.heartbeat
                )
            ),
            asyncio.create_task(
                _every(settings.approval_sweep_interval_seconds, "expiry sweep", service.expire_due)
            ),
            asyncio.create_task(
                _every(
                    settings.approval_full_sweep_interval_seconds, "full sweep", service.sweep_all
                )
            ),
            asyncio.create_task(
                _every(
                    settings.approval_outbox_interval_seconds, "outbox relay", service.outbox.relay
                )
            ),
            asyncio.create_task(_every(600, "housekeeping", housekeeping)),
            asyncio.create_task(
                _every(
                    settings.approval_analytics_flush_seconds, "analytics flush", analytics.flush
                )
            ),
            asyncio.create_task(_every(60, "analytics writers", analytics.check_writers)),
            asyncio.create_task(
                _every(
                    settings.approval_watch_refresh_seconds, "watch refresh", watchers.refresh_all
                )
            ),
        ]
        log.info("approval service ready on %s:%s", settings.approval_host, settings.approval_port)
        try:
            yield
        finally:
            for job in [*jobs, repair]:
                job.cancel()
            # What was published since the last relay pass: marked, so a restart does not
            # publish it again (it would be a duplicate consumers drop, but still work).
            with contextlib.suppress(Exception), background():
                await service.outbox.mark_published()
            with contextlib.suppress(Exception), background():
                await analytics.stop()  # what this replica recorded last
            await broker.stop()
            await http.aclose()
            await mongo.close()

    return http_app(
        lifespan=lifespan,
        state={
            "settings": settings,
            "service": service,
            "analytics": analytics,
            "mongo": mongo,
            "http": http,
            "agent_runs": AgentRuns(
                http, base_url=settings.approval_agent_url, token=settings.approval_agent_token
            ),
            "broker": broker,
            "directory": reviewers,
            "idempotency": idempotency,
            "watchers": watchers,
            "views": Views(repo),
            "link_uses": LinkUses(db),
            "web_sessions": web_sessions,
            "consumer_lag": ConsumerLag(broker, metrics.registry),
        },
    )


def http_app(*, state: dict[str, Any], lifespan: Lifespan | None = None) -> FastAPI:
    """The routes of every channel over the collaborators in `state` (see `build_app`).

    Tests call it with fakes and drive it in-process (`httpx.ASGITransport`).
    """
    app = FastAPI(
        title="hitl approval service",
        version="0.1.0",
        description="Stores approval requests, serves reviewers, enforces timeouts, "
        "emits approval.decided. Every /v1/approvals call needs `Authorization: Bearer "
        "<reviewer token>`. Every approval.decided is signed; `GET /v1/keys` publishes "
        "the public keys that verify it.",
        lifespan=lifespan,
        dependencies=[BIND_PATH_IDS],
    )
    instrument(app)
    for name, value in state.items():
        setattr(app.state, name, value)
    app.add_exception_handler(RequestValidationError, errors.on_validation_error)
    app.add_exception_handler(BrokenApproval, errors.on_broken_approval)
    install_unavailable_handlers(app)
    # On the bytes read, chunked bodies included, on every route (forms, Slack, email).
    app.add_middleware(BodyLimit)
    app.include_router(creating.router)
    app.include_router(waiting.router)
    app.include_router(api.router)
    app.include_router(analytics_api.router)
    app.include_router(decisions.router)
    app.include_router(health.router)
    app.include_router(keys.router)
    app.include_router(integrations_router)
    app.include_router(web_router)
    return app
