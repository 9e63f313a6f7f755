"""The listing, halt, audit and cost routes answer from `views.py`, in process (ASGI)."""

import httpx
from fastapi import FastAPI
from hitl_agent.domain.cost import PriceTable
from hitl_agent.domain.oversight import AuditEntry, Halt
from hitl_agent.entrypoints import cost, live, oversight
from hitl_agent.settings import DEV_AGENT_TOKEN, AgentSettings
from hitl_agent.views import RunViews

from tests.fakes import FakeRunRows, MemoryOversightStore
from tests.support.agent_harness import harness, say

AUTH = {"Authorization": f"Bearer {DEV_AGENT_TOKEN}"}


class NoWorkers:
    """No worker has announced itself: only the runner's own agents are known."""

    async def agents(self) -> tuple[set[str], set[str]]:
        return set(), set()


async def test_runs_halts_audit_and_costs_are_read_through_the_views() -> None:
    h = harness([say("hello")])
    run_id = await h.start(agent="test")
    halts = MemoryOversightStore()
    halts.halted["test"] = Halt(agent="test", reason="audit", by="olga")
    halts.entries.append(AuditEntry(action="halt", agent="test", by="olga", reason="audit"))

    app = FastAPI()
    app.state.settings = AgentSettings(hitl_env="test")
    app.state.directory = app.state.settings.directory()
    app.state.runner = h.runner
    app.state.workers = NoWorkers()
    app.state.prices = PriceTable()
    app.state.views = RunViews(h.store, FakeRunRows(h.store), halts)
    for router in (live.router, oversight.router, cost.router):
        app.include_router(router)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
        listed = (await client.get("/v1/runs", headers=AUTH)).json()
        assert [item["run_id"] for item in listed["items"]] == [run_id]
        assert listed["items"][0]["status"] == "completed"
        assert listed["halted_agents"] == ["test"]

        halt = (await client.get("/v1/agents/test/halt", headers=AUTH)).json()
        assert (halt["halted"], halt["by"]) == (True, "olga")
        assert [h["agent"] for h in (await client.get("/v1/halts", headers=AUTH)).json()] == [
            "test"
        ]
        audit = (await client.get("/v1/agents/test/audit", headers=AUTH)).json()
        assert [(e["action"], e["by"]) for e in audit] == [("halt", "olga")]

        (costs,) = (await client.get("/v1/costs", headers=AUTH)).json()
        assert (costs["agent"], costs["runs"]) == ("test", 1)
        assert costs["total_tokens"] == 15, "the scripted reply's 10 + 5 tokens"
