"""In-memory fakes of the services' ports (each service's `service_layer/ports.py`).

Plain classes that satisfy the `typing.Protocol`s structurally (mypy checks them
where they are passed in), never subclasses of the MongoDB adapters.

Approval service: they keep the one property the service relies on: an append is
atomic on (approval, seq), so of two writers that read the same version exactly one
appends. `get` yields to the event loop, so concurrent use cases interleave as they
would against a real store, and `before_append` lets a test slip a rival write in
between. Agent runtime and notifier: the same, for a checkpoint's seq and for the
claim of a tool execution or a delivery (unique-key inserts in MongoDB / FerretDB).
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from hitl_agent.adapters.run_rows import RunRow
from hitl_agent.domain.checkpoint import Checkpoint, EventPage, checkpoint_id
from hitl_agent.domain.oversight import AuditEntry, Halt, Interrupt, InterruptState
from hitl_agent.domain.run import Run, RunStatus
from hitl_approval.adapters.metrics import ApprovalMetrics
from hitl_approval.domain.history import Note
from hitl_approval.domain.model import Approval, Entry, Status
from hitl_approval.service_layer.outbox import Outbox, OutboxEvent
from hitl_approval.service_layer.ports import OutboxItem, StoredResponse
from hitl_approval.service_layer.services import ApprovalService
from hitl_contracts import NotificationDeadLetter, NotificationRecorded, RunEvent
from hitl_notifier.domain.deliveries import ApprovalState


class FakeApprovalStore:
    def __init__(self, instance: str = "test") -> None:
        self.instance = instance
        self.streams: dict[str, list[Entry]] = {}
        self.rows: dict[str, Approval] = {}
        self.unpublished_entries: dict[tuple[str, int], str] = {}  # -> owner
        self.set_aside_reasons: dict[str, str] = {}
        # Runs once, right before the next append (a rival writer's turn).
        self.before_append: Callable[[], Awaitable[None]] | None = None
        # What this "process" last stored or read of each stream (a rival's appends,
        # made straight into `streams`, are not in it).
        self.seen: dict[str, list[Entry]] = {}

    async def add(self, approval: Approval) -> bool:
        created = approval.correlation_id not in self.streams
        if created:
            self.streams[approval.correlation_id] = [approval.entries[0]]
            self.seen[approval.correlation_id] = [approval.entries[0]]
        await self.project(approval)
        return created

    async def add_many(self, approvals: list[Approval]) -> list[bool]:
        return [await self.add(approval) for approval in approvals]

    async def get(self, correlation_id: str) -> Approval | None:
        await asyncio.sleep(0)
        entries = self.streams.get(correlation_id)
        if entries:
            self.seen[correlation_id] = list(entries)
        return Approval.from_entries(list(entries)) if entries else None

    def recent(self, correlation_id: str) -> Approval | None:
        entries = self.seen.get(correlation_id)
        return Approval.from_entries(list(entries)) if entries else None

    async def append(self, approval: Approval, entry: Entry) -> bool:
        if self.before_append is not None:
            rival, self.before_append = self.before_append, None
            await rival()
        stream = self.streams[approval.correlation_id]
        if len(stream) != entry.seq:
            return False
        stream.append(entry)
        self.seen[approval.correlation_id] = list(stream)
        if entry.publish:
            self.unpublished_entries[(approval.correlation_id, entry.seq)] = self.instance
        return True

    async def project(self, approval: Approval) -> None:
        self.rows[approval.correlation_id] = approval

    async def due(self, now: datetime, *, limit: int = 200) -> list[str]:
        found = [
            cid
            for cid, row in self.rows.items()
            if row.status is Status.PENDING
            and row.expires_at <= now
            and cid not in self.set_aside_reasons
        ]
        return found[:limit]

    async def set_aside(self, correlation_id: str, reason: str) -> None:
        self.set_aside_reasons[correlation_id] = reason

    async def unpublished(self, *, before: datetime, limit: int = 200) -> list[OutboxItem]:
        items = [
            OutboxItem(cid, self.streams[cid][seq], owner)
            for (cid, seq), owner in self.unpublished_entries.items()
            if self.streams[cid][seq].at < before
        ]
        return items[:limit]

    async def is_unpublished(self, correlation_id: str, seq: int) -> bool:
        return (correlation_id, seq) in self.unpublished_entries

    async def entry_at(self, correlation_id: str, seq: int) -> tuple[OutboxItem, bool] | None:
        stream = self.streams.get(correlation_id, [])
        if seq >= len(stream):
            return None
        owner = self.unpublished_entries.get((correlation_id, seq))
        return OutboxItem(correlation_id, stream[seq], owner or ""), owner is None

    async def mark_published(self, correlation_id: str, seq: int) -> None:
        self.unpublished_entries.pop((correlation_id, seq), None)

    async def mark_published_many(self, keys: list[tuple[str, int]]) -> None:
        for correlation_id, seq in keys:
            await self.mark_published(correlation_id, seq)


class FakeNotes:
    def __init__(self) -> None:
        self.notes: dict[str, Note] = {}

    async def record(self, event: NotificationRecorded) -> bool:
        key = str(event.event_id)
        if key in self.notes:
            return False
        self.notes[key] = Note(
            correlation_id=event.correlation_id,
            at=event.occurred_at,
            channel=event.channel,
            recipient=event.recipient,
            kind=event.kind.value,
            status=event.status.value,
            attempts=event.attempts,
            error=event.error,
            message_ref=event.message_ref,
        )
        return True

    async def of(self, correlation_id: str) -> list[Note]:
        found = [note for note in self.notes.values() if note.correlation_id == correlation_id]
        return sorted(found, key=lambda note: note.at)


class FakeInstances:
    def __init__(self) -> None:
        self.beats: dict[str, datetime] = {}

    async def beat(self, instance: str, now: datetime) -> None:
        self.beats[instance] = now

    async def alive(self, now: datetime, *, within: timedelta) -> set[str]:
        return {name for name, at in self.beats.items() if at >= now - within}

    async def dead(self, now: datetime, *, within: timedelta) -> set[str]:
        return {name for name, at in self.beats.items() if at < now - within}

    async def forget(self, instances: set[str]) -> None:
        for name in instances:
            self.beats.pop(name, None)


class FakeIdempotencyKeys:
    def __init__(self) -> None:
        self.kept: dict[tuple[str, str], StoredResponse] = {}

    async def get(self, reviewer: str, key: str) -> StoredResponse | None:
        return self.kept.get((reviewer, key))

    async def remember(
        self, reviewer: str, key: str, response: StoredResponse, *, now: datetime
    ) -> StoredResponse:
        kept = self.kept.get((reviewer, key))
        if kept is None or (response.status_code == 200 and kept.status_code != 200):
            self.kept[(reviewer, key)] = response
            return response
        return kept


class RecordingPublisher:
    """The broker's side of the outbox: what was published, in order."""

    def __init__(self) -> None:
        self.events: list[OutboxEvent] = []

    async def __call__(self, event: OutboxEvent) -> None:
        self.events.append(event)


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


