"""Kafka plumbing: one latency-tuned broker factory, keyed publishing, safe consumers.

Every consumer goes through `subscribe`: the raw bytes are validated against the
event model; a message that cannot be parsed goes to `<topic>.dlq` with the reason at
once and consumption continues. When its handler fails, a health probe of the store
and the broker decides whose fault that is (the exception's class cannot: a document
that makes the store drop the connection raises what an outage raises). Both up: the
message's; after a few tries it is dead-lettered, whatever the exception. Either down:
an outage; retried and, failing that, nacked so the message is read again, not lost.

Every client is built with the deployment's SASL/TLS settings (`kafka_security`).

Tracing and log context ride along: `publish` puts the current W3C `traceparent`
in the headers; the consumer wrapper continues that trace in a span per message and
binds the event's `correlation_id` / `run_id` for every line logged while handling it.
"""

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any, TypeVar, cast

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from bson.errors import InvalidDocument
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import StreamMessage
from hitl_contracts import DeadLetter, Event
from pydantic import BaseModel, ValidationError

from hitl_shared import context, telemetry
from hitl_shared.health import Probe
from hitl_shared.http_limits import Unavailable
from hitl_shared.kafka_pipeline import Pipeline, Releaser
from hitl_shared.kafka_security import broker_security, client_kwargs, describe
from hitl_shared.settings import CommonSettings
from hitl_shared.topics import dlq

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)

# Past this the original is cut in the dead letter; it is still at topic/partition/offset.
MAX_DEAD_LETTER_ORIGINAL = 256 * 1024
MAX_EVENT_BYTES = 1024 * 1024
HANDLER_ATTEMPTS = 3
BATCH_MAX_RECORDS = 500
# How long an idle batch poll waits for records before it polls again; records that
# arrive end it at once (see `_WaitingBatchSubscriber`), so this costs no latency.
BATCH_TIMEOUT_MS = 1_000


class PoisonMessage(Exception):
    """A handler's verdict that retrying this message can never succeed."""


# Failures that say "this message" by their very type: no retry, no health probe.
# (A value the store cannot encode, a model the event cannot become, a duration
# that does not fit a datetime: the same message fails the same way every time.)
_DETERMINISTIC = (PoisonMessage, ValidationError, InvalidDocument, OverflowError)


def make_broker(settings: CommonSettings, *, client_id: str) -> KafkaBroker:
    log.info("kafka %s: %s", client_id, describe(settings))
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=broker_security(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.kafka_linger_ms,
        # A decision must not wait behind reconnect back-off longer than needed.
        retry_backoff_ms=50,
        request_timeout_ms=15_000,
        logger=logging.getLogger(f"hitl.{client_id}.kafka"),
        log_level=logging.DEBUG,
    )


async def ensure_topics(settings: CommonSettings, names: list[str], *, partitions: int = 3) -> None:
    """Create topics (and their DLQs) up front, so no consumer waits for auto-creation."""
    wanted = sorted({*names, *(dlq(n) for n in names)})
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **client_kwargs(settings)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if missing:
            # Another service may create the same topics at the same moment.
            with contextlib.suppress(TopicAlreadyExistsError):
                response = await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing]
                )
                _check_created(response.topic_errors)
    finally:
        await admin.close()


def _check_created(topic_errors: list[tuple[Any, ...]]) -> None:
    """aiokafka returns per-topic errors instead of raising: a refused create must not
    pass silently (the consumers would fail later, far from the cause)."""
    failed = [
        f"{topic}: {for_code(code).__name__}"
        for topic, code, *_ in topic_errors
        if code not in (0, TopicAlreadyExistsError.errno)
    ]
    if failed:
        raise RuntimeError(
            "could not create Kafka topics ("
            + ", ".join(failed)
            + "): grant this service's principal Create on them, or have an operator "
            "create them (README, Kafka security)"
        )


def encode(event: BaseModel) -> bytes:
    return event.model_dump_json().encode()


