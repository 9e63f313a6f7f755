"""HTTP routes the demo contributes to the agent service."""

from fastapi import APIRouter

from hitl_demo.ledger import Ledger


def accounts_router(ledger: Ledger) -> APIRouter:
    router = APIRouter(tags=["banking demo"])

    @router.get("/v1/accounts")
    async def accounts() -> dict[str, float]:
        """Balances of the banking demo's accounts."""
        return await ledger.balances()

    return router
