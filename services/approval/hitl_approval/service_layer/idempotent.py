"""A decision sent with an `Idempotency-Key`: taken once, its first answer replayed.

The answer kept is the one the caller got (status, body, headers), because a retry
must see exactly that: the decision that won, or the conflict that refused it. How
an approval or a refusal becomes an answer is the channel's (`Render`); when to
remember, replay or refuse the key is this module's.
"""

import dataclasses
from collections.abc import Callable

from hitl_approval.adapters.idempotency import key_id
from hitl_approval.domain.errors import ApprovalError, BrokenApproval, NotFound
from hitl_approval.domain.model import Approval
from hitl_approval.service_layer.ports import IdempotencyKeys, StoredResponse
from hitl_approval.service_layer.services import ApprovalService, DecideCommand

# Answers a retry with the same key replays: the ones that reflect state.
REPLAYED = frozenset({200, 409, 412})

Render = Callable[[Approval | ApprovalError], StoredResponse]


class KeyReused(ApprovalError):
    """The key was first sent with another request (HTTP 422)."""


async def decide_once(
    service: ApprovalService,
    store: IdempotencyKeys,
    command: DecideCommand,
    *,
    caller: str,
    key: str,
    asked: str,
    render: Render,
) -> tuple[StoredResponse, bool]:
    """The answer to this decision and whether it is a replay; `asked` fingerprints it.

    Raises `KeyReused` when the key was first used with another request.
    """
    mine = key_id(caller, key)
    command = dataclasses.replace(command, idempotency=f"{mine}:{asked}")
    stored = await store.get(caller, key)
    if stored is None:
        first = await _attempt(service, command, render, asked)
        if first.status_code == 409 and (
            earlier := await _recorded(service, command, mine, render)
        ):
            # Our own decision, stored by a process that died before remembering the
            # response: the retry gets it back, not a 409 about itself.
            stored = await store.remember(caller, key, earlier, now=service.clock())
        elif first.status_code not in REPLAYED:
            return first, False
        else:
            stored = await store.remember(caller, key, first, now=service.clock())
            if stored is first:
                return first, False
    if stored.fingerprint != asked:
        raise KeyReused(
            f"Idempotency-Key {key!r} was already used for a different request; "
            "use a new key for a new decision"
        )
    return stored, True


async def _attempt(
    service: ApprovalService, command: DecideCommand, render: Render, asked: str
) -> StoredResponse:
    try:
        answer = render(await service.decide(command))
    except ApprovalError as exc:
        answer = render(exc)
    return dataclasses.replace(answer, fingerprint=asked)


async def _recorded(
    service: ApprovalService, command: DecideCommand, key: str, render: Render
) -> StoredResponse | None:
    """The answer a decision made with this key got, rebuilt from the stream."""
    try:
        approval = await service.get(command.correlation_id)
    except (NotFound, BrokenApproval):
        return None
    entry = approval.entry_for(key)
    if entry is None:
        return None
    first = render(approval.as_of(entry.seq))
    return dataclasses.replace(first, fingerprint=entry.idempotency.partition(":")[2])
