"""Transfers a second through the banking demo's ledger, all on one account pair.

`uv run python -m bench.ledger_throughput [--transfers 400] [--ledgers 1] [--rate 0] [--url URL]`

The benchmark's workload in miniature: every approved "Transfer 500 to alice" moves
money checking -> alice, so all of them append to the same two balance chains.
`--ledgers N` splits the transfers over N `Ledger` instances, each with its own
client (as N agent processes would be: no group commit or turn-taking between them).
`--funds` opens `checking` with only that much, so some transfers are refused.
`--rate R` starts the transfers open loop at R a second (0: all at once) and reports
each one's latency, from its start to its balances returned.
The figures are checked before they are printed: no account below zero, the money
conserved, one ledger entry per transfer applied.
"""

import argparse
import asyncio
import os
import time
import uuid

from hitl_demo.ledger import LEDGER, InsufficientFunds, Ledger
from hitl_shared.mongo import Document
from pymongo import AsyncMongoClient

CENTS = 50_000  # "Transfer 500"


async def measure(url: str, transfers: int, ledgers: int, funds: float, rate: float) -> str:
    clients: list[AsyncMongoClient[Document]] = [
        AsyncMongoClient(url, tz_aware=True) for _ in range(ledgers)
    ]
    name = f"bench_ledger_{uuid.uuid4().hex[:8]}"
    try:
        replicas = [Ledger(client[name]) for client in clients]
        await replicas[0].seed({"checking": funds, "alice": 0})
        # What a running agent has done before: it knows both chains' heads.
        for ledger in replicas:
            await ledger.balances()

        latencies: list[float] = []

        async def transfer(i: int) -> bool:
            if rate:
                await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            begun = time.perf_counter()
            try:
                await replicas[i % ledgers].post(
                    f"run{i}:call", source="checking", target="alice", cents=CENTS
                )
            except InsufficientFunds:
                return False
            finally:
                latencies.append(time.perf_counter() - begun)
            return True

        started = time.perf_counter()
        done = await asyncio.gather(*(transfer(i) for i in range(transfers)))
        elapsed = time.perf_counter() - started
        latencies.sort()
        p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
        applied = done.count(True)
        check = Ledger(clients[0][name])
        balances = await check.balances()
        entries = await clients[0][name][LEDGER].count_documents({})
        assert min(balances.values()) >= 0, balances
        assert round(sum(balances.values()), 2) == funds, balances
        assert entries == applied, (entries, applied)
        assert balances["alice"] == applied * CENTS / 100, (balances, applied)
        offered = f"offered at {rate:g}/s" if rate else "all at once"
        return (
            f"{transfers} transfers over {ledgers} ledger(s), {offered}: {elapsed:.2f} s, "
            f"{transfers / elapsed:.1f}/s ({applied} applied, {transfers - applied} refused); "
            f"latency p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms; balances {balances}"
        )
    finally:
        await clients[0].drop_database(name)
        for client in clients:
            await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=400)
    parser.add_argument("--ledgers", type=int, default=1)
    parser.add_argument("--funds", type=float, default=10_000_000.0)
    parser.add_argument("--rate", type=float, default=0.0, help="transfers started a second")
    parser.add_argument(
        "--url", default=os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27018/")
    )
    args = parser.parse_args()
    print(asyncio.run(measure(args.url, args.transfers, args.ledgers, args.funds, args.rate)))


if __name__ == "__main__":
    main()
