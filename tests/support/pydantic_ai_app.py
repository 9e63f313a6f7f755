"""A Pydantic AI agent behind hitl's bridge, run as its own process by the e2e tests.

    python -m tests.support.pydantic_ai_app start <conversation> <prompt>   # prints the Turn
    python -m tests.support.pydantic_ai_app resume <conversation> [wait]    # prints the Turn
    python -m tests.support.pydantic_ai_app serve

Environment: HITL_APPROVAL_URL, HITL_TOKEN (the bridge's identity), MONGODB_URL,
BRIDGE_DATABASE, OPENAI_BASE_URL (the scripted server), HITL_BRIDGE_INSTANCE,
BRIDGE_TIMEOUT (seconds reviewers have), BRIDGE_HOLD (`before` / `after`: the transfer
tool stops before / after its effect and waits to be killed, once it said so in `holds`).
"""

import asyncio
import dataclasses
import faulthandler
import json
import os
import signal
import sys
from typing import Any

from hitl_client import AsyncClient
from hitl_client.bridges.pydantic_ai import ApprovalPolicy, PydanticAIBridge, idempotency_key
from pydantic_ai import Agent, ApprovalRequired, DeferredToolRequests, RunContext
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(os.environ["MONGODB_URL"])
db: AsyncDatabase[dict[str, Any]] = mongo[os.environ["BRIDGE_DATABASE"]]

model = OpenAIChatModel(
    "scripted",
    provider=OpenAIProvider(base_url=os.environ["OPENAI_BASE_URL"], api_key="test-key"),
)
agent: Agent[None, str | DeferredToolRequests] = Agent(
    model, output_type=[str, DeferredToolRequests], instructions="You move money."
)


async def hold(point: str, ctx: RunContext[None]) -> None:
    if os.environ.get("BRIDGE_HOLD") == point:
        await db.holds.insert_one(
            {"_id": idempotency_key(ctx), "conversation": ctx.conversation_id, "point": point}
        )
        await asyncio.sleep(3600)  # until the test kills this process


@agent.tool(requires_approval=True)
async def transfer(ctx: RunContext[None], to_account: str, amount: float) -> str:
    """Transfer money to an account."""
    key = idempotency_key(ctx)
    await hold("before", ctx)
    try:
        # The effect is one insert keyed by the call: a second run of the call finds it.
        await db.ledger.insert_one(
            {"_id": key, "conversation": ctx.conversation_id, "to": to_account, "amount": amount}
        )
    except DuplicateKeyError:
        return f"Already paid {amount:g} to {to_account}."
    await hold("after", ctx)
    return f"Paid {amount:g} to {to_account}."


@agent.tool
async def delete_file(ctx: RunContext[None], path: str) -> str:
    """Delete a file; anything outside /tmp needs a human (decided when called)."""
    if not path.startswith("/tmp/") and not ctx.tool_call_approved:
        raise ApprovalRequired(metadata={"why": "outside /tmp"})
    await db.deleted.insert_one(
        {"_id": idempotency_key(ctx), "conversation": ctx.conversation_id, "path": path}
    )
    return f"Deleted {path}."


def bridge() -> PydanticAIBridge:
    timeout = float(os.environ.get("BRIDGE_TIMEOUT", "3600"))
    return PydanticAIBridge(
        agent,
        hitl=AsyncClient(verify="require"),
        db=db,
        name="payables",
        policies={
            "transfer": ApprovalPolicy(
                reason="payments need a human", risk_level="high", timeout=timeout
            ),
            "delete_file": ApprovalPolicy(timeout=timeout),
        },
        idempotent={"transfer", "delete_file"},
    )


async def main(command: str, *args: str) -> None:
    b = bridge()
    if command == "serve":
        await b.serve(idle=0.2, wait=30)
        return
    if command == "start":
        turn = await b.start(args[0], args[1])
    elif command == "resume":
        turn = await b.resume(args[0], wait=float(args[1]) if len(args) > 1 else 0)
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(dataclasses.asdict(turn)))


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1)  # a test that finds this process hung asks where
    asyncio.run(main(*sys.argv[1:]))
