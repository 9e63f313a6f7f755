"""hitl client: ask a human to approve a tool call from any agent runtime, await the outcome.

    from hitl_client import Client, Approved, Modified, Rejected

    with Client("http://127.0.0.1:8081", token="...") as hitl:
        approval = hitl.request(tool="transfer", arguments={"amount": 500}, reason="over 100")
        match approval.wait(timeout=3600):
            case Approved(arguments=args) | Modified(arguments=args):
                ...

`AsyncClient` is the same with `await`. Decisions are verified against the service's
published keys (`GET /v1/keys`) whenever it publishes them.
"""

from hitl_client._common import Retry
from hitl_client.async_client import AsyncApproval, AsyncClient
from hitl_client.client import Approval, Client
from hitl_client.errors import (
    ApiError,
    BadDecisionSignature,
    Conflict,
    Forbidden,
    HitlError,
    Invalid,
    NotFound,
    PreconditionFailed,
    TooLarge,
    Unauthorized,
    Unavailable,
    WaitTimeout,
)
from hitl_client.models import ApprovalPage, ApprovalState
from hitl_client.outcomes import (
    Approved,
    Cancelled,
    Expired,
    Modified,
    Outcome,
    Rejected,
    outcome_of,
)

__all__ = [
    "ApiError",
    "Approval",
    "ApprovalPage",
    "ApprovalState",
    "Approved",
    "AsyncApproval",
    "AsyncClient",
    "BadDecisionSignature",
    "Cancelled",
    "Client",
    "Conflict",
    "Expired",
    "Forbidden",
    "HitlError",
    "Invalid",
    "Modified",
    "NotFound",
    "Outcome",
    "PreconditionFailed",
    "Rejected",
    "Retry",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "WaitTimeout",
    "outcome_of",
]
