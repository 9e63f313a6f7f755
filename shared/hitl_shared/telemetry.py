"""OpenTelemetry tracing: one trace follows a task across services through Kafka headers.

`HITL_TRACING` picks what happens to spans: `off` (default) records and exports
nothing, `console` prints them on stdout, `otlp` sends them to an OTLP/HTTP
collector (`OTEL_EXPORTER_OTLP_ENDPOINT`, the standard OpenTelemetry variables).

Even when off, trace and span ids are generated and the W3C `traceparent` header is
forwarded on every hop (a sampler that samples nothing still assigns ids), so log
lines of one task share a `trace_id` at the cost of a few random numbers.
"""

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Link, Span, SpanKind
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo import monitoring

TRACEPARENT = "traceparent"

_tracer = trace.get_tracer("hitl")


class TracingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", frozen=True)

    hitl_tracing: Literal["off", "console", "otlp"] = "off"


def configure_tracing(service: str, settings: TracingSettings | None = None) -> None:
    """Install this process's tracer provider; call once, at start-up."""
    global _tracer
    mode = (settings or TracingSettings()).hitl_tracing
    resource = Resource.create({"service.name": f"hitl-{service}"})
    if mode == "off":
        provider = TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    else:
        # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
        provider = TracerProvider(resource=resource)
        if mode == "console":
            # One JSON object a line, like the logs, so both can be read line by line.
            exporter = ConsoleSpanExporter(formatter=lambda span: span.to_json(indent=None) + "\n")
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("hitl")


def recording() -> bool:
    """Whether spans go anywhere (worth storing a trace context for later)."""
    provider = trace.get_tracer_provider()
    return isinstance(provider, TracerProvider) and provider.sampler is not ALWAYS_OFF


def inject(headers: dict[str, str]) -> None:
    propagate.inject(headers)


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)


def trace_ids() -> dict[str, str]:
    """The current trace and span ids, for log lines; empty outside any span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


def _kafka_attributes(topic: str) -> dict[str, str]:
    return {"messaging.system": "kafka", "messaging.destination.name": topic}


@contextlib.contextmanager
def producing(topic: str) -> Iterator[Span]:
    with _tracer.start_as_current_span(
        f"{topic} publish", kind=SpanKind.PRODUCER, attributes=_kafka_attributes(topic)
    ) as span:
        yield span


@contextlib.contextmanager
def consuming(topic: str, headers: Mapping[str, Any]) -> Iterator[Span]:
    """A span for handling one message, child of the producer's span in its headers."""
    carrier = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in headers.items()}
    parent = propagate.extract(carrier)
    with _tracer.start_as_current_span(
        f"{topic} process",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=_kafka_attributes(topic),
    ) as span:
        yield span


@contextlib.contextmanager
def continuing(traceparent: str | None, name: str) -> Iterator[Span]:
    """Carry on a trace stored earlier (e.g. an approval's), linking the current one.

    A reviewer's decision arrives days later in its own HTTP request; the event it
    produces belongs to the task's trace, so it is parented there and linked back.
    """
    if not traceparent:
        with _tracer.start_as_current_span(name) as span:
            yield span
        return
    here = trace.get_current_span().get_span_context()
    links = [Link(here)] if here.is_valid else []
    parent = propagate.extract({TRACEPARENT: traceparent})
    with _tracer.start_as_current_span(name, context=parent, links=links) as span:
        yield span


@contextlib.contextmanager
def serving(method: str, path: str, headers: Mapping[str, str]) -> Iterator[Span]:
    parent = propagate.extract(dict(headers))
    with _tracer.start_as_current_span(
        f"{method} {path}",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": path},
    ) as span:
        yield span


class StoreSpans(monitoring.CommandListener):
    """A span per store command (`<command> <collection>`), in the caller's trace.

    Installed on the services' MongoDB clients only while tracing records (see
    `hitl_shared.mongo.make_client`), so a trace shows where a hop spent its time:
    which round trips, how long each. Made when the reply arrives, backdated by the
    driver's measured duration (PyMongo calls the listener in the caller's task, so
    the current span is the parent).
    """

    def __init__(self) -> None:
        # Request id -> the collection named by the command (replies do not say).
        self.targets: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        if isinstance(target, str) and len(self.targets) < 10_000:
            self.targets[event.request_id] = target

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._span(event, error=None)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._span(event, error=str(event.failure.get("errmsg", "failed"))[:200])

    def _span(
        self,
        event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent,
        *,
        error: str | None,
    ) -> None:
        end = time.time_ns()
        target = self.targets.pop(event.request_id, "")
        attributes: dict[str, Any] = {
            "db.system": "mongodb",
            "db.operation.name": event.command_name,
            "db.namespace": event.database_name,
            "db.collection.name": target,
        }
        if error is not None:
            attributes["error.type"] = error
        span = _tracer.start_span(
            f"{event.command_name} {target}".rstrip(),
            kind=SpanKind.CLIENT,
            start_time=end - event.duration_micros * 1000,
            attributes=attributes,
        )
        span.end(end_time=end)
