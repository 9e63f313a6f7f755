"""The promises a chaos run must keep, checked from what the test observed.

Each check returns the violations it found, as sentences that name the ids, so a
failure says what broke and where to look (the service logs are kept).
"""

import base64
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hitl_shared.topics import Topics, dlq

from tests.support.chaos_bad_input import REASONS, Injected, consumers
from tests.support.chaos_load import OPENING, Task
from tests.support.chaos_reviewer import Attempted
from tests.support.chaos_tap import Tap
from tests.support.recorder import Recorded

DECIDED_AS = {
    "approve": "approved",
    "reject": "rejected",
    "modify": "modified",
    "expire": "expired",
}
TERMINAL_RUN = {"completed", "failed", "cancelled"}


@dataclass
class Observed:
    tasks: list[Task]
    topics: Topics
    tap: Tap
    runs: dict[str, dict[str, Any]]  # run_id -> GET /v1/runs/{id}
    approvals: dict[str, dict[str, Any]]  # correlation_id -> GET /v1/approvals/{id}
    attempted: dict[str, Attempted]
    balances: dict[str, float]  # GET /v1/accounts
    ledger: list[dict[str, Any]]
    approval_events: list[dict[str, Any]]
    injected: list[Injected]
    webhooks: list[Recorded]
    # Status codes of GETs for ids carried only by malformed messages (must be 404).
    leaked: dict[str, int] = field(default_factory=dict)
    # The key id the approval service signs with ("" : any signature will do).
    key_id: str = ""
    # Forged decisions the plan sent: the only ones the agent may refuse.
    forged: int = 0

    def requested(self) -> dict[str, list[str]]:
        """run_id -> the distinct correlation ids the agent asked approval for."""
        found: dict[str, list[str]] = defaultdict(list)
        mine = {t.task_id for t in self.tasks}
        for record in self.tap.of(self.topics.approval_requested):
            body = record.body or {}
            run_id, cid = body.get("run_id"), body.get("correlation_id")
            if run_id in mine and isinstance(cid, str) and cid not in found[run_id]:
                found[run_id].append(cid)
        return found

    def events(self, topic: str) -> list[dict[str, Any]]:
        return [r.body for r in self.tap.of(topic) if r.body and "event_id" in r.body]


def runs_terminal(o: Observed) -> list[str]:
    bad = []
    for task in o.tasks:
        run = o.runs.get(task.task_id)
        if run is None:
            bad.append(f"task {task.index} ({task.task_id}): no run")
        elif run["status"] not in TERMINAL_RUN:
            bad.append(f"run {task.task_id} ended the test {run['status']}")
        elif run["status"] != "completed":
            bad.append(f"run {task.task_id} {run['status']}: {run.get('error')}")
    return bad


def approvals_kept(o: Observed) -> list[str]:
    """One approval per task above the threshold, none below; each stored and decided once."""
    bad = []
    requested = o.requested()
    decided_entries = Counter(
        e["correlation_id"] for e in o.approval_events if e.get("type") == "decided"
    )
    for task in o.tasks:
        cids = requested.get(task.task_id, [])
        if not task.needs_approval:
            if cids:
                bad.append(f"run {task.task_id} moved {task.amount} yet asked approval {cids}")
            continue
        if len(cids) != 1:
            bad.append(f"run {task.task_id} asked {len(cids)} approvals, not 1: {cids}")
        for cid in cids:
            approval = o.approvals.get(cid)
            if approval is None:
                bad.append(f"approval {cid} (run {task.task_id}) lost: the API does not know it")
                continue
            if approval["status"] == "pending":
                bad.append(
                    f"approval {cid} still pending after its deadline {approval['expires_at']}"
                )
            if decided_entries[cid] != 1:
                bad.append(
                    f"approval {cid} has {decided_entries[cid]} decided entries in its stream"
                )
            bad += _in_time(cid, approval)
    return bad


def _in_time(cid: str, approval: dict[str, Any]) -> list[str]:
    decision = approval.get("decision") or {}
    if not decision:
        return [f"approval {cid} is {approval['status']} without a decision"]
    decided_at = datetime.fromisoformat(decision["decided_at"])
    deadline = datetime.fromisoformat(approval["expires_at"])
    if approval["status"] == "expired" and decided_at < deadline:
        return [f"approval {cid} expired at {decided_at}, before its deadline {deadline}"]
    if approval["status"] in ("approved", "modified", "rejected") and decided_at >= deadline:
        return [
            f"approval {cid} {approval['status']} at {decided_at}, after its deadline {deadline}"
        ]
    return []


