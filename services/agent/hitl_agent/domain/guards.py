"""Loop and budget guards: a run that spins stops and asks a human instead.

Checked before every model call. Tripping one holds the run with a
`request_human_intervention` approval; approving it grants a fresh budget.
"""

import hashlib
import json
from typing import Any

from hitl_agent.domain.run import Failure, Run


def call_key(tool: str, arguments: Any) -> str:
    """Identity of a call: same tool, same arguments (key order does not matter)."""
    canonical = json.dumps([tool, arguments], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def record_outcome(run: Run, tool: str, arguments: Any, *, ok: bool, error: str = "") -> None:
    """Count a failing call; a success of the same call clears its count."""
    key = call_key(tool, arguments)
    found = next((f for f in run.failures if f.key == key), None)
    if ok:
        if found is not None:
            run.failures.remove(found)
        return
    if found is None:
        found = Failure(key=key, tool=tool, arguments=json.dumps(arguments, default=str))
        run.failures.append(found)
    found.count += 1
    found.last_error = error[:500]


def tripped(run: Run) -> str | None:
    """Why the run must stop and ask a human before the next model call, or None."""
    limits = run.ceilings
    if run.steps >= limits.steps:
        return f"the run reached its limit of {limits.steps} model steps"
    if run.usage.total_tokens >= limits.tokens:
        return f"the run used {run.usage.total_tokens} tokens, over its budget of {limits.tokens}"
    for failure in run.failures:
        if failure.count >= run.budget.max_repeated_failures:
            return (
                f"{failure.tool} failed {failure.count} times with the same arguments "
                f"{failure.arguments}: {failure.last_error}"
            )
    return None
