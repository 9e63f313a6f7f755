"""Liveness and readiness."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from hitl_shared.mongo import ping

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        await ping(request.app.state.mongo)
        checks["store"] = "ok"
    except Exception as exc:
        checks["store"] = f"unreachable: {exc}"
    checks["broker"] = "ok" if await request.app.state.broker.ping(timeout=2.0) else "unreachable"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)
