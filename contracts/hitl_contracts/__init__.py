"""Event contracts of DESIGN.md: frozen pydantic models, JSON on the wire."""

from hitl_contracts.agent import RunEvent, RunEventType, TaskSubmitted
from hitl_contracts.approval import (
    ApprovalDecided,
    ApprovalRequested,
    Channel,
    Decision,
    OnTimeout,
    RequestContext,
    RiskLevel,
)
from hitl_contracts.base import Event, UnsupportedSchemaVersion
from hitl_contracts.dlq import DeadLetter
from hitl_contracts.notification import (
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
