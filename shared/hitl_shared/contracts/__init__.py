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

__all__ = [
    "ApprovalDecided",
    "ApprovalRequested",
    "Channel",
    "DeadLetter",
    "Decision",
    "Event",
    "OnTimeout",
    "RequestContext",
    "RiskLevel",
    "RunEvent",
    "RunEventType",
    "TaskSubmitted",
    "UnsupportedSchemaVersion",
]
