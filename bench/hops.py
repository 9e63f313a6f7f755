"""Where start -> listable goes, hop by hop, from the services' spans.

Run the `started` scenario with tracing on and the logs kept, then point this at
the log directory the benchmark printed:

    deploy/bench.sh --quick --only started --env HITL_TRACING=console --keep-logs
    uv run python -m bench.hops /tmp/hitl-bench-XXXX [--runs 5]

With `HITL_TRACING=console` every service prints one JSON span a line (HTTP
requests, Kafka publish / process, and each store command), all of one run in the
trace its `POST /v1/runs` started. Per run this prints the spans in order, offsets
from the request's start; then the median of each hop over all runs. The clock of
every span is its process's wall clock (one machine, so they agree).
"""

import argparse
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Span:
    name: str
    service: str
    span_id: str
    parent: str | None
    start: float  # seconds, wall clock
    end: float

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def read_spans(logs: Path) -> dict[str, list[Span]]:
    """Spans by trace id, from every `*.log` in `logs` (lines that are not spans skipped)."""
    traces: dict[str, list[Span]] = defaultdict(list)
    for path in sorted(logs.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith('{"name"'):
                continue
            try:
                raw: dict[str, Any] = json.loads(line)
                context = raw["context"]
                span = Span(
                    name=raw["name"],
                    service=str(raw["resource"]["attributes"].get("service.name", path.stem)),
                    span_id=context["span_id"],
                    parent=raw.get("parent_id"),
                    start=_time(raw["start_time"]),
                    end=_time(raw["end_time"]),
                )
            except (ValueError, KeyError, TypeError):
                continue
            traces[context["trace_id"]].append(span)
    return traces


def first(spans: list[Span], name: str, *, after: float = 0.0) -> Span | None:
    return next((s for s in spans if s.name == name and s.start >= after), None)


def hops(spans: list[Span]) -> dict[str, float] | None:
    """The hops of one run's trace, in ms; None when the trace is not a whole start."""
    spans = sorted(spans, key=lambda s: s.start)
    post = first(spans, "POST /v1/runs")
    if post is None:
        return None
    tasks_pub = next((s for s in spans if s.name.endswith("agent.tasks publish")), None)
    tasks_in = [s for s in spans if s.name.endswith("agent.tasks process")]
    req_pub = next((s for s in spans if s.name.endswith("approval.requested publish")), None)
    req_in = next(
        (
            s
            for s in spans
            if s.name.endswith("approval.requested process") and s.service == "hitl-approval"
        ),
        None,
    )
    if tasks_pub is None or not tasks_in or req_pub is None or req_in is None:
        return None
    # The agent's own group starts the run (the shared group only watches): the
    # consumer span whose subtree holds the approval request's publish.
    children: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        if s.parent:
            children[s.parent].append(s)

    def subtree(root: Span) -> list[Span]:
        out, todo = [], [root]
        while todo:
            node = todo.pop()
            out.append(node)
            todo.extend(children.get(node.span_id, []))
        return out

    starter = next((s for s in tasks_in if req_pub in subtree(s)), tasks_in[0])
    # What the agent did before the approval request went out (not what followed it).
    agent_spans = [s for s in subtree(starter) if s.start < req_pub.start]
    listed = [
        s for s in subtree(req_in) if s.name == "insert approvals" and s.service == "hitl-approval"
    ]
    if not listed:
        return None
    # The request's own store calls (its subtree reaches into the consumer's through
    # the task's publish span: stop there).
    api_store = sum(
        s.ms
        for s in subtree(post)
        if s.name.split(" ")[0] in STORE_COMMANDS and s.start < tasks_pub.start
    )
    agent_store = sum(s.ms for s in agent_spans if s.name.split(" ")[0] in STORE_COMMANDS)
    agent_publish = sum(s.ms for s in agent_spans if s.name.endswith(" publish"))
    return {
        "api: request -> task publish": (tasks_pub.start - post.start) * 1000,
        "api: store calls": api_store,
        "api: task publish (ack)": tasks_pub.ms,
        "api: request total": post.ms,
        "kafka: task publish -> agent consumer": (starter.start - tasks_pub.start) * 1000,
        "agent: consumer -> approval.requested publish": (req_pub.start - starter.start) * 1000,
        "agent: of which store calls": agent_store,
        "agent: of which publishes (ack)": agent_publish,
        "agent: store calls (count)": float(
            sum(1 for s in agent_spans if s.name.split(" ")[0] in STORE_COMMANDS)
        ),
        "kafka: request publish -> approval consumer": (req_in.start - req_pub.start) * 1000,
        "approval: consumer -> listing row stored": (listed[0].end - req_in.start) * 1000,
        "total: request -> listing row stored": (listed[0].end - post.start) * 1000,
    }


STORE_COMMANDS = {"insert", "find", "update", "delete", "findAndModify", "aggregate", "count"}


def timeline(spans: list[Span]) -> str:
    spans = sorted(spans, key=lambda s: s.start)
    t0 = spans[0].start
    return "\n".join(
        f"  {(s.start - t0) * 1000:8.1f} ms  {s.ms:7.1f} ms  {s.service:<14} {s.name}"
        for s in spans
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("logs", type=Path, help="the stack's log directory (--keep-logs)")
    parser.add_argument("--runs", type=int, default=2, help="timelines to print in full")
    parser.add_argument("--skip", type=int, default=1, help="first runs to leave out (warm-up)")
    args = parser.parse_args()
    traced = [
        (min(s.start for s in spans), spans, h)
        for spans in read_spans(args.logs).values()
        if (h := hops(spans)) is not None
    ]
    traced.sort(key=lambda t: t[0])
    traced = traced[args.skip :]
    if not traced:
        raise SystemExit(f"no whole start -> listable trace in {args.logs}/*.log")
    for _, spans, _ in traced[-args.runs :]:
        print(timeline(spans), end="\n\n")
    print(f"median of {len(traced)} runs (ms; min-max):")
    for key in traced[0][2]:
        values = [h[key] for _, _, h in traced]
        print(
            f"  {key:<48} {statistics.median(values):7.1f}  ({min(values):.1f}-{max(values):.1f})"
        )


if __name__ == "__main__":
    main()
