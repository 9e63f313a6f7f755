"""The hitl demo: a banking agent pauses for approval, a reviewer approves, it resumes.

Run through `deploy/demo.sh`, which starts the stack first.
"""

import asyncio
import json
import os
import sys
import time
from typing import Any

import httpx

AGENT = f"http://127.0.0.1:{os.environ.get('AGENT_PORT', '8082')}"
APPROVAL = f"http://127.0.0.1:{os.environ.get('APPROVAL_PORT', '8081')}"
TOKEN = os.environ.get("HITL_REVIEWER_TOKEN", "dev-reviewer-token")
# The agent API's development token (principal `developer`); the runs are theirs.
AGENT_TOKEN = os.environ.get("HITL_AGENT_TOKEN", "dev-agent-token")
TIMEOUT = 60.0


def show(title: str, value: Any = None) -> None:
    print(f"\n\033[1m{title}\033[0m")
    if value is not None:
        print(json.dumps(value, indent=2, default=str) if not isinstance(value, str) else value)


async def poll(what: str, probe: Any) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if result := await probe():
            return result
        await asyncio.sleep(0.1)
    sys.exit(f"demo failed: gave up waiting for {what} after {TIMEOUT:.0f}s (see service logs)")


async def run_task(agent: httpx.AsyncClient, text: str) -> str:
    response = await agent.post("/v1/runs", json={"input": text, "agent": "banking"})
    response.raise_for_status()
    run_id: str = response.json()["run_id"]
    show(f"submitted {text!r}", f"run_id: {run_id}")
    return run_id


async def settled(agent: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        state: dict[str, Any] = (await agent.get(f"/v1/runs/{run_id}")).json()
        return state if state["status"] in {"awaiting_approval", "completed", "failed"} else None

    result: dict[str, Any] = await poll(f"run {run_id}", probe)
    return result


async def main() -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx.AsyncClient(
            base_url=AGENT, headers={"Authorization": f"Bearer {AGENT_TOKEN}"}, timeout=30
        ) as agent,
        httpx.AsyncClient(base_url=APPROVAL, headers=headers, timeout=30) as reviewer,
    ):
        show("balances before", (await agent.get("/v1/accounts")).json())

        run_id = await run_task(agent, "Transfer 500 to Alice")
        state = await settled(agent, run_id)
        show(f"run status: {state['status']}")

        async def pending() -> list[Any]:
            page = (
                await reviewer.get("/v1/approvals", params={"status": "pending", "run_id": run_id})
            ).json()
            items: list[Any] = page["items"]
            return items

        (approval,) = await poll("the pending approval", pending)
        cid = approval["correlation_id"]
        request = approval["request"]
        show(
            "pending approval",
            {
                "correlation_id": cid,
                "tool": request["tool"],
                "arguments": request["arguments"],
                "reason": request["reason"],
                "risk_level": request["risk_level"],
                "expires_at": request["expires_at"],
            },
        )
        show("balances while it waits (unchanged)", (await agent.get("/v1/accounts")).json())
        show(
            "deciding it through the REST API, as this command would:",
            f"curl -X POST {APPROVAL}/v1/approvals/{cid}/decision \\\n"
            f"  -H 'Authorization: Bearer {TOKEN}' -H 'Content-Type: application/json' \\\n"
            '  -d \'{"decision": "approve", "comment": "demo approval"}\'',
        )
        decided = await reviewer.post(
            f"/v1/approvals/{cid}/decision",
            json={"decision": "approve", "comment": "demo approval"},
        )
        decided.raise_for_status()
        show("approval status", decided.json()["status"])

        async def completed() -> dict[str, Any] | None:
            s: dict[str, Any] = (await agent.get(f"/v1/runs/{run_id}")).json()
            return s if s["status"] in {"completed", "failed"} else None

        done = await poll("the run to complete", completed)
        show(f"run {done['status']}", done["output"] or done["error"])

        run_id = await run_task(agent, "Transfer 50 to Bob")
        state = await settled(agent, run_id)
        show(f"run {state['status']} with no approval", state["output"])

        show("balances after", (await agent.get("/v1/accounts")).json())


async def drop_database() -> None:
    """Remove the demo's own database (deploy/demo.sh calls this after a plain run)."""
    from pymongo import AsyncMongoClient

    name = os.environ["MONGODB_DATABASE"]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(os.environ["MONGODB_URL"])
    await client.drop_database(name)
    await client.close()
    print(f"dropped demo database {name}")


if __name__ == "__main__":
    asyncio.run(drop_database() if "--drop-database" in sys.argv else main())
