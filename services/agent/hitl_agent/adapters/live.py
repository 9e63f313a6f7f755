"""Every run's lifecycle as it happens: `agent.runs`, fanned out to live streams.

One aiokafka consumer per replica, with no consumer group (aiokafka then assigns it
every partition; it starts at their end): each replica sees every event, commits nothing
and takes nothing from the workers' groups. It starts with the first live stream.
Events carry no agent or submitter, so each run's are read once from the `runs`
projection (by `_id`) and remembered.
"""

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from hitl_contracts import RunEvent, RunEventType
from hitl_shared.kafka_security import client_kwargs
from hitl_shared.mongo import Document
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from hitl_agent.adapters.runs import RUNS
from hitl_agent.domain.run import RunStatus
from hitl_agent.settings import AgentSettings

log = logging.getLogger(__name__)

# A stream that falls this far behind loses its oldest events (the browser reloads).
QUEUE_SIZE = 1_000
RUNS_KNOWN = 10_000

# The run's status once an event of this type happened (None: unchanged).
STATUS_AFTER: dict[RunEventType, RunStatus | None] = {
    RunEventType.STARTED: RunStatus.RUNNING,
    RunEventType.MODEL_REPLIED: RunStatus.RUNNING,
    RunEventType.TOOL_EXECUTED: RunStatus.RUNNING,
    RunEventType.RESUMED: RunStatus.RUNNING,
    RunEventType.AWAITING_APPROVAL: RunStatus.AWAITING_APPROVAL,
    RunEventType.COMPLETED: RunStatus.COMPLETED,
    RunEventType.FAILED: RunStatus.FAILED,
    RunEventType.CANCELLED: RunStatus.CANCELLED,
    RunEventType.HALTED: RunStatus.HALTED,
    RunEventType.INTERRUPTED: RunStatus.AWAITING_APPROVAL,
    RunEventType.DECISION_APPLIED: None,
    RunEventType.DECISION_REFUSED: None,
}


@dataclass
class RunInfo:
    agent: str
    submitted_by: str
    status: RunStatus


@dataclass(frozen=True)
class LiveEvent:
    event: RunEvent
    agent: str
    submitted_by: str
    status: RunStatus

    def payload(self) -> dict[str, Any]:
        return {
            "run_id": self.event.run_id,
            "agent": self.agent,
            "submitted_by": self.submitted_by,
            "type": self.event.type.value,
            "status": self.status.value,
            "seq": self.event.seq,
            "event_id": str(self.event.event_id),
            "occurred_at": self.event.occurred_at.isoformat(),
            "detail": self.event.detail,
        }


class RunFeed:
    def __init__(self, settings: AgentSettings, db: AsyncDatabase[Document]) -> None:
        self.settings = settings
        self.runs = db[RUNS]
        self.queues: set[asyncio.Queue[LiveEvent]] = set()
        self.known: OrderedDict[str, RunInfo] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def subscribe(self) -> asyncio.Queue[LiveEvent]:
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue(QUEUE_SIZE)
        self.queues.add(queue)
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.create_task(self._consume())
        # Events from now on reach this stream once the consumer has its positions.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 15)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[LiveEvent]) -> None:
        self.queues.discard(queue)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _consume(self) -> None:
        topic = self.settings.topics.agent_runs
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                enable_auto_commit=False,
                auto_offset_reset="latest",
                client_id="hitl-agent-live",
                **client_kwargs(self.settings),
            )
            try:
                await consumer.start()
                # No group: aiokafka assigns this consumer every partition of the topic.
                consumer.subscribe([topic])
                for _ in range(600):  # the assignment follows the first metadata fetch
                    if consumer.assignment():
                        break
                    await asyncio.sleep(0.05)
                for tp in consumer.assignment():
                    await consumer.position(tp)
                self._ready.set()
                while True:
                    batches = await consumer.getmany(timeout_ms=500, max_records=500)
                    for records in batches.values():
                        for record in records:
                            await self._fan_out(record.value)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("live run feed: consumer failed; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _fan_out(self, body: bytes | None) -> None:
        if body is None:
            return
        try:
            event = RunEvent.model_validate_json(body)
        except ValidationError:
            return  # the workers' consumers dead-letter what does not parse
        info = await self._info(event.run_id)
        status = STATUS_AFTER.get(event.type) or info.status
        info.status = status
        live = LiveEvent(event, info.agent, info.submitted_by, status)
        for queue in list(self.queues):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(live)

    async def _info(self, run_id: str) -> RunInfo:
        info = self.known.get(run_id)
        if info is None:
            row = await self.runs.find_one(
                {"_id": run_id}, {"agent": 1, "status": 1, "state.submitted_by": 1}
            )
            info = RunInfo(
                agent=str((row or {}).get("agent", "")),
                submitted_by=str(((row or {}).get("state") or {}).get("submitted_by", "")),
                status=RunStatus((row or {}).get("status", RunStatus.RUNNING.value)),
            )
            if row is None:
                return info  # not projected yet (never seen in practice): ask again next time
            self.known[run_id] = info
            while len(self.known) > RUNS_KNOWN:
                self.known.popitem(last=False)
        else:
            self.known.move_to_end(run_id)
        return info