def reviewer_consistent(o: Observed) -> list[str]:
    """What the API says won agrees with what the reviewer was told."""
    bad = []
    for cid, attempt in o.attempted.items():
        final = (o.approvals.get(cid) or {}).get("status")
        wanted = DECIDED_AS[attempt.verdict]
        if attempt.verdict == "expire":
            if final != "expired":
                bad.append(f"approval {cid}: nobody decided, yet it is {final}")
        elif attempt.status == 200 and final != wanted:
            bad.append(
                f"approval {cid}: the reviewer's {attempt.verdict} got 200, but it is {final}"
            )
        elif attempt.status in (403, 412, 422):
            bad.append(
                f"approval {cid}: {attempt.verdict} refused with {attempt.status}: {attempt.answer}"
            )
        elif final not in (wanted, "expired"):
            bad.append(
                f"approval {cid}: reviewer wanted {wanted}, it is {final} (HTTP {attempt.status})"
            )
        if final == "modified":
            args = ((o.approvals.get(cid) or {}).get("decision") or {}).get("arguments") or {}
            if args.get("amount") != attempt.task.modified_amount:
                bad.append(f"approval {cid}: modified to {args}, reviewer sent {attempt.arguments}")
    return bad


def decisions_published_once(o: Observed) -> list[str]:
    """Every decision reached `approval.decided`, under one event id (redeliveries reuse it)."""
    bad = []
    ids: dict[str, set[str]] = defaultdict(set)
    verdicts: dict[str, set[str]] = defaultdict(set)
    for event in o.events(o.topics.approval_decided):
        cid = str(event.get("correlation_id"))
        ids[cid].add(str(event["event_id"]))
        verdicts[cid].add(str(event.get("decision")))
    for cid, approval in o.approvals.items():
        if len(ids[cid]) != 1:
            bad.append(f"approval {cid}: {len(ids[cid])} distinct approval.decided events")
        if verdicts[cid] and verdicts[cid] != {approval["status"]}:
            bad.append(f"approval {cid}: published {verdicts[cid]}, stored {approval['status']}")
    return bad


def runs_stepped_once(o: Observed) -> list[str]:
    """Run events: one event per position, none missing; each decision applied once, each
    transfer executed at most once."""
    bad = []
    mine = {t.task_id for t in o.tasks}
    by_position: dict[tuple[str, int], set[str]] = defaultdict(set)
    applied: dict[str, set[str]] = defaultdict(set)
    applied_as: dict[str, str] = {}
    executed: dict[str, set[str]] = defaultdict(set)
    for event in o.events(o.topics.agent_runs):
        run_id = str(event.get("run_id"))
        if run_id not in mine:
            continue
        by_position[(run_id, int(event.get("seq") or 0))].add(str(event["event_id"]))
        detail = event.get("detail") or {}
        if event.get("type") == "decision_applied":
            applied[str(detail.get("correlation_id"))].add(str(event["event_id"]))
            applied_as[str(detail.get("correlation_id"))] = str(detail.get("decision"))
        if event.get("type") == "tool_executed" and detail.get("tool") == "transfer":
            executed[run_id].add(str(event["event_id"]))
    for (run_id, seq), ids in by_position.items():
        if len(ids) > 1:
            bad.append(f"run {run_id}: {len(ids)} different events at position {seq}")
    for run_id, run in o.runs.items():
        seen = sorted(seq for (rid, seq) in by_position if rid == run_id)
        if seen != list(range(1, int(run["events"]) + 1)):
            bad.append(f"run {run_id}: agent.runs has positions {seen}, store has {run['events']}")
        if len(executed[run_id]) > 1:
            bad.append(f"run {run_id}: the transfer executed {len(executed[run_id])} times")
    for cid, approval in o.approvals.items():
        if len(applied[cid]) != 1:
            bad.append(f"approval {cid}: applied {len(applied[cid])} times by the agent")
        elif applied_as[cid] != approval["status"]:
            bad.append(
                f"approval {cid}: agent applied {applied_as[cid]}, it is {approval['status']}"
            )
    return bad


def decisions_verified(o: Observed) -> list[str]:
    """Every decision is signed by the approval service's key, and the agent refused none:
    in a run without forgeries a refusal means the signing or the verifying is broken."""
    bad = []
    for event in o.events(o.topics.approval_decided):
        cid = str(event.get("correlation_id"))
        if cid not in o.approvals:
            continue
        if not event.get("signature"):
            bad.append(f"approval {cid}: approval.decided {event['event_id']} is not signed")
        elif o.key_id and event.get("key_id") != o.key_id:
            bad.append(f"approval {cid}: signed by key {event.get('key_id')!r}, not {o.key_id!r}")
    mine = {t.task_id for t in o.tasks}
    refused = [
        e
        for e in o.events(o.topics.agent_runs)
        if e.get("type") == "decision_refused" and e.get("run_id") in mine
    ]
    if len(refused) != o.forged:
        bad.append(f"{len(refused)} decisions refused by the agent, {o.forged} forged:")
        bad += [
            f"  run {e['run_id']}: {(e.get('detail') or {}).get('code')}: "
            f"{(e.get('detail') or {}).get('reason')}"
            for e in refused
        ]
    return bad


