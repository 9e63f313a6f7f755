"""Event contracts of DESIGN.md: frozen pydantic models, JSON on the wire."""

from hitl_shared.contracts.agent import RunEvent, RunEventType, TaskSubmitted
from hitl_shared.contracts.approval import (
    ApprovalDecided,
    ApprovalRequested,
    Channel,
    Decision,
    OnTimeout,
    RequestContext,
    RiskLevel,
)
from hitl_shared.contracts.base import Event, UnsupportedSchemaVersion
from hitl_shared.contracts.dlq import DeadLetter
from hitl_shared.contracts.notification import (
    NotificationDeadLetter,
    NotificationKind,
    NotificationRecorded,
    NotificationStatus,
)

__all__ = [
    "ApprovalDecided",
    "ApprovalRequested",
    "Channel",
    "DeadLetter",
    "Decision",
    "Event",
    "NotificationDeadLetter",
    "NotificationKind",
    "NotificationRecorded",
    "NotificationStatus",
    "OnTimeout",
    "RequestContext",
    "RiskLevel",
    "RunEvent",
    "RunEventType",
    "TaskSubmitted",
    "UnsupportedSchemaVersion",
]
