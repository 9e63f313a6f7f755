"""An approval's audit trail: its stream and the notifier's notes, in time order."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hitl_approval.domain.model import Approval, EntryType


@dataclass(frozen=True)
class Note:
    """One notification outcome the notifier reported for an approval."""

    correlation_id: str
    at: datetime
    channel: str
    recipient: str
    kind: str  # requested, reminder, escalation, decided
    status: str  # sent, failed
    attempts: int
    error: str = ""
    message_ref: str = ""


@dataclass(frozen=True)
class HistoryEvent:
    seq: int | None  # the stream position; None for notes, which are not in the stream
    type: str
    at: datetime
    actor: str
    channel: str
    detail: dict[str, Any]


def _note_type(note: Note) -> str:
    if note.status == "failed":
        return "failed"
    return "reminded" if note.kind == "reminder" else "notified"


def history(approval: Approval, notes: list[Note]) -> list[HistoryEvent]:
    """Requested, votes, escalation, the decision, and every notification, oldest first."""
    events = [
        HistoryEvent(
            seq=entry.seq,
            type=str(entry.data["decision"]) if entry.type is EntryType.DECIDED else entry.type,
            at=entry.at,
            actor=entry.actor,
            channel=entry.channel.value,
            detail=entry.data,
        )
        for entry in approval.entries
    ]
    events += [
        HistoryEvent(
            seq=None,
            type=_note_type(note),
            at=note.at,
            actor="notifier",
            channel=note.channel,
            detail={
                "kind": note.kind,
                "status": note.status,
                "recipient": note.recipient,
                "attempts": note.attempts,
                "error": note.error,
                "message_ref": note.message_ref,
            },
        )
        for note in notes
    ]
    # Stable: at equal times the stream's own order stands, and the stream comes first.
    return sorted(events, key=lambda e: (e.at, e.seq is None, e.seq or 0))