def expected_moves(o: Observed) -> dict[str, int]:
    """What each task's account must hold, from the plan and the decision that won."""
    moves = {}
    by_run = {a.task.task_id: a for a in o.attempted.values()}
    for task in o.tasks:
        if not task.needs_approval:
            moves[task.account] = task.amount
            continue
        attempt = by_run.get(task.task_id)
        final = (o.approvals.get(attempt.correlation_id) or {}).get("status") if attempt else None
        moves[task.account] = {"approved": task.amount, "modified": task.modified_amount}.get(
            str(final), 0
        )
    return moves


def money_adds_up(o: Observed) -> list[str]:
    bad = []
    moves = expected_moves(o)
    entries: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in o.ledger:
        entries[str(entry.get("to"))].append(entry)
    for account, amount in moves.items():
        if o.balances.get(account) != amount:
            bad.append(
                f"{account}: balance {o.balances.get(account)}, the decisions imply {amount}"
            )
        want = [amount * 100] if amount else []
        got = [int(e["cents"]) for e in entries[account]]
        if got != want:
            bad.append(f"{account}: ledger entries {got} (cents), expected {want}")
    checking = OPENING - sum(moves.values())
    if o.balances.get("checking") != checking:
        bad.append(
            f"checking: balance {o.balances.get('checking')}, the decisions imply {checking}"
        )
    return bad


def dead_lettered(o: Observed) -> list[str]:
    """Each malformed message dead-lettered by every group that consumes its topic, with
    the reason; nothing else dead-lettered (a valid event in a DLQ is a lost event)."""
    bad = []
    expected = consumers(o.topics)
    letters: dict[tuple[str, int, int], list[dict[str, Any]]] = defaultdict(list)
    for topic in expected:
        for letter in o.events(dlq(topic)):
            if "original_b64" in letter:
                letters[(letter["topic"], letter["partition"], letter["offset"])].append(letter)
    mine = {(i.topic, i.partition, i.offset): i for i in o.injected}
    for key, injected in mine.items():
        found = letters.get(key, [])
        groups = {letter["consumer_group"] for letter in found}
        if len(groups) != expected[injected.topic]:
            bad.append(
                f"{injected.kind} on {injected.topic}[{injected.partition}]@{injected.offset}: "
                f"dead-lettered by {sorted(groups)}, expected {expected[injected.topic]} groups"
            )
        for letter in found:
            if REASONS[injected.kind] not in letter["error"].lower():
                bad.append(f"{injected.kind} on {injected.topic}: reason {letter['error']!r}")
            if letter["original_size"] != injected.size:
                bad.append(f"{injected.kind} on {injected.topic}: size {letter['original_size']}")
    for key, found in letters.items():
        if key not in mine:
            original = base64.b64decode(found[0]["original_b64"])[:300]
            bad.append(
                f"a message I did not break was dead-lettered at {key}: {found[0]['error']} {original!r}"
            )
    for marker, status in o.leaked.items():
        if status != 404:
            bad.append(f"{marker}, carried only by a malformed message, exists (HTTP {status})")
    return bad


def notified_once(o: Observed) -> list[str]:
    """A webhook delivery keeps one id across retries: never two deliveries of one kind."""
    deliveries: dict[tuple[str, str], set[str]] = defaultdict(set)
    for hook in o.webhooks:
        body = hook.json()
        deliveries[(str(body.get("correlation_id")), str(body.get("kind")))].add(
            hook.headers.get("x-hitl-delivery", "")
        )
    return [
        f"{kind} for {cid}: {len(ids)} different deliveries"
        for (cid, kind), ids in deliveries.items()
        if len(ids) > 1
    ]


CHECKS = (
    runs_terminal,
    approvals_kept,
    reviewer_consistent,
    decisions_published_once,
    runs_stepped_once,
    decisions_verified,
    money_adds_up,
    dead_lettered,
    notified_once,
)


def violations(o: Observed) -> dict[str, list[str]]:
    found = {check.__name__: check(o) for check in CHECKS}
    return {name: problems for name, problems in found.items() if problems}
