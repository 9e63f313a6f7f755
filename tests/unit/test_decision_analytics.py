"""Decision analytics, what-if and shadow mode as pure code (no broker, no store)."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hitl_agent.domain.changes import Changes
from hitl_agent.service_layer.agents import AgentSpec
from hitl_agent.service_layer.shadow import observe
from hitl_agent.tools.registry import Registry
from hitl_approval.domain.analytics import (
    Fact,
    FatigueRule,
    GroupBy,
    Row,
    WaitTable,
    percentile,
    report,
    rows_of,
    rows_of_packed,
)
from hitl_approval.domain.model import Approval, Verb
from hitl_approval.domain.whatif import ShadowCall, candidate_verdict, shadow_summary, what_if
from hitl_approval.entrypoints.shadow import shadow_call
from hitl_contracts import ApprovalRequested, Channel, RequestContext, RunEvent, RunEventType
from hitl_contracts.rules import CandidatePolicy
from hitl_sdk import ToolArgs

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def ended(
    cid: str,
    outcome: str,
    seconds: float,
    *,
    reviewer: str = "ann",
    amount: float = 100,
    comment: str = "",
    tool: str = "transfer",
) -> Approval:
    request = ApprovalRequested(
        correlation_id=cid,
        run_id=f"run-{cid}",
        tool_call_id=f"call-{cid}",
        agent="banking",
        tool=tool,
        arguments={"amount": amount},
        reason="r",
        context=RequestContext(user_request="u"),
        requested_at=T0,
        expires_at=T0 + timedelta(hours=1),
    )
    approval = Approval.requested(request)
    now = T0 + timedelta(seconds=seconds)
    if outcome == "expired":
        entry = approval.expire(T0 + timedelta(hours=1))
    elif outcome == "modified":
        entry = approval.decide(
            Verb.MODIFY,
            reviewer=reviewer,
            channel=Channel.API,
            now=now,
            arguments={"amount": amount / 2},
        )
    else:
        verb = Verb.APPROVE if outcome == "approved" else Verb.REJECT
        entry = approval.decide(
            verb, reviewer=reviewer, channel=Channel.API, now=now, comment=comment
        )
    return approval.apply(entry)


def test_a_report_counts_outcomes_rates_percentiles_and_comments() -> None:
    facts = [
        Fact.of(ended("a", "approved", 10)),
        Fact.of(ended("b", "approved", 20)),
        Fact.of(ended("c", "modified", 30)),
        Fact.of(ended("d", "rejected", 40, comment="  not a  payee ")),
        Fact.of(ended("e", "rejected", 50, comment="not a payee")),
        Fact.of(ended("f", "expired", 3600)),
    ]
    # Split over two cells and merged back, as the store reads them.
    rows = rows_of(facts[:3])
    for row in rows_of(facts[3:]):
        rows.append(Row.load(row.dump()))
    figures = report(rows, GroupBy.TOOL, FatigueRule())
    (group,) = figures["groups"]
    assert group["value"] == "banking/transfer"
    assert group["counts"] == {
        "approved": 2,
        "modified": 1,
        "rejected": 2,
        "expired": 1,
        "cancelled": 0,
    }
    assert group["approval_rate"] == 0.6
    assert group["modification_rate"] == 0.2
    assert group["expiry_rate"] == round(1 / 6, 4)
    assert group["time_to_decision"] == {"decisions": 5, "p50_seconds": 30, "p90_seconds": 50}
    assert group["top_rejection_comments"] == [{"comment": "not a payee", "count": 2}]
    assert figures["overall"]["total"] == 6


def test_a_fact_reads_back_as_stored() -> None:
    fact = Fact.of(ended("x", "rejected", 12.5, comment="no", amount=7))
    packed, extra = json.loads(json.dumps([fact.packed(), fact.packed_extra()]))
    assert Fact.unpack(packed, extra) == fact
    since, until = T0.timestamp(), (T0 + timedelta(minutes=1)).timestamp()
    assert rows_of_packed([packed], since, until)[0].dump() == rows_of([fact])[0].dump()
    assert rows_of_packed([packed], until, until + 60) == []


def test_percentiles_are_by_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile([float(v) for v in range(1, 11)], 50) == 5.0
    assert percentile([float(v) for v in range(1, 11)], 90) == 9.0
    assert percentile([1.0, 2.0, 3.0], 90) == 3.0


def test_fatigue_flags_a_reviewer_who_approves_everything_fast() -> None:
    quick = [Fact.of(ended(f"q{i}", "approved", 4, reviewer="quick")) for i in range(20)]
    careful = [Fact.of(ended(f"c{i}", "approved", 4, reviewer="careful")) for i in range(18)]
    careful += [Fact.of(ended(f"r{i}", "rejected", 4, reviewer="careful")) for i in range(2)]
    slow = [Fact.of(ended(f"s{i}", "approved", 120, reviewer="slow")) for i in range(20)]
    few = [Fact.of(ended(f"f{i}", "approved", 2, reviewer="few")) for i in range(19)]
    figures = report(rows_of(quick + careful + slow + few), GroupBy.REVIEWER, FatigueRule())
    assert figures["fatigued_reviewers"] == ["quick"]


def test_the_expected_wait_falls_back_to_wider_history() -> None:
    facts = [Fact.of(ended(f"t{i}", "approved", 10 * (i + 1))) for i in range(5)]
    facts += [Fact.of(ended(f"d{i}", "approved", 7, tool="deposit")) for i in range(2)]
    table = WaitTable(rows_of(facts))
    transfer = table.expected("banking", "transfer")
    assert transfer is not None
    assert (transfer.basis, transfer.p50_seconds, transfer.p90_seconds) == ("tool", 30, 50)
    deposit = table.expected("banking", "deposit")
    assert deposit is not None
    assert (deposit.basis, deposit.decisions) == ("agent", 7)
    assert WaitTable([]).expected("banking", "transfer") is None


THRESHOLD_250 = CandidatePolicy.model_validate(
    {
        "name": "t250",
        "agent": "banking",
        "tools": {
            "transfer": {"require_approval_when": [{"field": "amount", "op": "gt", "value": 250}]}
        },
    }
)


def shadow(cid: str, amount: float, *, live: bool, asks: bool) -> ShadowCall:
    return ShadowCall(
        candidate="t250",
        agent="banking",
        tool="transfer",
        run_id=f"run-{cid}",
        tool_call_id=f"call-{cid}",
        arguments={"amount": amount},
        live_asked=live,
        shadow_asks=asks,
        at=T0,
    )


def test_what_if_counts_asks_let_throughs_and_reviewer_time() -> None:
    facts = [
        Fact.of(ended("big", "approved", 60, amount=5000)),
        Fact.of(ended("small-ok", "approved", 100, amount=200)),
        Fact.of(ended("small-no", "rejected", 1000, amount=100)),
        Fact.of(ended("small-mod", "modified", 20, amount=240)),
        Fact.of(ended("other-tool", "approved", 20, amount=1, tool="deposit")),
    ]
    calls = [shadow("auto", 400, live=False, asks=True), shadow("tiny", 5, live=False, asks=False)]
    figures = what_if(candidate_verdict(THRESHOLD_250), facts, calls, review_cap_seconds=300)
    history = figures["history"]
    assert (history["asked"], history["would_ask"], history["would_let_through"]) == (4, 1, 3)
    assert history["let_through_rejected_or_modified"] == 2
    # 100 + min(1000, 300) + 20 seconds of reviewer time.
    assert history["reviewer_hours_saved"] == round(420 / 3600, 4)
    assert figures["unasked"]["ran_without_approval"] == 2
    assert figures["unasked"]["would_ask"] == 1
    assert figures["would_ask_total"] == 2


def test_shadow_summary_joins_recorded_verdicts_with_human_outcomes() -> None:
    facts = {
        ("run-a", "call-a"): Fact.of(ended("a", "rejected", 30, amount=200)),
    }
    calls = [
        shadow("a", 200, live=True, asks=False),
        shadow("b", 400, live=False, asks=True),
        shadow("c", 2000, live=True, asks=True),
    ]
    figures = shadow_summary("t250", calls, facts, review_cap_seconds=300)
    assert figures["calls"] == 3
    assert (figures["only_live_asks"], figures["only_shadow_asks"], figures["both_ask"]) == (
        1,
        1,
        1,
    )
    assert figures["live_asked_not_yet_decided"] == 1
    assert figures["decided"]["let_through_rejected_or_modified"] == 1


class Amount(ToolArgs):
    amount: float


def test_the_agent_records_what_a_shadow_candidate_would_do() -> None:
    spec = AgentSpec("banking", "", Registry([]), shadow=(THRESHOLD_250,))
    changes = Changes()
    observe(spec, "transfer", "call-1", Amount(amount=400), live_asks=False, changes=changes)
    observe(spec, "deposit", "call-2", Amount(amount=9), live_asks=True, changes=changes)
    (kind, first), (_, second) = changes.events
    assert kind is RunEventType.SHADOW_DECISION
    assert (first["live"], first["shadow"], first["arguments"]) == ("run", "ask", {"amount": 400})
    # A tool the candidate does not name keeps its live verdict.
    assert (second["live"], second["shadow"]) == ("ask", "ask")
    event = RunEvent(run_id="r", task_id="t", type=kind, detail=first)
    call = shadow_call(event)
    assert call is not None
    assert (call.candidate, call.live_asked, call.shadow_asks) == ("t250", False, True)


def test_a_malformed_shadow_record_is_left_out() -> None:
    bad: dict[str, Any] = {"candidate": "x|y", "agent": "a", "tool": "t", "tool_call_id": "c"}
    bad |= {"arguments": {}, "live": "ask", "shadow": "run"}
    assert (
        shadow_call(RunEvent(run_id="r", task_id="t", type="shadow_decision", detail=bad)) is None
    )
    bad["candidate"], bad["live"] = "x", "maybe"
    assert (
        shadow_call(RunEvent(run_id="r", task_id="t", type="shadow_decision", detail=bad)) is None
    )