def approval_service(
    clock: Clock, **options: Any
) -> tuple[ApprovalService, FakeApprovalStore, RecordingPublisher]:
    """An `ApprovalService` wired as `bootstrap.build_service` wires it, on the fakes."""
    store, published, metrics = FakeApprovalStore(), RecordingPublisher(), ApprovalMetrics()
    outbox = Outbox(
        store,
        published,
        instances=FakeInstances(),
        metrics=metrics,
        clock=clock,
        grace=timedelta(seconds=2),
        replica_timeout=timedelta(seconds=5),
    )
    service = ApprovalService(
        store, outbox=outbox, notes=FakeNotes(), metrics=metrics, clock=clock, **options
    )
    return service, store, published


# The agent runtime's ports (hitl_agent/service_layer/ports.py).


class MemoryStore:
    """The agent's `RunStore`: appending a checkpoint whose seq exists fails, exactly
    like the unique-key insert in MongoDB / FerretDB, and so does a second claim of
    one tool execution."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.markers: dict[str, dict[str, Any]] = {}
        self.in_progress: dict[str, datetime] = {}
        self.execs: dict[str, dict[str, Any]] = {}
        self.projected: dict[str, Run] = {}

    async def ensure_indexes(self) -> None:
        return None

    async def append(self, checkpoint: Checkpoint) -> bool:
        await asyncio.sleep(0)  # let racing workers interleave, as real I/O would
        if checkpoint.has_outbox:
            self.markers.setdefault(checkpoint.id, {"_id": checkpoint.id, "at": checkpoint.at})
        if checkpoint.id in self.docs:
            return False
        self.docs[checkpoint.id] = checkpoint.to_document()
        return True

    async def project(self, run: Run) -> None:
        self.projected[run.run_id] = run.model_copy(deep=True)

    def _docs(self, run_id: str) -> list[dict[str, Any]]:
        return sorted(
            (d for d in self.docs.values() if d["run_id"] == run_id), key=lambda d: d["seq"]
        )

    async def latest(self, run_id: str, known: Run | None = None) -> Run | None:
        await asyncio.sleep(0)
        docs = self._docs(run_id)
        return Run.model_validate(docs[-1]["state"]) if docs else None

    async def event_page(self, run_id: str, seq: int) -> EventPage | None:
        doc = self.docs.get(checkpoint_id(run_id, seq))
        if doc is None:
            return None
        return EventPage(
            [RunEvent.model_validate(e) for e in doc["events"]],
            RunStatus(doc["state"]["status"]),
        )

    async def checkpoint(self, checkpoint_id_: str) -> Checkpoint | None:
        doc = self.docs.get(checkpoint_id_)
        return None if doc is None else Checkpoint.from_document(doc)

    async def undelivered(self, before: datetime, limit: int = 100) -> list[dict[str, Any]]:
        return [m for m in self.markers.values() if m["at"] < before]

    async def mark_sent(self, checkpoint: Checkpoint) -> None:
        self.markers[checkpoint.id]["sent"] = True

    async def delivered(self, checkpoint_id_: str) -> None:
        self.markers.pop(checkpoint_id_, None)

    async def delivered_many(self, checkpoint_ids: list[str]) -> None:
        for checkpoint_id_ in checkpoint_ids:
            self.markers.pop(checkpoint_id_, None)

    async def set_active(self, run_id: str, since: datetime | None) -> None:
        if since is None:
            self.in_progress.pop(run_id, None)
        else:
            self.in_progress[run_id] = since

    async def active_since(self, before: datetime, limit: int = 100) -> list[str]:
        return [r for r, since in self.in_progress.items() if since < before]

    async def claim_execution(self, key: str, *, tool: str, owner: str) -> bool:
        if key in self.execs:
            return False
        self.execs[key] = {
            "_id": key,
            "tool": tool,
            "owner": owner,
            "state": "running",
            "at": datetime.now(UTC),
        }
        return True

    async def record_execution(
        self, key: str, *, tool: str, owner: str, result: str, ok: bool
    ) -> None:
        self.execs.setdefault(
            key,
            {"_id": key, "tool": tool, "owner": owner, "state": "done", "result": result, "ok": ok},
        )

    async def finish_execution(self, key: str, *, result: str, ok: bool) -> None:
        self.execs[key].update(state="done", result=result, ok=ok)

    async def execution(self, key: str) -> dict[str, Any] | None:
        return self.execs.get(key)

    def events(self, run_id: str) -> list[RunEvent]:
        return [RunEvent.model_validate(e) for d in self._docs(run_id) for e in d["events"]]


class FakeApprovals:
    """The agent's `ApprovalClient`: records what it was asked to cancel."""

    def __init__(self) -> None:
        self.cancelled: list[tuple[str, str]] = []

    async def cancel(self, correlation_id: str, comment: str) -> str:
        self.cancelled.append((correlation_id, comment))
        return "cancelled"


