"""Reading an agent's `shadow_decision` run event as a shadow call (hostile input)."""

import logging
from typing import Any

from hitl_contracts import RunEvent, RunEventType

from hitl_approval.domain.whatif import ShadowCall

log = logging.getLogger(__name__)

VERDICTS = {"ask": True, "run": False}
MAX_TEXT = 200


def _text(detail: dict[str, Any], key: str) -> str | None:
    value = detail.get(key)
    if isinstance(value, str) and 0 < len(value) <= MAX_TEXT:
        return value
    return None


def shadow_call(event: RunEvent) -> ShadowCall | None:
    """The shadow call an event records; None for other events and malformed records."""
    if event.type is not RunEventType.SHADOW_DECISION:
        return None
    detail = event.detail
    candidate, agent = _text(detail, "candidate"), _text(detail, "agent")
    tool, call_id = _text(detail, "tool"), _text(detail, "tool_call_id")
    arguments = detail.get("arguments")
    live, shadow = detail.get("live"), detail.get("shadow")
    if (
        candidate is None
        or agent is None
        or tool is None
        or call_id is None
        or not isinstance(arguments, dict)
        or live not in VERDICTS
        or shadow not in VERDICTS
        or "|" in candidate
    ):
        log.warning("shadow record of run %s left out: malformed", event.run_id)
        return None
    return ShadowCall(
        candidate=candidate,
        agent=agent,
        tool=tool,
        run_id=event.run_id,
        tool_call_id=call_id,
        arguments=arguments,
        live_asked=VERDICTS[live],
        shadow_asks=VERDICTS[shadow],
        at=event.occurred_at,
    )
