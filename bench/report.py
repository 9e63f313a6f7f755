"""Human-readable output: progress lines, then a table of figures against the targets."""

import sys
from typing import Any

# (scenario, label, how to read the figure, target)
TARGETS = {
    "resume": "p50 <= 20 ms, p99 <= 100 ms at 50 decisions/s",
    "ingest": ">= 1000 requests/s",
    "decisions": ">= 500 decisions/s",
}


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _pcts(summary: dict[str, Any]) -> str:
    if not summary.get("n"):
        return "no samples"
    return f"p50 {summary['p50_ms']} / p95 {summary['p95_ms']} / p99 {summary['p99_ms']} ms"


def _store(result: dict[str, Any]) -> str:
    sizes = result.get("store_after") or {}
    return ", ".join(f"{k} {v}" for k, v in sizes.items())


def print_summary(results: dict[str, Any]) -> None:
    config = results["configuration"]
    print("\n== hitl benchmark ==")
    print(
        f"store: {config['store']}; kafka partitions {config['kafka_partitions']}, "
        f"fetch_max_wait_ms {config['kafka_fetch_max_wait_ms']}, "
        f"linger_ms {config['kafka_linger_ms']}; {config['cores']} cores; "
        f"commit {config['commit']}"
    )
    if r := results.get("resume"):
        print(
            f"\ndecision -> resume at {r['achieved_rate_per_s']}/s ({r['verb']}, "
            f"{r['decisions']} decisions)   target {TARGETS['resume']}"
        )
        print(f"  HTTP response -> resumed received : {_pcts(r['response_to_resumed'])}")
        print(
            f"  HTTP response -> resumed (agent)  : {_pcts(r['response_to_resumed_agent_clock'])}"
        )
        print(f"  request sent  -> resumed received : {_pcts(r['send_to_resumed'])}")
        print(f"  decision HTTP round trip          : {_pcts(r['decision_http'])}")
        missing = sum(r["not_resumed_within_s"].values())
        if missing:
            print(f"  NOT resumed within {next(iter(r['not_resumed_within_s']))} s: {missing}")
        if set(r["statuses"]) != {"200"}:
            print(
                f"  HTTP statuses {r['statuses']}; error answer -> resumed anyway: "
                f"{_pcts(r['error_response_to_resumed'])}"
            )
        quarters = "; ".join(
            f"p50 {q['p50_ms']} p99 {q['p99_ms']}" for q in r["response_to_resumed_by_quarter"]
        )
        print(f"  by quarter of the run             : {quarters}")
        print(f"  store afterwards: {_store(r)}")
    if r := results.get("listable"):
        print(f"\nrequest -> listable ({r['requests']} requests, one at a time)")
        print(f"  published -> in GET /v1/approvals : {_pcts(r['published_to_listed'])}")
        print(f"  store afterwards: {_store(r)}")
    if r := results.get("ingest"):
        print(
            f"\ningestion: {r['requests']} requests stored in {r['all_stored_in_s']} s = "
            f"{r['stored_per_s']}/s (steady {r['steady_stored_per_s']}/s; published at "
            f"{r['publish_rate_per_s']}/s)   target {TARGETS['ingest']}"
        )
    if r := results.get("decisions"):
        print(
            f"\ndecisions: {r['decisions']} by {r['concurrency']} clients in {r['elapsed_s']} s = "
            f"{r['decisions_per_s']}/s   target {TARGETS['decisions']}"
        )
        print(f"  latency: {_pcts(r['latency'])}; statuses {r['statuses']}")
    if r := results.get("store"):
        print("\nstore cost per operation (ms) by collection size:")
        for row in r["by_size"]:
            print(
                f"  {row['documents']:>6} docs: insert {row['insert_one_ms']}, "
                f"find_one _id {row['find_one_by_id_ms']}, "
                f"find by indexed field {row['find_by_indexed_field_ms']}, "
                f"update_one _id {row['update_one_by_id_ms']}"
            )
    for name in ("resume", "listable", "ingest", "decisions"):
        if (r := results.get(name)) and r.get("cpu"):
            cpu = ", ".join(f"{k} {v['cores']}" for k, v in r["cpu"].items())
            print(f"cores busy during {name} ({r['wall_s']} s): {cpu}")
