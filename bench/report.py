"""Human-readable output: progress lines, then a table of figures against the targets."""

import statistics
import sys
from typing import Any

# The "must reach" column of the performance issue; a benchmark reports, nothing asserts.
# decision -> tool_executed, p50 / p99 ms, by decisions/s
EFFECT_TARGETS = {5: (100.0, 250.0), 50: (150.0, 500.0)}
TARGETS = {
    "started": 80.0,  # start -> paused and listable, p50 ms
    "ingest": 1000.0,  # approval.requested stored per s
    "effects_16": 50.0,  # decisions/s with 16 clients, effects done within 2 s of the last
    "pss_idle": 300.0,  # MiB, the three services
    "pss_load": 450.0,
}
SERVICES = ("approval", "agent", "notifier")


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _pcts(summary: dict[str, Any]) -> str:
    if not summary.get("n"):
        return "no samples"
    return f"p50 {summary['p50_ms']} / p95 {summary['p95_ms']} / p99 {summary['p99_ms']} ms"


def _services_pss(pss: dict[str, float]) -> float:
    return round(sum(v for k, v in pss.items() if k in SERVICES), 1)


def rounds_of(h: dict[str, Any]) -> list[dict[str, Any]]:
    """A history size's rounds (scenario -> figures); a file from before rounds has one."""
    return h.get("rounds") or [h]


def _print_history(h: dict[str, Any]) -> None:
    print(f"\n-- with {h['history_runs']} finished runs in the store --")
    if seeded := h.get("seeded"):
        print(
            f"  seeded {seeded.get('documents_written', 0)} documents in {seeded.get('seconds')} s"
        )
    if warm := h.get("warmup"):
        print(
            f"  warm-up: {warm['decisions']} decisions (unmeasured) in {warm['seconds']} s,"
            f" quiet {warm.get('settled_s', 0)} s later"
        )
    every = rounds_of(h)
    for number, one in enumerate(every, 1):
        if len(every) > 1:
            print(f"  round {number} of {len(every)}:")
        _print_round(one)
    if idle := h.get("pss_mib_idle"):
        peak = max(
            [_services_pss(idle)]
            + [
                _services_pss(r.get("pss_mib_after", {}))
                for rnd in rounds_of(h)
                for name in ("started", "listable", "ingest", "decisions")
                if (r := rnd.get(name))
            ]
            + [
                _services_pss(r.get("pss_mib_after", {}))
                for rnd in rounds_of(h)
                for name in ("resume", "effects")
                for r in (rnd.get(name) or {}).values()
            ]
        )
        print(
            f"  PSS of the three services: idle {_services_pss(idle)} MiB "
            f"({_met(_services_pss(idle) <= TARGETS['pss_idle'])} <= {TARGETS['pss_idle']:.0f}), "
            f"after load {peak} MiB ({_met(peak <= TARGETS['pss_load'])} <= "
            f"{TARGETS['pss_load']:.0f}); store/broker: "
            + ", ".join(f"{k} {v}" for k, v in idle.items() if k not in SERVICES)
        )
    for number, rnd in enumerate(rounds_of(h), 1):
        at = f" (round {number})" if len(rounds_of(h)) > 1 else ""
        for name in ("started", "listable", "ingest", "decisions"):
            if (r := rnd.get(name)) and r.get("cpu"):
                _cores(name + at, r)
        for name in ("resume", "effects"):
            for key, r in (rnd.get(name) or {}).items():
                if r.get("cpu"):
                    _cores(f"{name} {key}{at}", r)


