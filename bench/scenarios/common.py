"""Helpers the scenarios share: store sizes, waiting for approvals to be listed."""

import asyncio
import time
import uuid

import httpx
from pymongo import AsyncMongoClient

from tests.support.stack import DEV_TOKEN, Stack

START_ATTEMPTS = 10
COLLECTIONS = (
    "approval_events",
    "approvals",
    "approvals_archive",
    "runs",
    "run_steps",
    "run_outbox",
    "tool_executions",
    "ledger",
)


async def store_size(mongodb_url: str, database: str) -> dict[str, int]:
    """Documents per collection: on FerretDB 1.x most lookups cost time linear in these.

    From `collStats` (the backend's own row count: SQLite's ANALYZE, PostgreSQL's
    estimate), not `count_documents`, which FerretDB 1.x answers by decoding every
    document: at 100k runs of history that took minutes per scenario and loaded the
    store between the scenarios it measures.
    """
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
    try:
        db = client[database]
        names = set(await db.list_collection_names())
        sizes = {}
        for name in COLLECTIONS:
            if name in names:
                stats = await db.command("collStats", name)
                sizes[name] = int(stats.get("count", 0))
        return sizes
    finally:
        await client.close()


async def stored_approvals(mongodb_url: str, database: str) -> int:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
    try:
        return await client[database]["approvals"].count_documents({})
    finally:
        await client.close()


async def pending_ids(reviewer: httpx.AsyncClient, *, deadline: float | None = None) -> list[str]:
    """Every pending approval's id, paging through the reviewer's queue. A 503 (the store
    was slow) is retried after the pause the API asks for, until `deadline` (monotonic)."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params = {"status": "pending", "limit": "500", **({"cursor": cursor} if cursor else {})}
        response = await reviewer.get("/v1/approvals", params=params)
        if response.status_code == 503 and time.monotonic() < (deadline or 0.0):
            await asyncio.sleep(min(float(response.headers.get("Retry-After", "1")), 2.0))
            continue
        page = response.raise_for_status().json()
        ids += [item["correlation_id"] for item in page["items"]]
        if not (cursor := page.get("next_cursor")):
            return ids


async def wait_listed(reviewer: httpx.AsyncClient, wanted: set[str], *, timeout: float) -> None:
    """Page through pending approvals until every id in `wanted` is listed."""
    deadline = time.monotonic() + timeout
    while True:
        missing = wanted - set(await pending_ids(reviewer, deadline=deadline))
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(missing)} approvals still not listed after {timeout}s")
        await asyncio.sleep(0.2)


async def clear_pending(stack: Stack, *, clients: int = 16) -> int:
    """Reject, through the API, every approval still pending (unmeasured, between units):
    `started` leaves its runs paused and `ingest` 2,000 requests without runs, and the
    queue's size is not what the next unit (or the next round) measures. Returns how
    many were rejected."""
    async with reviewer(stack, connections=clients) as client:
        ids = await pending_ids(client, deadline=time.monotonic() + 60)
        queue: asyncio.Queue[str] = asyncio.Queue()
        for cid in ids:
            queue.put_nowait(cid)

        async def worker() -> None:
            while not queue.empty():
                cid = queue.get_nowait()
                for _ in range(START_ATTEMPTS):
                    response = await client.post(
                        f"/v1/approvals/{cid}/decision",
                        json={"decision": "reject", "comment": "bench: clearing the queue"},
                    )
                    if response.status_code != 503:  # 503: the store was slow; as asked, retry
                        break
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                # 409: decided meanwhile (a timeout); anything else is a real failure.
                if response.status_code not in (200, 409):
                    response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(clients)))
    return len(ids)


async def start_run(agent: httpx.AsyncClient, text: str = "Transfer 500 to alice") -> str:
    """POST /v1/runs as a careful client: a 503 is retried with the same Idempotency-Key
    (the API's contract), so a busy store costs time, as it would a user, not the run."""
    key = uuid.uuid4().hex
    for _ in range(START_ATTEMPTS):
        response = await agent.post(
            "/v1/runs", json={"input": text}, headers={"Idempotency-Key": key}
        )
        if response.status_code != 503:
            return str(response.raise_for_status().json()["run_id"])
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    raise RuntimeError(f"POST /v1/runs answered 503 {START_ATTEMPTS} times")


def reviewer(stack: Stack, *, connections: int = 100) -> httpx.AsyncClient:
    """A reviewer's client with keep-alive, so no scenario measures TCP set-up."""
    return httpx.AsyncClient(
        base_url=stack.url("approval"),
        headers={"Authorization": f"Bearer {DEV_TOKEN}"},
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=60,
    )