async def publish(
    broker: KafkaBroker,
    topic: str,
    event: BaseModel,
    *,
    key: str,
    correlation_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    await _send(broker, Outgoing(topic, event, key, correlation_id, headers), confirm=True)


@dataclass(frozen=True)
class Outgoing:
    """One record to publish: `publish_in_order` takes several."""

    topic: str
    event: BaseModel
    key: str
    correlation_id: str | None = None
    headers: dict[str, str] | None = None


async def publish_in_order(broker: KafkaBroker, records: list[Outgoing]) -> None:
    """Publish `records` in this order, then wait for all their acknowledgements.

    Each record is handed to the producer in turn, so records of one key (one
    partition) keep their order (the producer is idempotent: a retried batch neither
    repeats nor overtakes), and the acknowledgements are awaited together: records of
    one run go in one produce request instead of a round trip each. Raises the first
    failure once every record has been answered; the caller then publishes them all
    again and consumers de-duplicate by `event_id`. So after a failure a consumer may
    see a record before the re-sent copy of one that preceded it (as it sees repeats
    after any re-send): order by the event's own `seq` where that matters. Records on
    different partitions are not ordered among themselves: publish those that must
    come first on their own.
    """
    acks: list[asyncio.Future[Any]] = []
    try:
        for record in records:
            acks.append(await _send(broker, record, confirm=False))
    finally:
        answers = await asyncio.gather(*acks, return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer


async def _send(broker: KafkaBroker, record: Outgoing, *, confirm: bool) -> Any:
    all_headers = {"content-type": "application/json", **(record.headers or {})}
    if record.correlation_id:
        all_headers["correlation_id"] = record.correlation_id
    with telemetry.producing(record.topic):
        telemetry.inject(all_headers)
        return await broker.publish(
            encode(record.event),
            topic=record.topic,
            key=record.key.encode(),
            headers=all_headers,
            correlation_id=record.correlation_id,
            no_confirm=not confirm,
        )


def current_message(broker: KafkaBroker) -> KafkaMessage:
    """The message being handled, from FastStream's context.

    Not a handler parameter (`message: KafkaMessage`): FastStream resolves such a
    parameter with a synchronous function, which its dependency injection runs in a
    worker thread: a thread hop per message (py-spy: about a sixth of the notifier's
    samples were that hop's locks in the 16-client benchmark)."""
    message: KafkaMessage = broker.context.get_local("message")
    return message


async def _raw_body(msg: StreamMessage[Any]) -> bytes:
    return msg.body


async def dead_letter(
    broker: KafkaBroker, message: KafkaMessage, error: str, *, group: str
) -> None:
    raw = message.raw_message
    record = raw[0] if isinstance(raw, tuple) else raw
    await dead_letter_record(broker, record, message.body, error, group=group)


async def dead_letter_record(
    broker: KafkaBroker, record: ConsumerRecord[Any, Any], body: bytes, error: str, *, group: str
) -> None:
    letter = DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode(errors="replace") if record.key else None,
        error=error[:2000],
        original_b64=base64.b64encode(body[:MAX_DEAD_LETTER_ORIGINAL]).decode(),
        original_size=len(body),
        truncated=len(body) > MAX_DEAD_LETTER_ORIGINAL,
        consumer_group=group,
    )
    await publish(broker, dlq(record.topic), letter, key=letter.key or str(letter.event_id))
    log.warning("dead-lettered %s[%s]@%s: %s", record.topic, record.partition, record.offset, error)


def parse(model: type[E], body: bytes) -> E:
    if len(body) > MAX_EVENT_BYTES:
        raise ValueError(f"event of {len(body)} bytes exceeds the {MAX_EVENT_BYTES} byte limit")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise ValueError(_summarize(exc)) from exc


def _summarize(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


async def _attempt(
    call: Callable[[], Awaitable[None]],
    topic: str,
    *,
    healthy: Probe,
    attempts: int = HANDLER_ATTEMPTS,
) -> Exception | None:
    """Run a handler: None when it succeeded, else why this message failed for good.

    - PoisonMessage, a validation error, a value the store cannot encode: the message's
      fault by type; returned at once (dead-lettered).
    - `Unavailable` (a dependency said so), or any failure while `healthy()` says the
      store or the broker is down: an outage, not the message's fault. Retried; if it
      lasts, raised, so the message is nacked and read again rather than dead-lettered.
    - Any other failure while store and broker are healthy counts against `attempts`;
      then it is returned (dead-lettered) whatever its class, so one message can never
      stall its partition.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    failures = outages = 0
    while True:
        try:
            await call()
            return None
        except _DETERMINISTIC as exc:
            return exc
        except Exception as exc:
            if isinstance(exc, Unavailable) or not await healthy():
                outages += 1
                if outages >= HANDLER_ATTEMPTS:
                    log.error("store or broker down on %s, will redeliver: %r", topic, exc)
                    await asyncio.sleep(1.0)
                    raise
                log.warning("store or broker down on %s (try %d): %r", topic, outages, exc)
                await asyncio.sleep(0.2 * 2**outages)
                continue
            failures += 1
            if failures >= attempts:
                return exc
            log.warning(
                "handler attempt %d on %s failed with store and broker up: %r", failures, topic, exc
            )
            await asyncio.sleep(0.2 * 2**failures)


def _reason(failure: Exception, topic: str) -> str:
    if isinstance(failure, PoisonMessage):
        return f"rejected: {failure}"
    log.error("handler for %s failed permanently", topic, exc_info=failure)
    return f"handler failed: {failure!r}"


def subscribe(
    broker: KafkaBroker,
    settings: CommonSettings,
    *,
    topic: str,
    group: str,
    model: type[E],
    handler: Callable[[E], Awaitable[None]],
    healthy: Probe,
    on_dead_letter: Callable[[str], None] | None = None,
    dead_letter_invalid: bool = True,
) -> None:
    """Register `handler` for `model` events on `topic` with DLQ and retry semantics.

    `healthy` probes the store and broker the handler depends on (`hitl_shared.health`):
    it tells an outage (retry) from a message that breaks the handler (dead-letter).
    `dead_letter_invalid=False`: a message that does not parse is skipped, for groups
    that read a topic beside another group which dead-letters it once.
    """

    async def consume(body: bytes) -> None:
        message = current_message(broker)
        headers = message.headers
        # Until the body parses, the header is all we know of what this is about.
        with (
            telemetry.consuming(topic, headers),
            context.bound(correlation_id=_header(headers, "correlation_id")),
        ):
            try:
                event = parse(model, body)
            except ValueError as exc:
                if dead_letter_invalid:
                    await rejected(message, f"invalid {model.__name__}: {exc}")
                return
            token = context.handling.set(event)
            try:
                with context.bound(**context.ids_of(event)):
                    await handle(event, message)
            finally:
                context.handling.reset(token)

    async def handle(event: E, message: KafkaMessage) -> None:
        failure = await _attempt(lambda: handler(event), topic, healthy=healthy)
        if failure is not None:
            await rejected(message, _reason(failure, topic))

    async def rejected(message: KafkaMessage, error: str) -> None:
        await dead_letter(broker, message, error, group=group)
        if on_dead_letter:
            on_dead_letter(topic)

    broker.subscriber(
        topic,
        group_id=group,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_raw_body,
        # Consumer groups must notice a killed replica quickly.
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_000,
    )(consume)


def _record_rejecter(
    broker: KafkaBroker, topic: str, group: str, on_dead_letter: Callable[[str], None] | None
) -> Callable[[ConsumerRecord[Any, Any], bytes, str], Awaitable[None]]:
    """Dead-letter one raw record of a batch subscriber, and count it."""

    async def rejected(record: ConsumerRecord[Any, Any], body: bytes, error: str) -> None:
        await dead_letter_record(broker, record, body, error, group=group)
        if on_dead_letter:
            on_dead_letter(topic)

    return rejected


class _WaitingBatchSubscriber(BatchSubscriber):
    """FastStream's batch subscriber without its sleep after an empty poll.

    Its loop waits up to `batch_timeout_ms` in `getmany` (which returns as soon as the
    fetcher has records) and then, if none came, *sleeps* as long again: a record
    arriving during that sleep waited for it (up to 10 ms a hop with the 10 ms we
    used), and an idle subscriber woke 50 times a second. Here an empty poll just
    polls again, so the wait is on the fetcher alone: event-driven, and idle
    subscribers wake once per `batch_timeout_ms`.
    """

    __slots__ = ()

    async def get_msg(self, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord[Any, Any], ...]:
        batches = await consumer.getmany(
            timeout_ms=self.batch_timeout_ms, max_records=self.max_records
        )
        return tuple(chain.from_iterable(batches.values()))


class _PipelinedSubscriber(_WaitingBatchSubscriber):
    """The waiting batch subscriber feeding a `Pipeline` from its fetch (its FastStream
    handler is never called), offsets committed by the pipeline (manual acks),
    fetching paused while the pipeline is full."""

    __slots__ = ()

    pipeline: "Pipeline[Any]"

    async def get_msg(self, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord[Any, Any], ...]:
        """Fetch and hand the records to the pipeline at once; FastStream gets nothing
        (its parsing could drop a batch, e.g. on a header it cannot decode, and the
        commits would then pass records never handled)."""
        pipeline = self.pipeline
        pipeline.attach(consumer)
        if pipeline.full:
            # Keep polling (the group must see this member alive) with nothing fetched.
            consumer.pause(*consumer.assignment())
            batches = await consumer.getmany(timeout_ms=0)
            pipeline.take(chain.from_iterable(batches.values()))
            await pipeline.wait_for_room(self.batch_timeout_ms / 1000)
            return ()
        if paused := consumer.paused():
            consumer.resume(*paused)
        batches = await consumer.getmany(
            timeout_ms=self.batch_timeout_ms,
            max_records=min(self.max_records or BATCH_MAX_RECORDS, pipeline.free),
        )
        pipeline.take(chain.from_iterable(batches.values()))
        return ()

    async def stop(self) -> None:
        # Handlers get their grace and finished offsets are committed while the
        # consumer is still a member of the group.
        await self.pipeline.close()
        await super().stop()


def _batch_subscriber(
    broker: KafkaBroker,
    settings: CommonSettings,
    topic: str,
    group: str,
    *,
    max_records: int,
    pipeline: "Pipeline[Any] | None" = None,
) -> Any:
    """The consumer settings every batch subscriber shares (decorates its handler)."""
    subscriber = broker.subscriber(
        topic,
        group_id=group,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        ack_policy=AckPolicy.NACK_ON_ERROR if pipeline is None else AckPolicy.MANUAL,
        decoder=_raw_body,
        batch=True,
        max_records=max_records,
        # Returns as soon as records are there; this only bounds an idle poll.
        batch_timeout_ms=BATCH_TIMEOUT_MS,
        # Consumer groups must notice a killed replica quickly.
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_000,
        listener=None if pipeline is None else Releaser(pipeline),
    )
    if type(subscriber) is not BatchSubscriber:
        raise RuntimeError(f"FastStream built a {type(subscriber)!r}, not its BatchSubscriber")
    # Same class but `get_msg` (and `stop`); the pipeline rides on the instance.
    if pipeline is None:
        subscriber.__class__ = _WaitingBatchSubscriber
    else:
        subscriber.__class__ = _PipelinedSubscriber
        cast(_PipelinedSubscriber, subscriber).pipeline = pipeline
    return subscriber


def subscribe_batch(
    broker: KafkaBroker,
    settings: CommonSettings,
    *,
    topic: str,
    group: str,
    model: type[E],
    handler: Callable[[list[E]], Awaitable[None]],
    healthy: Probe,
    after_each: Callable[[E], Awaitable[None]] | None = None,
    on_dead_letter: Callable[[str], None] | None = None,
    max_records: int = BATCH_MAX_RECORDS,
) -> None:
    """Like `subscribe`, but `handler` gets every valid event of a fetched batch at once.

    Each record is still validated on its own: a malformed one is dead-lettered with
    its reason and the rest of the batch handled. An outage (see `_attempt`) during the
    handler nacks the whole batch (every partition rewinds to its first record), so
    `handler` must be idempotent. Any other failure is narrowed down by handling the
    events one at a time, dead-lettering only those that still fail. `after_each` runs per event
    inside that record's own trace span and log context (e.g. to keep its trace).
    """

    async def consume(_: list[bytes]) -> None:
        raw = current_message(broker).raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        events: list[tuple[E, ConsumerRecord[Any, Any]]] = []
        for record in records:
            body: bytes = record.value or b""
            try:
                events.append((parse(model, body), record))
            except ValueError as exc:
                await rejected(record, body, f"invalid {model.__name__}: {exc}")
        if not events:
            return
        # One span for the batch, in the trace of its first record (its store calls
        # show there); each record still gets its own span in `after_each`.
        with telemetry.consuming(topic, _record_headers(events[0][1])) as span:
            span.set_attribute("messaging.batch.message_count", len(events))
            handled = await handle_all([event for event, _ in events])
        if not handled:
            for event, record in events:
                await handle_one(event, record)
        if after_each is not None:
            for event, record in events:
                with (
                    telemetry.consuming(topic, _record_headers(record)),
                    context.bound(**context.ids_of(event)),
                ):
                    await after_each(event)

    async def handle_all(events: list[E]) -> bool:
        """True when the batch was handled; False to narrow a permanent failure down."""
        failure = await _attempt(lambda: handler(events), topic, healthy=healthy)
        if failure is not None:
            log.warning("batch on %s failed, handling one by one: %r", topic, failure)
        return failure is None

    async def handle_one(event: E, record: ConsumerRecord[Any, Any]) -> None:
        # The batch already had its retries: one try each; an outage still raises.
        with context.bound(**context.ids_of(event)):
            failure = await _attempt(lambda: handler([event]), topic, healthy=healthy, attempts=1)
        if failure is not None:
            await rejected(record, record.value or b"", _reason(failure, topic))

    rejected = _record_rejecter(broker, topic, group, on_dead_letter)
    _batch_subscriber(broker, settings, topic, group, max_records=max_records)(consume)


@dataclass(frozen=True)
class Invalid:
    """A record that cannot be handled: dead-lettered with `reason`."""

    reason: str


def subscribe_concurrent(
    broker: KafkaBroker,
    settings: CommonSettings,
    *,
    topic: str,
    group: str,
    model: type[E],
    handler: Callable[[E], Awaitable[None]],
    key: Callable[[E], str],
    limit: int,
    healthy: Probe,
    on_dead_letter: Callable[[str], None] | None = None,
    dead_letter_invalid: bool = True,
) -> None:
    """Like `subscribe`, but messages of different keys are handled concurrently, and
    fetching goes on while they are (`kafka_pipeline`).

    Records sharing a `key` (a run: the partition key) on a partition are handled one
    after another in their order, different keys at the same time, at most `limit` at
    once; a long one holds back only its own key. Each message keeps `subscribe`'s
    policy on its own: its trace span and log context, retries, dead-lettering of what
    breaks it. An outage that outlasts the retries leaves the record uncommitted and
    handles it again after a pause; offsets are committed in order per partition, so
    a crash redelivers what was not finished: `handler` must be idempotent (it is
    wherever redelivery already had to be survived).
    """

    def route(record: ConsumerRecord[Any, Any]) -> tuple[str, E | Invalid] | None:
        """Its key and event; a record that does not parse is dead-lettered (on a key of
        its own, retried like any handler), or skipped."""
        body: bytes = record.value or b""
        try:
            event = parse(model, body)
            return key(event), event
        except ValueError as exc:
            reason = f"invalid {model.__name__}: {exc}"
        except Exception as exc:  # the key function failed on a valid event
            reason = f"no key for this {model.__name__}: {exc!r}"
        if not dead_letter_invalid:
            return None
        return f"\x00invalid@{record.offset}", Invalid(reason)

    async def handle(item: E | Invalid, record: ConsumerRecord[Any, Any]) -> None:
        if isinstance(item, Invalid):
            await rejected(record, record.value or b"", item.reason)
            return
        event = item
        with (
            telemetry.consuming(topic, _record_headers(record)),
            context.bound(**context.ids_of(event)),
        ):
            token = context.handling.set(event)
            try:
                failure = await _attempt(lambda: handler(event), topic, healthy=healthy)
            finally:
                context.handling.reset(token)
            if failure is not None:
                await rejected(record, record.value or b"", _reason(failure, topic))

    pipeline: Pipeline[E | Invalid] = Pipeline(
        name=f"{group} on {topic}",
        limit=limit,
        route=route,
        handle=handle,
        commit_interval=settings.kafka_commit_interval_ms / 1000,
    )

    async def consume(_: list[bytes]) -> None:
        raise RuntimeError("records go to the pipeline straight from the fetch (get_msg)")

    rejected = _record_rejecter(broker, topic, group, on_dead_letter)
    _batch_subscriber(broker, settings, topic, group, max_records=limit * 4, pipeline=pipeline)(
        consume
    )


def _record_headers(record: ConsumerRecord[Any, Any]) -> dict[str, Any]:
    # Headers are the producer's bytes: a value that is not text must not break handling.
    return {
        key: value.decode(errors="replace") if isinstance(value, bytes) else value
        for key, value in record.headers or ()
        if value is not None
    }


def _header(headers: dict[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value) if value else None
