"""HTML pages behind the email links (pure): a confirmation form, or a clear verdict."""

import json
from html import escape

from hitl_contracts import ApprovalRequested

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;"
    "color:#1f2328}th{text-align:left;padding:4px 12px 4px 0;vertical-align:top}"
    "pre{background:#f6f8fa;padding:.75rem;overflow:auto}textarea{width:100%;min-height:4rem}"
    "button{font-size:1rem;padding:.5rem 1.25rem;border:0;border-radius:4px;color:#fff;"
    "cursor:pointer}.approve{background:#1a7f37}.reject{background:#cf222e}"
    ".note{color:#57606a}"
)


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<meta name='robots' content='noindex'><title>{escape(title)} · hitl</title>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def summary(request: ApprovalRequested) -> str:
    rows = [
        ("Agent", request.agent),
        ("Tool", request.tool),
        ("Risk", request.risk_level.value),
        ("Reason", request.reason),
        ("Request", request.context.user_request),
        ("Expires", f"{request.expires_at:%Y-%m-%d %H:%M:%S} UTC"),
    ]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    arguments = json.dumps(request.arguments, indent=2, ensure_ascii=False, default=str)
    return f"<table>{table}</table><h2>Arguments</h2><pre>{escape(arguments)}</pre>"


def confirm(request: ApprovalRequested, *, action: str, token: str, reviewer: str) -> str:
    verb = "Approve" if action == "approve" else "Reject"
    form = (
        "<form method='post' action='/v1/integrations/email/action'>"
        f"<input type='hidden' name='token' value='{escape(token)}'>"
        "<p><label for='comment'>Comment (optional)</label><br>"
        "<textarea id='comment' name='comment' maxlength='4000'></textarea></p>"
        f"<p><button type='submit' class='{escape(action)}'>{verb} as {escape(reviewer)}</button></p>"
        "</form><p class='note'>Nothing has been decided yet. This link works once.</p>"
    )
    return page(f"{verb} this action?", summary(request) + form)


def verdict(title: str, message: str, request: ApprovalRequested | None = None) -> str:
    details = summary(request) if request is not None else ""
    return page(title, f"<p>{escape(message)}</p>{details}")
