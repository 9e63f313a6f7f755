"""The email for an approval (pure): plain text and HTML, with approve/reject links.

The links open a confirmation page on the approval service; nothing is decided
until the reviewer submits that page, because mail scanners follow links with GET.
"""

import json
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from html import escape

from hitl_notifier.domain.notice import Notice


@dataclass(frozen=True)
class ActionLinks:
    approve: str
    reject: str


def compose(
    notice: Notice, *, sender: str, recipient: str, links: ActionLinks | None
) -> EmailMessage:
    req = notice.request
    msg = EmailMessage()
    msg["Subject"] = f"[hitl] {notice.title}"
    msg["From"] = sender
    msg["To"] = recipient
    msg["Date"] = format_datetime(notice.now)
    msg["Message-ID"] = make_msgid(domain="hitl.local")
    # Lets a reader (or a test) tie the mail to its approval without parsing the body.
    msg["X-Hitl-Correlation-Id"] = req.correlation_id
    msg["X-Hitl-Kind"] = notice.kind.value
    msg.set_content(_text(notice, links))
    msg.add_alternative(_html(notice, links), subtype="html")
    return msg


def _facts(notice: Notice) -> list[tuple[str, str]]:
    req = notice.request
    facts = [
        ("Agent", req.agent),
        ("Tool", req.tool),
        ("Risk", req.risk_level.value),
        ("Reason", req.reason),
        ("Request", req.context.user_request),
    ]
    if notice.decision is None:
        facts.append(
            ("Time left", f"{notice.time_left} (until {req.expires_at:%Y-%m-%d %H:%M UTC})")
        )
    else:
        facts.append(("Outcome", notice.outcome_line))
    return facts


def _arguments(notice: Notice) -> str:
    return json.dumps(notice.request.arguments, indent=2, ensure_ascii=False, default=str)


def _text(notice: Notice, links: ActionLinks | None) -> str:
    lines = [notice.title, ""]
    lines += [f"{label}: {value}" for label, value in _facts(notice)]
    lines += ["", "Arguments:", _arguments(notice), ""]
    if links is not None:
        lines += [
            "Approve (opens a confirmation page):",
            links.approve,
            "",
            "Reject (opens a confirmation page):",
            links.reject,
            "",
        ]
    lines += [f"Details: {notice.approval_url}", f"Correlation id: {notice.request.correlation_id}"]
    return "\n".join(lines) + "\n"


def _html(notice: Notice, links: ActionLinks | None) -> str:
    rows = "".join(
        f"<tr><th align='left' style='padding:4px 12px 4px 0'>{escape(label)}</th>"
        f"<td style='padding:4px 0'>{escape(value)}</td></tr>"
        for label, value in _facts(notice)
    )
    buttons = ""
    if links is not None:
        buttons = (
            "<p>"
            f"<a href='{escape(links.approve)}' style='background:#1a7f37;color:#fff;"
            "padding:8px 16px;text-decoration:none;border-radius:4px'>Approve…</a> "
            f"<a href='{escape(links.reject)}' style='background:#cf222e;color:#fff;"
            "padding:8px 16px;text-decoration:none;border-radius:4px'>Reject…</a>"
            "</p><p style='color:#666'>Each button opens a confirmation page; "
            "nothing is decided until you confirm there. Each link works once.</p>"
        )
    return (
        "<!doctype html><html><body style='font-family:sans-serif'>"
        f"<h2>{escape(notice.title)}</h2><table>{rows}</table>"
        f"<h3>Arguments</h3><pre>{escape(_arguments(notice))}</pre>{buttons}"
        f"<p><a href='{escape(notice.approval_url)}'>Details</a> · "
        f"correlation id <code>{escape(notice.request.correlation_id)}</code></p>"
        "</body></html>"
    )
