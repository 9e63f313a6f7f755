"""ApprovalService on in-memory fakes: races, deadlines, If-Match and Idempotency-Key.

The same rules the e2e tests show through the whole stack, here in milliseconds:
the store's only promise (an append is atomic on its seq) is kept by the fake.
"""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hitl_approval.domain.errors import (
    AlreadyDecided,
    AlreadyVoted,
    ApprovalError,
    BrokenApproval,
    InvalidDecision,
    NotAllowed,
    NotFound,
    VersionMismatch,
)
from hitl_approval.domain.model import Approval, Status, Verb
from hitl_approval.domain.policy import PolicyBook
from hitl_approval.entrypoints.refusals import refusal
from hitl_approval.service_layer.idempotent import KeyReused, decide_once
from hitl_approval.service_layer.ports import StoredResponse
from hitl_approval.service_layer.services import ApprovalService, DecideCommand
from hitl_contracts import ApprovalDecided, ApprovalRequested, Channel, Decision

from tests.factories import approval_request
from tests.fakes import Clock, FakeApprovalStore, FakeIdempotencyKeys, approval_service

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def decide(cid: str, verb: Verb, reviewer: str, **options: object) -> DecideCommand:
    return DecideCommand(cid, verb, reviewer, Channel.API, **options)  # type: ignore[arg-type]


async def pending_with_a_quorum_of_two() -> tuple[ApprovalService, FakeApprovalStore, str]:
    service, store, _ = approval_service(
        Clock(T0), policies=PolicyBook.model_validate({"default": {"quorum": 2}})
    )
    request = approval_request(at=T0)
    await service.ingest(request)
    return service, store, request.correlation_id


async def test_of_two_concurrent_decisions_exactly_one_wins_and_one_event_is_published() -> None:
    service, _, published = approval_service(Clock(T0))
    request = approval_request(at=T0)
    await service.ingest(request)
    cid = request.correlation_id

    results = await asyncio.gather(
        service.decide(decide(cid, Verb.APPROVE, "ann")),
        service.decide(decide(cid, Verb.REJECT, "bob")),
        return_exceptions=True,
    )

    won = [r for r in results if isinstance(r, Approval)]
    lost = [r for r in results if isinstance(r, AlreadyDecided)]
    assert len(won) == 1, results
    assert len(lost) == 1, results
    # The loser is told what won, so it can show it.
    assert lost[0].approval.status is won[0].status
    decided = [e for e in published.events if isinstance(e, ApprovalDecided)]
    assert [d.reviewer for d in decided] == [won[0].decision.reviewer]  # type: ignore[union-attr]


async def test_a_decision_after_the_deadline_loses_to_the_timeout() -> None:
    clock = Clock(T0)
    service, _, published = approval_service(clock)
    request = approval_request(at=T0, timeout=timedelta(minutes=5))
    await service.ingest(request)

    clock.advance(timedelta(minutes=6))
    with pytest.raises(AlreadyDecided) as refused:
        await service.decide(decide(request.correlation_id, Verb.APPROVE, "ann"))

    assert refused.value.approval.status is Status.EXPIRED
    assert [e.decision for e in published.events if isinstance(e, ApprovalDecided)] == [
        Decision.EXPIRED
    ]


async def test_a_late_decision_on_an_escalating_request_is_taken_in_the_extended_time() -> None:
    clock = Clock(T0)
    service, _, published = approval_service(clock)
    request = approval_request(
        at=T0, timeout=timedelta(minutes=5), on_timeout="escalate", escalation_seconds=600
    )
    await service.ingest(request)

    clock.advance(timedelta(minutes=6))
    approval = await service.decide(decide(request.correlation_id, Verb.APPROVE, "ann"))

    assert approval.status is Status.APPROVED
    assert approval.escalated
    # The escalation went out again on approval.requested, then the decision.
    assert [type(e) for e in published.events] == [ApprovalRequested, ApprovalDecided]


async def test_if_match_names_the_version_reviewed() -> None:
    service, _, cid = await pending_with_a_quorum_of_two()

    with pytest.raises(VersionMismatch) as stale:
        await service.decide(decide(cid, Verb.APPROVE, "ann", if_match=3))
    assert stale.value.approval.version == 0

    voted = await service.decide(decide(cid, Verb.APPROVE, "ann", if_match=0))
    assert voted.status is Status.PENDING
    assert voted.approvers == ["ann"]
    # Bob reviewed version 0; Ann's vote moved it on.
    with pytest.raises(VersionMismatch):
        await service.decide(decide(cid, Verb.APPROVE, "bob", if_match=0))
    done = await service.decide(decide(cid, Verb.APPROVE, "bob", if_match=1))
    assert done.status is Status.APPROVED
    # Once decided, a stale If-Match is answered with what won (409), not 412.
    with pytest.raises(AlreadyDecided):
        await service.decide(decide(cid, Verb.REJECT, "cyd", if_match=0))


async def test_losing_the_race_for_a_seq_under_if_match_is_a_version_mismatch() -> None:
    service, store, cid = await pending_with_a_quorum_of_two()

    async def ann_votes_first() -> None:
        await service.decide(decide(cid, Verb.APPROVE, "ann"))

    store.before_append = ann_votes_first
    with pytest.raises(VersionMismatch) as mismatch:
        await service.decide(decide(cid, Verb.APPROVE, "bob", if_match=0))
    assert mismatch.value.approval.approvers == ["ann"]