def _print_round(h: dict[str, Any]) -> None:
    for rate, r in (h.get("resume") or {}).items():
        p = r["send_to_tool_executed"]
        target = EFFECT_TARGETS.get(int(float(rate)))
        verdict = ""
        if target and p.get("n"):
            verdict = f"   target p50 <= {target[0]:.0f} / p99 <= {target[1]:.0f}: " + _met(
                p["p50_ms"] <= target[0] and p["p99_ms"] <= target[1]
            )
        print(f"  decision -> tool_executed at {r['achieved_rate_per_s']}/s : {_pcts(p)}{verdict}")
        print(f"      decision -> resumed              : {_pcts(r['send_to_resumed'])}")
        print(f"      decision HTTP                    : {_pcts(r['decision_http'])}")
        missing = sum(r["not_done_within_s"].values())
        if missing or set(r["statuses"]) != {"200"}:
            print(f"      statuses {r['statuses']}; not done in time: {missing}")
    for clients, r in (h.get("effects") or {}).items():
        verdict = ""
        if clients == "16":
            within = r["last_effect_after_last_decision_s"] <= 2.0
            verdict = f"   target >= {TARGETS['effects_16']:.0f}/s within 2 s: " + _met(
                within and r["decisions_per_s"] >= TARGETS["effects_16"]
            )
        print(
            f"  {clients} clients: {r['decisions_per_s']} decisions/s, {r['effects_per_s']} "
            f"effects/s, last effect {r['last_effect_after_last_decision_s']} s after the "
            f"last decision{verdict}"
        )
    if r := h.get("started"):
        p = r["started_to_listed"]
        ok = bool(p.get("n")) and p["p50_ms"] <= TARGETS["started"]
        print(
            f"  start -> paused and listable       : {_pcts(p)}   target p50 <= "
            f"{TARGETS['started']:.0f}: {_met(ok)}"
        )
    if r := h.get("listable"):
        print(f"  approval.requested -> listable     : {_pcts(r['published_to_listed'])}")
    if r := h.get("ingest"):
        print(
            f"  ingestion: {r['stored_per_s']}/s (steady {r['steady_stored_per_s']}/s)   "
            f"target >= {TARGETS['ingest']:.0f}/s: {_met(r['stored_per_s'] >= TARGETS['ingest'])}"
        )
    if r := h.get("decisions"):
        print(
            f"  decisions without runs: {r['decisions_per_s']}/s by {r['concurrency']} clients; "
            f"{_pcts(r['latency'])}"
        )


def _cores(name: str, r: dict[str, Any]) -> None:
    cpu = ", ".join(f"{k} {v['cores']}" for k, v in r["cpu"].items())
    load = r.get("load_average", {}).get("after")
    loop = r.get("loop_ms", {})
    speed = f", loop {loop.get('before')}/{loop.get('after')} ms" if loop else ""
    print(f"  cores busy during {name} ({r['wall_s']} s, load {load}{speed}): {cpu}")


HISTORY_RATIO = 1.5  # every figure at the largest history within this factor of the smallest


def _slowest_loop(r: dict[str, Any]) -> float | None:
    """The machine's speed around a scenario: the slower of the fixed loop's two timings."""
    loop = r.get("loop_ms") or {}
    timings = [v for v in (loop.get("before"), loop.get("after")) if v is not None]
    return max(timings) if timings else None


def _round_figures(h: dict[str, Any]) -> dict[str, tuple[float, bool, float | None]]:
    """The figures of one round that the ratio compares: value, higher is better,
    and the machine's speed around the scenario it comes from (loop ms)."""
    out: dict[str, tuple[float, bool, float | None]] = {}
    for rate, r in (h.get("resume") or {}).items():
        for key, label in (("send_to_tool_executed", "tool_executed"), ("decision_http", "HTTP")):
            p = r[key]
            if p.get("n"):
                loop = _slowest_loop(r)
                out[f"decision -> {label} at {rate}/s, p50 ms"] = (p["p50_ms"], False, loop)
                out[f"decision -> {label} at {rate}/s, p99 ms"] = (p["p99_ms"], False, loop)
    for clients, r in (h.get("effects") or {}).items():
        out[f"{clients} clients: decisions/s"] = (r["decisions_per_s"], True, _slowest_loop(r))
        out[f"{clients} clients: effects/s"] = (r["effects_per_s"], True, _slowest_loop(r))
    if (r := h.get("started")) and r["started_to_listed"].get("n"):
        out["start -> paused and listable, p50 ms"] = (
            r["started_to_listed"]["p50_ms"],
            False,
            _slowest_loop(r),
        )
    if (r := h.get("listable")) and r["published_to_listed"].get("n"):
        out["approval.requested -> listable, p50 ms"] = (
            r["published_to_listed"]["p50_ms"],
            False,
            _slowest_loop(r),
        )
    if r := h.get("ingest"):
        out["ingestion, stored/s"] = (r["stored_per_s"], True, _slowest_loop(r))
    if r := h.get("decisions"):
        out["decisions without runs, /s"] = (r["decisions_per_s"], True, _slowest_loop(r))
    return out


