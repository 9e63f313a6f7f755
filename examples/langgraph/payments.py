"""A LangGraph agent that moves money, its pauses decided by reviewers in hitl.

    python examples/langgraph/payments.py start <thread-id> "Pay ACME 1200 for invoice 4711"
    python examples/langgraph/payments.py serve     # resumes threads as decisions arrive

`start` runs the agent until it finishes or pauses on `transfer` (every call needs a
human: HumanInTheLoopMiddleware), and asks hitl; `serve` (any number, any host)
resumes each thread once all of its approvals are decided. Checkpoints live in MongoDB
(`MongoDBSaver`), next to the bridge's own records, so either command may be killed and
restarted at any moment.

Environment: HITL_APPROVAL_URL, HITL_TOKEN (role `agent`: the submitter, whom
four-eyes keeps from approving), MONGODB_URL, PAYMENTS_DB (database, default
`payments`), OPENAI_API_KEY / OPENAI_BASE_URL / OPENAI_MODEL (any OpenAI-compatible
endpoint), PAYMENTS_BRIDGE_OWNER (this bridge's stable name), PAYMENTS_APPROVAL_TIMEOUT
(seconds, default 3600), PAYMENTS_INTERRUPT_MODE (`per_call`, the default, or `batched`),
PAYMENTS_LEASE_SECONDS (how long a killed bridge's resume blocks other owners, default 30).
"""

import asyncio
import os
import signal
import sys
from typing import Any

from hitl_client import AsyncClient
from hitl_client.bridges.langgraph import LangGraphBridge, record_once
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain.tools import ToolRuntime, tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.mongodb import MongoDBSaver
from pymongo import AsyncMongoClient, MongoClient

DB = os.environ.get("PAYMENTS_DB", "payments")
MONGODB_URL = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
ledger = AsyncMongoClient(MONGODB_URL, tz_aware=True)[DB]["ledger"]


@tool
async def transfer(to_account: str, amount: float, runtime: ToolRuntime) -> str:
    """Transfer `amount` from the company's checking account to `to_account`."""
    # The effect is keyed by the tool call: LangGraph re-runs an interrupted node on
    # resume (and after a crash), and a second run must not move the money again.
    thread_id = runtime.config["configurable"]["thread_id"]
    key = f"{thread_id}:{runtime.tool_call_id}"
    moved = await record_once(ledger, key, {"to_account": to_account, "amount": amount})
    crash_after_effect()
    if not moved:
        return f"already moved {amount} to {to_account} (transfer {key})"
    return f"moved {amount} to {to_account}"


def crash_after_effect() -> None:
    """Fault injection for the tests: die once between the effect and LangGraph's record."""
    marker = os.environ.get("PAYMENTS_FAULT_CRASH_AFTER_EFFECT")
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)


def bridge(hitl: AsyncClient) -> LangGraphBridge:
    model = ChatOpenAI(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    review = HumanInTheLoopMiddleware(
        interrupt_on={"transfer": {"allowed_decisions": ["approve", "edit", "reject"]}},
        interrupt_mode=os.environ.get("PAYMENTS_INTERRUPT_MODE", "per_call"),  # type: ignore[arg-type]
        description_prefix="Payments need a human's approval",
    )
    checkpointer = MongoDBSaver(MongoClient(MONGODB_URL), db_name=DB)
    graph = create_agent(model, tools=[transfer], middleware=[review], checkpointer=checkpointer)
    return LangGraphBridge(
        graph,
        hitl=hitl,
        db=AsyncMongoClient(MONGODB_URL, tz_aware=True)[DB],
        agent="payables",
        owner=os.environ.get("PAYMENTS_BRIDGE_OWNER"),
        timeout=float(os.environ.get("PAYMENTS_APPROVAL_TIMEOUT", "3600")),
        lease_seconds=float(os.environ.get("PAYMENTS_LEASE_SECONDS", "30")),
        risk_level="high",
        # A reviewer may lower the amount, never raise it or change the payee.
        edit_policies={"transfer": {"locked": ["to_account"], "not_above": ["amount"]}},
    )


async def main(argv: list[str]) -> None:
    async with AsyncClient() as hitl:
        payments = bridge(hitl)
        if argv[:1] == ["start"] and len(argv) == 3:
            message: dict[str, Any] = {"role": "user", "content": argv[2]}
            approvals = await payments.start(argv[1], {"messages": [message]})
            print(" ".join(approvals) or "finished without a pause")
        elif argv == ["serve"]:
            stop = asyncio.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                asyncio.get_running_loop().add_signal_handler(signum, stop.set)
            await payments.serve(stop)
        else:
            sys.exit(__doc__)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
