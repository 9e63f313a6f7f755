"""Block Kit messages for an approval (pure): the request with buttons, or its outcome.

The approval service's Slack interactions endpoint reads the buttons' `action_id`
(`hitl_approve` / `hitl_reject`) and `value` (the correlation id).
"""

import json
from typing import Any

from hitl_notifier.domain.notice import Notice

APPROVE_ACTION = "hitl_approve"
REJECT_ACTION = "hitl_reject"
# Slack refuses section texts over 3000 characters.
_MAX_TEXT = 2800


def _clip(text: str, limit: int = _MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack_date(notice: Notice) -> str:
    expires = notice.request.expires_at
    return (
        f"<!date^{int(expires.timestamp())}^{{date_short_pretty}} {{time}}|{expires.isoformat()}>"
    )


def message(notice: Notice) -> dict[str, Any]:
    """`text` (notification fallback) and `blocks` for chat.postMessage / chat.update."""
    req = notice.request
    arguments = json.dumps(req.arguments, indent=2, ensure_ascii=False, default=str)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(notice.title, 150)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Agent*\n{req.agent}"},
                {"type": "mrkdwn", "text": f"*Tool*\n`{req.tool}`"},
                {"type": "mrkdwn", "text": f"*Risk*\n{req.risk_level.value}"},
                {
                    "type": "mrkdwn",
                    "text": f"*Time left*\n{notice.time_left} (until {_slack_date(notice)})",
                },
            ],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*Reason*\n{req.reason}")}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(f"*Arguments*\n```{arguments}```")},
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": _clip(
                        f"Request: {req.context.user_request} · id `{req.correlation_id}`", 2000
                    ),
                }
            ],
        },
    ]
    if notice.decision is None:
        blocks.append(
            {
                "type": "actions",
                "block_id": "hitl_decision",
                "elements": [
                    _button("Approve", APPROVE_ACTION, req.correlation_id, "primary"),
                    _button("Reject", REJECT_ACTION, req.correlation_id, "danger"),
                    {
                        "type": "button",
                        "action_id": "hitl_open",
                        "text": {"type": "plain_text", "text": "Open"},
                        "url": notice.approval_url,
                    },
                ],
            }
        )
    else:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(notice.outcome_line)}}
        )
    return {"text": _clip(notice.title, 300), "blocks": blocks}


def _button(label: str, action_id: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "style": style,
        "value": value,
    }
