"""Deliveries: one notification of one kind to one recipient on one channel.

Its key is the de-duplication unit: a redelivered event maps to the same key, and
the store inserts a key once, so a recipient never hears the same thing twice.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from hitl_contracts import ApprovalDecided, ApprovalRequested, NotificationKind

ChannelName = Literal["slack", "email", "webhook"]
CHANNELS: tuple[ChannelName, ...] = ("slack", "email", "webhook")


@dataclass(frozen=True)
class Target:
    channel: ChannelName
    recipient: str


@dataclass(frozen=True)
class Delivery:
    correlation_id: str
    run_id: str
    kind: NotificationKind
    target: Target
    # For an update of an earlier message (a Slack message's `channel|ts`).
    updates: str = ""

    @property
    def key(self) -> str:
        parts = [self.correlation_id, self.kind.value, self.target.channel, self.target.recipient]
        if self.updates:
            parts.append(self.updates)
        return "|".join(parts)


@dataclass(frozen=True)
class DeliveryRecord:
    """A claimed delivery as stored: how far it got, and whose lease it is under."""

    delivery: Delivery
    status: str
    attempts: int
    message_ref: str
    lease_until: datetime


@dataclass(frozen=True)
class ApprovalState:
    """What the notifier knows of one approval (either half may arrive first)."""

    correlation_id: str
    request: ApprovalRequested | None
    decision: ApprovalDecided | None
    escalated: bool = False
    # Whether a question (request, reminder, escalation) may have been claimed for it:
    # False only when known that none was, so a decision has no messages to look for.
    asked: bool = True
