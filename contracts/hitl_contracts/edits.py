"""The rule for a reviewer's edit: it may narrow what was asked, never widen it.

One function, used by the approval service when a reviewer decides (so the reviewer
is told at once, on every channel) and by the agent before it runs anything (so a
decision that got past the first check still cannot widen the call).
"""

from typing import Any

from hitl_contracts.approval import EditPolicy


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def edit_problem(
    original: dict[str, Any], edited: dict[str, Any], policy: EditPolicy | None
) -> str | None:
    """Why `edited` widens `original` under `policy`, for a person; None when it does not."""
    if policy is None:
        return None
    if not policy.editable:
        return "this call's arguments cannot be edited: approve or reject it as requested"
    # A tool that declares a policy declares its whole call: a field the agent did not
    # send (a fee account, a second recipient) is a new instruction, not a narrowing.
    if added := sorted(set(edited) - set(original)):
        return (
            f"{', '.join(added)} {'was' if len(added) == 1 else 'were'} not in the request; "
            "a reviewer may change arguments but not add new ones"
        )
    for name in policy.locked:
        if edited.get(name) != original.get(name):
            return (
                f"{name} cannot be changed by a reviewer "
                f"(requested {original.get(name)!r}, edit {edited.get(name)!r})"
            )
    for name in policy.not_above:
        before, after = _number(original.get(name)), _number(edited.get(name))
        if before is None:
            if edited.get(name) != original.get(name):
                return f"{name} was not a number in the request and cannot be set by a reviewer"
            continue
        if after is None:
            return f"{name} must stay a number no higher than the requested {original[name]!r}"
        if after > before:
            return (
                f"{name} may be lowered but not raised by a reviewer "
                f"(requested {original[name]!r}, edit {edited[name]!r})"
            )
    return None
