"""A Pydantic AI agent whose payments wait for a human in hitl.

    python payables.py start <conversation-id> "Pay ACME's invoice 4711: 1200 to acme"
    python payables.py serve        # continues every conversation once it is decided
    python payables.py show <conversation-id>

Environment: HITL_APPROVAL_URL (default http://127.0.0.1:8081), HITL_TOKEN (a token
with the `agent` role), MONGODB_URL (default mongodb://127.0.0.1:27017/) and
MONGODB_DATABASE (default payables),
OPENAI_API_KEY and optionally OPENAI_BASE_URL / OPENAI_MODEL (any OpenAI-compatible
server).
"""

import asyncio
import dataclasses
import json
import os
import sys
from typing import Any

from hitl_client import AsyncClient
from hitl_client.bridges.pydantic_ai import ApprovalPolicy, PydanticAIBridge, idempotency_key
from pydantic_ai import Agent, DeferredToolRequests, RunContext
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
    os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
)
db = mongo[os.environ.get("MONGODB_DATABASE", "payables")]

model = OpenAIChatModel(
    os.environ.get("OPENAI_MODEL", "gpt-4.1-mini"),
    provider=OpenAIProvider(base_url=os.environ.get("OPENAI_BASE_URL")),
)
agent: Agent[None, str | DeferredToolRequests] = Agent(
    model,
    output_type=[str, DeferredToolRequests],
    instructions="You pay vendor invoices with the transfer tool.",
)


@agent.tool(requires_approval=True)
async def transfer(ctx: RunContext[None], to_account: str, amount: float) -> str:
    """Transfer `amount` to a vendor's account."""
    try:  # the effect is one insert keyed by the call: a retried call finds it done
        await db.payments.insert_one(
            {"_id": idempotency_key(ctx), "to": to_account, "amount": amount}
        )
    except DuplicateKeyError:
        return f"Already paid {amount:g} to {to_account}."
    return f"Paid {amount:g} to {to_account}."


bridge = PydanticAIBridge(
    agent,
    hitl=AsyncClient(),  # $HITL_APPROVAL_URL, $HITL_TOKEN
    db=db,
    name="payables",
    policies={
        "transfer": ApprovalPolicy(
            reason="payments need a human",
            risk_level="high",
            timeout=3600,
            edit_policy={"locked": ["to_account"], "not_above": ["amount"]},
        )
    },
    idempotent={"transfer"},
)


async def main(command: str, *args: str) -> None:
    if command == "serve":
        await bridge.serve()
        return
    if command == "start":
        turn = await bridge.start(args[0], args[1])
    elif command == "show":
        turn = await bridge.turn(args[0])
    else:
        raise SystemExit(__doc__)
    print(json.dumps(dataclasses.asdict(turn), indent=2))


if __name__ == "__main__":
    asyncio.run(main(*(sys.argv[1:] or ["help"])))
