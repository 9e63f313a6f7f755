"""How the offline planner (no OPENAI_API_KEY) reads requests to the demo agents.

"Transfer 500 to Alice", "Deposit 20", "What is my balance?" for banking; "Delete all
log files older than 7 days", "List files" for files: the tool calls a model would make.
"""

import re
from typing import Any

_TRANSFER = re.compile(
    r"\b(?:transfer|send|pay)\s+\$?(?P<amount>\d+(?:\.\d+)?)\s+(?:to\s+)?(?P<to>[a-z][\w-]*)", re.I
)
_DEPOSIT = re.compile(r"\bdeposit\s+\$?(?P<amount>\d+(?:\.\d+)?)", re.I)
_BALANCE = re.compile(r"\bbalance(?:\s+of\s+(?P<account>[a-z][\w-]*))?", re.I)
_DELETE = re.compile(
    r"\b(?:delete|remove|clean\s+up)\s+(?:all\s+)?(?:the\s+)?(?:(?P<kind>[\w*.-]+)\s+)?files?"
    r"(?:\s+older\s+than\s+(?P<days>\d+(?:\.\d+)?)\s+days?)?",
    re.I,
)
_LIST = re.compile(r"\b(?:list|show)\s+(?:all\s+|the\s+)?files\b", re.I)


def banking_plan(request: str) -> list[tuple[str, dict[str, Any]]]:
    plan: list[tuple[str, dict[str, Any]]] = []
    for m in _TRANSFER.finditer(request):
        plan.append(("transfer", {"to_account": m["to"].lower(), "amount": float(m["amount"])}))
    for m in _DEPOSIT.finditer(request):
        plan.append(("deposit", {"amount": float(m["amount"])}))
    balance = _BALANCE.search(request)
    if not plan and balance:
        plan.append(("get_balance", {"account": (balance["account"] or "checking").lower()}))
    return plan


def files_plan(request: str) -> list[tuple[str, dict[str, Any]]]:
    if (delete := _DELETE.search(request)) is not None:
        days = float(delete["days"] or 0)
        return [("delete_files", {"pattern": _glob(delete["kind"]), "older_than_days": days})]
    if _LIST.search(request):
        return [("list_files", {"pattern": "**/*"})]
    return []


def _glob(kind: str | None) -> str:
    if not kind or kind.lower() in {"all", "the", "old"}:
        return "*"
    if any(ch in kind for ch in "*?["):
        return kind
    return f"*.{kind.lower().lstrip('.')}"
