"""Notification contracts: what the notifier did about an approval, for its history."""

from enum import StrEnum
from typing import Any

from pydantic import Field

from hitl_contracts.base import Event


class NotificationKind(StrEnum):
    REQUESTED = "requested"
    REMINDER = "reminder"
    ESCALATION = "escalation"
    DECIDED = "decided"


class NotificationStatus(StrEnum):
    SENT = "sent"
    FAILED = "failed"


class NotificationRecorded(Event):
    """One delivery outcome on one channel; published on `notifications`, key = run_id."""

    correlation_id: str
    run_id: str
    channel: str = Field(examples=["slack", "email", "webhook"])
    recipient: str = Field(description="Channel id, email address or URL.")
    kind: NotificationKind
    status: NotificationStatus
    attempts: int = Field(ge=1)
    error: str = ""
    message_ref: str = Field(default="", description="e.g. the Slack message ts, for updates.")


class NotificationDeadLetter(Event):
    """A delivery that failed its last attempt; published on `notifications.dlq`, key = run_id."""

    correlation_id: str
    run_id: str
    channel: str = Field(examples=["slack", "email", "webhook"])
    recipient: str
    kind: NotificationKind
    attempts: int = Field(ge=1)
    error: str = Field(description="Why the last attempt failed.")
    payload: dict[str, Any] = Field(
        default_factory=dict, description="What the notifier tried to deliver, for a replay."
    )
