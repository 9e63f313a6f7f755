"""Transfers a second through the banking demo's ledger, all on one account pair.

`uv run python -m bench.ledger_throughput [--transfers 400] [--ledgers 1] [--url URL]`

The benchmark's workload in miniature: every approved "Transfer 500 to alice" moves
money checking -> alice, so all of them append to the same two balance chains.
`--ledgers N` splits the transfers over N `Ledger` instances, each with its own
client (as N agent processes would be: no group commit or turn-taking between them).
`--funds` opens `checking` with only that much, so some transfers are refused.
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


async def measure(url: str, transfers: int, ledgers: int, funds: float) -> str:
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

        async def transfer(i: int) -> bool:
            try:
                await replicas[i % ledgers].post(
                    f"run{i}:call", source="checking", target="alice", cents=CENTS
                )
            except InsufficientFunds:
                return False
            return True

        started = time.perf_counter()
        done = await asyncio.gather(*(transfer(i) for i in range(transfers)))
        elapsed = time.perf_counter() - started
        applied = done.count(True)
        check = Ledger(clients[0][name])
        balances = await check.balances()
        entries = await clients[0][name][LEDGER].count_documents({})
        assert min(balances.values()) >= 0, balances
        assert round(sum(balances.values()), 2) == funds, balances
        assert entries == applied, (entries, applied)
        assert balances["alice"] == applied * CENTS / 100, (balances, applied)
        return (
            f"{transfers} transfers over {ledgers} ledger(s): {elapsed:.2f} s, "
            f"{transfers / elapsed:.1f}/s ({applied} applied, {transfers - applied} refused); "
            f"balances {balances}"
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
    parser.add_argument(
        "--url", default=os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27018/")
    )
    args = parser.parse_args()
    print(asyncio.run(measure(args.url, args.transfers, args.ledgers, args.funds)))


if __name__ == "__main__":
    main()