def figures(
    h: dict[str, Any],
) -> dict[str, tuple[float, bool, float | None, list[float | None]]]:
    """A history size's figures: the median over the rounds that have it, and the median
    of the machine's speed around them; each round's value kept in round order (None
    where a round has no such figure: no samples, or a run cut short)."""
    every = [_round_figures(r) for r in rounds_of(h)]
    names = {name: f[name][1] for f in every for name in f}
    out: dict[str, tuple[float, bool, float | None, list[float | None]]] = {}
    for name, higher_better in names.items():
        by_round = [f[name][0] if name in f else None for f in every]
        values = [v for v in by_round if v is not None]
        loops = [loop for f in every if name in f and (loop := f[name][2]) is not None]
        out[name] = (
            round(statistics.median(values), 2),
            higher_better,
            round(statistics.median(loops), 1) if loops else None,
            by_round,
        )
    return out


def _worse_by(a: float, b: float, higher_better: bool) -> float:
    if higher_better:
        return a / b if b else float("inf")
    return b / a if a else float("inf")


def history_ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each figure at the largest history against the smallest, two ways: the factor of
    the two sizes' medians, and the median of the rounds' own factors (a round's units ran
    back to back on both sizes). `met` only when both are within the bound."""
    by = sorted(results.get("by_history", []), key=lambda h: h["history_runs"])
    if len(by) < 2:
        return []
    small, large = figures(by[0]), figures(by[-1])
    rows = []
    for name, (a, higher_better, loop_a, rounds_a) in small.items():
        if name not in large or not a:
            continue
        b, _, loop_b, rounds_b = large[name]
        worse = _worse_by(a, b, higher_better)
        # Paired by round number; a round either size lacks the figure in is left out.
        paired = (
            [
                round(_worse_by(x, y, higher_better), 2)
                for x, y in zip(rounds_a, rounds_b, strict=True)
                if x and y is not None
            ]
            if len(rounds_a) == len(rounds_b)
            else []
        )
        paired_median = round(statistics.median(paired), 2) if paired else None
        rows.append(
            {
                "figure": name,
                "small": a,
                "large": b,
                "worse_by": round(worse, 2),
                "worse_by_paired": paired_median,
                "met": worse <= HISTORY_RATIO
                and (paired_median is None or paired_median <= HISTORY_RATIO),
                # The same fixed Python loop timed around each scenario: when the machine
                # itself ran slower for one of the two, the ratio measures that too.
                "loop_ms": [loop_a, loop_b],
                "rounds": len(paired) or 1,
                "worse_by_round": paired,
            }
        )
    return rows


def print_summary(results: dict[str, Any]) -> None:
    config = results["configuration"]
    print("\n== hitl benchmark ==")
    print(
        f"store: {config['store']} on {config.get('store_backend', 'sqlite')}; kafka partitions {config['kafka_partitions']}, "
        f"fetch_max_wait_ms {config['kafka_fetch_max_wait_ms']}, "
        f"linger_ms {config['kafka_linger_ms']}; {config['cores']} cores; "
        f"commit {config['commit']}"
    )
    for h in results.get("by_history", []):
        _print_history(h)
    if rows := history_ratios(results):
        sizes = sorted(h["history_runs"] for h in results["by_history"])
        print(
            f"\n-- {sizes[-1]} vs {sizes[0]} finished runs: how much worse "
            f"(target within {HISTORY_RATIO}x) --"
        )
        counted = max(row.get("rounds", 1) for row in rows)
        if counted > 1:
            print(
                f"  (each figure the median of {counted} rounds; the two sizes' units of a "
                "round ran back to back; met only when both the factor of the medians and "
                "the median of the rounds' own factors are within the bound)"
            )
        print("  (loop: the machine's speed around each of the two scenarios, slower timing)")
        for row in rows:
            loop_a, loop_b = row.get("loop_ms") or [None, None]
            speed = f"  loop {loop_a} / {loop_b} ms" if loop_a and loop_b else ""
            each = row.get("worse_by_round") or []
            paired = (
                f"  paired median x{row['worse_by_paired']}, rounds x{' x'.join(map(str, each))}"
                if len(each) > 1
                else ""
            )
            print(
                f"  {row['figure']:<45} {row['small']:>9} -> {row['large']:>9}  "
                f"x{row['worse_by']}  {_met(row['met'])}{speed}{paired}"
            )
    if r := results.get("store"):
        print("\nstore cost per operation (ms) by collection size:")
        for row in r["by_size"]:
            print(
                f"  {row['documents']:>6} docs: insert {row['insert_one_ms']}, "
                f"find_one _id {row['find_one_by_id_ms']}, "
                f"find by indexed field {row['find_by_indexed_field_ms']}, "
                f"update_one _id {row['update_one_by_id_ms']}"
            )
        for row in r.get("concurrent_writers", []):
            print(
                f"  {row['writers']:>2} concurrent writers: {row['inserts_per_s']} durable inserts/s, "
                f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms"
            )
