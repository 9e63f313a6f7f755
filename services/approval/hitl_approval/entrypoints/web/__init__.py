"""The reviewer web page, served by the approval service under /ui."""

from fastapi import APIRouter

from hitl_approval.entrypoints.web import analytics, pages, runs, signin
from hitl_approval.entrypoints.web.render import static_router

router = APIRouter(tags=["reviewer web page"])
router.include_router(signin.router)
router.include_router(static_router)
router.include_router(pages.router)
router.include_router(runs.router)
router.include_router(analytics.router)

__all__ = ["router"]