async def test_a_decision_starts_from_what_this_replica_knows_and_a_stale_view_loses() -> None:
    service, store, published = approval_service(Clock(T0))
    request = approval_request(at=T0)
    await service.ingest(request)
    cid = request.correlation_id
    mine = list(store.seen[cid])
    # Another replica decides; this one still knows the stream as it ingested it.
    await service.decide(decide(cid, Verb.REJECT, "ann", comment="no"))
    store.seen[cid] = mine
    with pytest.raises(AlreadyDecided) as late:
        await service.decide(decide(cid, Verb.APPROVE, "bob"))
    assert late.value.approval.status is Status.REJECTED, "answered from the whole stream"
    assert len(store.streams[cid]) == 2, "the stale view's append was refused by its seq"
    assert [e.decision for e in published.events if isinstance(e, ApprovalDecided)] == [
        Decision.REJECTED
    ]


async def test_if_match_is_checked_against_the_whole_stream_not_a_stale_view() -> None:
    service, store, cid = await pending_with_a_quorum_of_two()
    mine = list(store.seen[cid])
    await service.decide(decide(cid, Verb.APPROVE, "ann"))  # on another replica
    store.seen[cid] = mine
    # Bob reviewed version 1 (with Ann's vote), which this replica has not seen yet.
    done = await service.decide(decide(cid, Verb.APPROVE, "bob", if_match=1))
    assert done.status is Status.APPROVED
    assert done.approvers == ["ann", "bob"]


async def test_the_same_reviewer_cannot_vote_twice_under_a_quorum() -> None:
    service, _, _ = approval_service(
        Clock(T0), policies=PolicyBook.model_validate({"default": {"quorum": 2}})
    )
    request = approval_request(at=T0)
    await service.ingest(request)
    await service.decide(decide(request.correlation_id, Verb.APPROVE, "ann"))
    with pytest.raises(AlreadyVoted):
        await service.decide(decide(request.correlation_id, Verb.APPROVE, "ann"))


async def test_a_rejection_from_the_web_form_needs_a_reason_elsewhere_it_may_not() -> None:
    service, _, _ = approval_service(Clock(T0))
    on_web, on_api = approval_request(at=T0), approval_request(at=T0)
    await service.ingest(on_web)
    await service.ingest(on_api)
    web = DecideCommand(on_web.correlation_id, Verb.REJECT, "ann", Channel.WEB, comment="  ")
    with pytest.raises(InvalidDecision, match="Say why"):
        await service.decide(web)
    rejected = await service.decide(decide(on_api.correlation_id, Verb.REJECT, "ann"))
    assert rejected.status is Status.REJECTED


async def test_an_unknown_approval_is_not_found() -> None:
    service, _, _ = approval_service(Clock(T0))
    with pytest.raises(NotFound):
        await service.decide(decide("c-nobody", Verb.APPROVE, "ann"))


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("x"), 404),
        (BrokenApproval("c", "bad"), 409),
        (NotAllowed("no"), 403),
        (InvalidDecision("bad"), 422),
        (KeyReused("again"), 422),
    ],
)
def test_every_channel_maps_an_error_to_the_same_status(error: ApprovalError, status: int) -> None:
    assert refusal(error).status == status


async def test_conflicts_carry_the_current_state_for_every_channel() -> None:
    service, _, _ = approval_service(Clock(T0))
    request = approval_request(at=T0)
    await service.ingest(request)
    approval = await service.decide(decide(request.correlation_id, Verb.APPROVE, "ann"))
    conflict = refusal(AlreadyDecided(approval))
    mismatch = refusal(VersionMismatch(approval, 7))
    assert (conflict.status, conflict.current) == (409, approval)
    assert (mismatch.status, mismatch.current) == (412, approval)


def answer(result: Approval | ApprovalError) -> StoredResponse:
    if isinstance(result, ApprovalError):
        return StoredResponse("", refusal(result).status, {"detail": str(result)}, {})
    return StoredResponse("", 200, {"status": result.status.value}, {"ETag": str(result.version)})


async def test_a_retry_with_the_same_key_gets_the_first_answer_again() -> None:
    service, _, published = approval_service(Clock(T0))
    keys = FakeIdempotencyKeys()
    request = approval_request(at=T0)
    await service.ingest(request)
    command = decide(request.correlation_id, Verb.APPROVE, "ann")

    first, replayed = await decide_once(
        service, keys, command, caller="ann", key="k1", asked="f1", render=answer
    )
    again, replayed_again = await decide_once(
        service, keys, command, caller="ann", key="k1", asked="f1", render=answer
    )

    assert (first.status_code, replayed) == (200, False)
    assert (again.status_code, again.body, replayed_again) == (200, first.body, True)
    assert len([e for e in published.events if isinstance(e, ApprovalDecided)]) == 1
    with pytest.raises(KeyReused):
        await decide_once(service, keys, command, caller="ann", key="k1", asked="f2", render=answer)


async def test_a_retry_after_a_crash_before_the_answer_was_kept_gets_its_own_decision() -> None:
    service, _, _ = approval_service(Clock(T0))
    keys = FakeIdempotencyKeys()
    request = approval_request(at=T0)
    await service.ingest(request)
    command = decide(request.correlation_id, Verb.APPROVE, "ann")

    class Forgetful(FakeIdempotencyKeys):
        """The process died after the decision was stored, before its answer was."""

        async def remember(
            self, reviewer: str, key: str, response: StoredResponse, *, now: datetime
        ) -> StoredResponse:
            raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        await decide_once(
            service, Forgetful(), command, caller="ann", key="k1", asked="f1", render=answer
        )
    retried, replayed = await decide_once(
        service, keys, command, caller="ann", key="k1", asked="f1", render=answer
    )
    # Not a 409 about itself: the decision the first attempt stored, rebuilt from the stream.
    assert (retried.status_code, retried.body, replayed) == (200, {"status": "approved"}, True)
