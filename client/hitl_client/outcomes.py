"""The outcome of an approval, as a type per case: match on it.

    match await approval.wait(timeout=3600):
        case Approved(arguments=args) | Modified(arguments=args):
            run_tool(args)
        case Rejected(comment=why):
            tell_user(why)
        case Expired() | Cancelled():
            give_up()

`Modified.arguments` are the reviewer's edited arguments: run those, not yours.
"""

from dataclasses import dataclass, field
from typing import Any

from hitl_contracts import ApprovalDecided, Decision

__all__ = ["Approved", "Cancelled", "Expired", "Modified", "Outcome", "Rejected", "outcome_of"]


@dataclass(frozen=True)
class Outcome:
    """Common to every outcome: who decided, how, and the (verified) decision event."""

    correlation_id: str
    reviewer: str
    comment: str
    decided: ApprovalDecided = field(repr=False)

    @property
    def allows_execution(self) -> bool:
        return self.decided.decision.allows_execution


@dataclass(frozen=True)
class Approved(Outcome):
    """Run the tool with `arguments` (as requested)."""

    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Modified(Outcome):
    """Run the tool with the reviewer's edited `arguments`."""

    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected(Outcome):
    """Do not run it; `comment` says why."""


@dataclass(frozen=True)
class Expired(Outcome):
    """Nobody decided in time; the request's `on_timeout` applies (default: do not run it)."""


@dataclass(frozen=True)
class Cancelled(Outcome):
    """The approval was withdrawn (its run was cancelled)."""


def outcome_of(decided: ApprovalDecided) -> Outcome:
    common: dict[str, Any] = {
        "correlation_id": decided.correlation_id,
        "reviewer": decided.reviewer,
        "comment": decided.comment,
        "decided": decided,
    }
    arguments = dict(decided.arguments or {})
    match decided.decision:
        case Decision.APPROVED:
            return Approved(**common, arguments=arguments)
        case Decision.MODIFIED:
            return Modified(**common, arguments=arguments)
        case Decision.REJECTED:
            return Rejected(**common)
        case Decision.EXPIRED:
            return Expired(**common)
        case Decision.CANCELLED:
            return Cancelled(**common)
    raise ValueError(f"unknown decision {decided.decision!r}")  # pragma: no cover