class MemoryOversightStore:
    """The agent's `OversightStore`: one interrupt flag in force per run, one halt per agent."""

    def __init__(self) -> None:
        self.flags: dict[str, Interrupt] = {}
        self.halted: dict[str, Halt] = {}
        self.parked: dict[str, str] = {}
        self.entries: list[AuditEntry] = []

    async def interrupt(self, run_id: str) -> Interrupt | None:
        return self.flags.get(run_id)

    async def request_interrupt(self, flag: Interrupt) -> tuple[Interrupt, bool]:
        current = self.flags.get(flag.run_id)
        if current is not None and current.state is InterruptState.REQUESTED:
            return current, False
        self.flags[flag.run_id] = flag
        return flag, True

    async def settle_interrupt(
        self, run_id: str, interrupt_id: str, state: InterruptState, **fields: Any
    ) -> None:
        current = self.flags.get(run_id)
        if current is not None and current.id == interrupt_id:
            self.flags[run_id] = current.model_copy(update={"state": state, **fields})

    async def halt(self, agent: str) -> Halt | None:
        return self.halted.get(agent)

    async def set_halt(self, halt: Halt) -> tuple[Halt, bool]:
        if halt.agent in self.halted:
            return self.halted[halt.agent], False
        self.halted[halt.agent] = halt
        return halt, True

    async def lift_halt(self, agent: str) -> bool:
        return self.halted.pop(agent, None) is not None

    async def all_halts(self) -> list[Halt]:
        return list(self.halted.values())

    async def index_halted(self, run_id: str, agent: str) -> None:
        self.parked[run_id] = agent

    async def halted_of(self, agent: str, limit: int = 10_000) -> list[str]:
        return [r for r, a in self.parked.items() if a == agent]

    async def unindex_halted(self, run_id: str) -> None:
        self.parked.pop(run_id, None)

    async def audit(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    async def audit_of(self, agent: str, limit: int = 50) -> list[AuditEntry]:
        mine = [e for e in self.entries if e.agent == agent]
        return sorted(mine, key=lambda e: e.at, reverse=True)[:limit]


class FakeRunRows:
    """The `runs` projection as lists read it, from a `MemoryStore`'s latest checkpoints."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    async def recent(
        self, *, agent: str | None = None, since: datetime | None = None, limit: int = 200
    ) -> list[RunRow]:
        runs = [
            run
            for run_id in {doc["run_id"] for doc in self.store.docs.values()}
            if (run := await self.store.latest(run_id)) is not None
        ]
        rows = [
            RunRow(
                {
                    "_id": run.run_id,
                    "agent": run.agent,
                    "status": run.status.value,
                    "created_at": run.created_at,
                    "updated_at": run.updated_at,
                    "state": run.model_dump(mode="python"),
                }
            )
            for run in runs
            if (not agent or run.agent == agent) and (since is None or run.updated_at >= since)
        ]
        return sorted(rows, key=lambda row: row.updated_at, reverse=True)[:limit]


# The notifier's ports (hitl_notifier/service_layer/ports.py).


class FakeDeliveryStore:
    """The notifier's `DeliveryStore`: knows one approval, records each attempt and end."""

    def __init__(self, state: ApprovalState) -> None:
        self.known = state
        self.finished: list[dict[str, Any]] = []
        self.attempts: list[int] = []
        self.leases: list[datetime] = []

    async def state(self, correlation_id: str) -> ApprovalState | None:
        return self.known

    async def attempted(
        self, key: str, *, attempts: int, error: str, now: datetime, lease_until: datetime
    ) -> None:
        self.attempts.append(attempts)
        self.leases.append(lease_until)

    async def finish(
        self,
        key: str,
        *,
        status: str,
        attempts: int,
        error: str = "",
        message_ref: str = "",
        now: datetime,
    ) -> None:
        self.finished.append(
            {
                "status": status,
                "attempts": attempts,
                "error": error,
                "message_ref": message_ref,
                "now": now,
            }
        )


class CollectingOutcomes:
    """The notifier's `Outcomes`: what would have gone to Kafka, in order."""

    def __init__(self) -> None:
        self.recorded_events: list[NotificationRecorded] = []
        self.dead: list[NotificationDeadLetter] = []

    async def recorded(self, event: NotificationRecorded) -> None:
        self.recorded_events.append(event)

    async def dead_letter(self, event: NotificationDeadLetter) -> None:
        self.dead.append(event)


# The banking demo's ledger, as far as its daily totals read it.


class RecentLedger:
    """`hitl_demo.banking.RecentMoves`: money each account moved in the last day."""

    def __init__(self, moved: dict[tuple[str, str], int]) -> None:
        self.moved = moved

    async def moved_cents(
        self, account: str, direction: Literal["in", "out"], *, within: timedelta
    ) -> int:
        assert within == timedelta(days=1)
        return self.moved.get((account, direction), 0)
