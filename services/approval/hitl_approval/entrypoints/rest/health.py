"""Liveness, readiness and Prometheus metrics."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from hitl_shared.mongo import ping
from prometheus_client import CONTENT_TYPE_LATEST

from hitl_approval.adapters.metrics import ApprovalMetrics
from hitl_approval.entrypoints.rest.schemas import Health, Readiness
from hitl_approval.service_layer.services import ApprovalService
from hitl_approval.views import Views

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The store or the broker is unreachable."}},
    summary="Readiness: the store and the broker are reachable",
)
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        await ping(request.app.state.mongo)
        checks["store"] = "ok"
    except Exception as exc:
        checks["store"] = f"unreachable: {exc}"
    checks["broker"] = "ok" if await request.app.state.broker.ping(timeout=2.0) else "unreachable"
    ready = all(v == "ok" for v in checks.values())
    body = Readiness(ready=ready, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics",
)
async def metrics(request: Request) -> Response:
    service: ApprovalService = request.app.state.service
    registry: ApprovalMetrics = service.metrics
    views: Views = request.app.state.views
    pending = await views.pending_count()
    await request.app.state.consumer_lag.refresh()
    return Response(registry.render(pending), media_type=CONTENT_TYPE_LATEST)
