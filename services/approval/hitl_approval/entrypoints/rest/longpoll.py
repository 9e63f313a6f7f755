"""The long-poll of `GET /v1/approvals/{id}?wait=30`: hold the answer until it changes.

It waits on the replica's shared `Watch` of the approval (service_layer/watching.py),
so many waiters cost the store what one does. Safe to repeat: `after_version` names
the version the caller already has.
"""

from fastapi import Request

from hitl_approval.domain.errors import NotFound
from hitl_approval.domain.model import Approval
from hitl_approval.service_layer.watching import Watchers
from hitl_approval.settings import ApprovalSettings

# `wait=30` or `wait=30s`, as Step Functions and HTTP folk both write it.
WAIT_PATTERN = r"^\d{1,6}(\.\d{1,3})?s?$"


def seconds_of(wait: str) -> float:
    return float(wait.removesuffix("s"))


async def current(request: Request, correlation_id: str) -> Approval:
    """Where a waiter starts, without a read per waiter (Watchers.current)."""
    watchers: Watchers = request.app.state.watchers
    approval = await watchers.current(correlation_id)
    if approval is None:
        raise NotFound(f"no approval with correlation id {correlation_id!r}")
    return approval


async def until_changed(
    request: Request, approval: Approval, *, wait: float, after_version: int | None
) -> Approval:
    """`approval` once it is terminal or past `after_version` (default: its version now),
    or as it stands when `wait` (capped) runs out."""
    settings: ApprovalSettings = request.app.state.settings
    watchers: Watchers = request.app.state.watchers
    known = approval.version if after_version is None else after_version
    if approval.status.terminal or approval.version > known:
        return approval
    seconds = min(wait, settings.approval_wait_max_seconds)
    async with watchers.watching(approval) as watch:
        return await watch.beyond(known, seconds)
