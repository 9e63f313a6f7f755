"""An OpenAI Agents SDK agent that pays invoices; a human approves each transfer in hitl.

    export HITL_APPROVAL_URL=http://127.0.0.1:8081 HITL_TOKEN=my-runtime-token
    export MONGODB_URL=mongodb://127.0.0.1:27017/ OPENAI_API_KEY=sk-...
    python examples/openai_agents/payables.py start invoice-4711 "Pay ACME 1200 for invoice 4711"
    python examples/openai_agents/payables.py serve   # continues runs as they are decided
    python examples/openai_agents/payables.py status invoice-4711

`start` takes the run as far as it goes without a human and prints where it stopped;
`serve` (any number of them, restarted at will) continues every open run when its
approvals are decided. Payments land in the `payments` collection, one per approved call
(keyed by the call's idempotency key). Settings (environment): OPENAI_BASE_URL and
OPENAI_MODEL (any OpenAI-compatible chat completions server), PAYABLES_DB (default
`payables`), PAYABLES_APPROVAL_TIMEOUT (seconds, default 1800), PAYABLES_LEASE_SECONDS
(default 120). To see a crash handled: PAYABLES_PAUSE_AT=before (or after) with
PAYABLES_PAUSE_FILE=/tmp/x makes the first transfer wait there (the file says so): kill -9
the process, start `serve` again, and the invoice is paid once.
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from agents import Agent, OpenAIChatCompletionsModel, RunConfig, function_tool
from hitl_client import AsyncClient
from hitl_client.bridges.openai_agents import AgentsBridge, idempotency_key
from openai import AsyncOpenAI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError


def payables_agent(db: AsyncDatabase[dict[str, Any]]) -> Agent[Any]:
    @function_tool(needs_approval=True)
    async def transfer(to_account: str, amount: float) -> str:
        """Pay `amount` to `to_account`."""
        key = idempotency_key()  # the same on a re-run after a crash
        await _pause("before")
        # A duplicate: paid by an attempt that crashed before it could say so.
        with contextlib.suppress(DuplicateKeyError):
            await db.payments.insert_one({"_id": key, "to_account": to_account, "amount": amount})
        await _pause("after")
        return f"sent {amount:g} to {to_account}"

    model = OpenAIChatCompletionsModel(
        model=os.environ.get("OPENAI_MODEL", "gpt-4.1-mini"), openai_client=AsyncOpenAI()
    )
    return Agent(
        name="payables",
        instructions="You pay supplier invoices with the transfer tool.",
        tools=[transfer],
        model=model,
    )


async def _pause(where: str) -> None:
    marker = os.environ.get("PAYABLES_PAUSE_FILE")
    if os.environ.get("PAYABLES_PAUSE_AT") == where and marker and _first(Path(marker), where):
        await asyncio.sleep(3600)


def _first(marker: Path, where: str) -> bool:
    """True once: creates `marker`, so the restarted process goes on."""
    try:
        with marker.open("x") as file:
            file.write(where)
    except FileExistsError:
        return False
    return True


async def main(command: str, *args: str) -> None:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
    )
    db = mongo[os.environ.get("PAYABLES_DB", "payables")]
    async with AsyncClient() as hitl:  # $HITL_APPROVAL_URL, $HITL_TOKEN
        bridge = AgentsBridge(
            payables_agent(db),
            hitl=hitl,
            db=db,
            reason="payments need a human",
            risk_level="high",
            timeout=float(os.environ.get("PAYABLES_APPROVAL_TIMEOUT", "1800")),
            lease_seconds=float(os.environ.get("PAYABLES_LEASE_SECONDS", "120")),
            # Traces go to OpenAI's platform; not when the model is someone else's server.
            run_config=RunConfig(tracing_disabled="OPENAI_BASE_URL" in os.environ),
        )
        match command, args:
            case "start", (run_id, text):
                print(json.dumps(dataclasses.asdict(await bridge.start(run_id, text))))
            case "status", (run_id,):
                print(json.dumps(dataclasses.asdict(await bridge.status(run_id))))
            case "serve", ():
                await bridge.ensure_indexes()
                logging.info("serving runs of %s", db.name)
                await bridge.serve(poll=float(os.environ.get("PAYABLES_POLL_SECONDS", "2")))
            case _:
                sys.exit(__doc__)
    await mongo.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(main(*sys.argv[1:]))
