"""Composition root: wire settings, store, broker, service and the HTTP app."""

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from hitl_contracts import ApprovalDecided
from hitl_shared import telemetry
from hitl_shared.health import store_and_broker
from hitl_shared.http_limits import BodyLimit, install_unavailable_handlers
from hitl_shared.http_tracing import BIND_PATH_IDS, instrument
from hitl_shared.kafka import ensure_topics, make_broker, publish
from hitl_shared.metrics import ConsumerLag
from hitl_shared.mongo import database, make_client
from prometheus_client import Gauge

from hitl_approval.adapters.analytics_store import AnalyticsStore
from hitl_approval.adapters.idempotency import IdempotencyStore
from hitl_approval.adapters.instances import InstanceRegistry
from hitl_approval.adapters.metrics import ApprovalMetrics
from hitl_approval.adapters.notes import NoteRepository
from hitl_approval.adapters.signing_keys import KeyRing, configured_signer, load_keyring
from hitl_approval.adapters.store_time import background
from hitl_approval.adapters.traces import TraceStore
from hitl_approval.adapters.watched import StoreCommands, WatchedRepository
from hitl_approval.adapters.web_sessions import WebSessions
from hitl_approval.domain.errors import BrokenApproval
from hitl_approval.entrypoints import analytics as analytics_api
from hitl_approval.entrypoints import (
    api,
    consumer,
    creating,
    decisions,
    errors,
    health,
    keys,
    waiting,
)
from hitl_approval.entrypoints.auth import load_reviewers
from hitl_approval.integrations.router import router as integrations_router
from hitl_approval.service_layer.analytics import Analytics
from hitl_approval.service_layer.services import AfterCommitHook, ApprovalService, OutboxEvent
from hitl_approval.service_layer.watching import Watchers
from hitl_approval.settings import ApprovalSettings
from hitl_approval.web import router as web_router
from hitl_approval.web.session import SESSION_SECONDS

log = logging.getLogger(__name__)


async def _every(seconds: float, name: str, job: Callable[[], Awaitable[int]]) -> None:
    while True:
        try:
            with background():
                await job()
        except Exception:
            # A background job's failure must not kill the service; it runs again.
            log.exception("%s failed; retrying in %.1fs", name, seconds)
        await asyncio.sleep(seconds)


async def _once(name: str, job: Callable[[], Awaitable[int]]) -> None:
    try:
        await job()
    except Exception:
        # The next start-up tries again; until then listings are only slower.
        log.exception("%s failed", name)


async def _crash_after_commit(event: OutboxEvent) -> None:
    """Test fault (APPROVAL_FAULT_CRASH_AFTER_COMMIT): die like SIGKILL before publishing."""
    if isinstance(event, ApprovalDecided):
        log.error("fault injection: exiting after storing %s, before publishing", event.decision)
        os._exit(137)


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
    # One id per process: outbox entries name the replica that publishes them.
    repo = WatchedRepository(
        db, instance=f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
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
        if isinstance(event, ApprovalDecided) and not event.signature and service.signer:
            # Stored unsigned by an older version and relayed now: consumers need it signed.
            event = service.signer.sign(event)
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
    service = ApprovalService(
        repo,
        publish_event,
        notes=notes,
        policies=settings.policy_book(),
        reviewers=reviewers,
        refuse_unknown_submitter=settings.refuse_unknown_submitter,
        metrics=metrics,
        instances=InstanceRegistry(db),
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
    watchers = Watchers(repo.get)
    repo.on_projected = watchers.offer
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
        # A store written by an older hitl: finished rows leave the pending listing.
        # In the background: listings are correct before, during and after it.
        migration = asyncio.create_task(_once("archive finished approvals", repo.archive_finished))
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
            for job in [*jobs, migration, repair]:
                job.cancel()
            with contextlib.suppress(Exception), background():
                await analytics.stop()  # what this replica recorded last
            await broker.stop()
            await http.aclose()
            await mongo.close()

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
    app.state.settings = settings
    app.state.service = service
    app.state.analytics = analytics
    app.state.mongo = mongo
    app.state.http = http
    app.state.broker = broker
    app.state.directory = reviewers
    app.state.idempotency = idempotency
    app.state.watchers = watchers
    app.state.web_sessions = web_sessions
    app.state.consumer_lag = ConsumerLag(broker, metrics.registry)
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
