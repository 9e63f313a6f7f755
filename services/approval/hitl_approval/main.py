"""`hitl-approval`: run the approval service."""

import uvicorn
from hitl_shared.logs import configure
from hitl_shared.telemetry import configure_tracing

from hitl_approval.bootstrap import build_app
from hitl_approval.settings import ApprovalSettings


def main() -> None:
    settings = ApprovalSettings()
    configure("approval", settings.log_level)
    configure_tracing("approval")
    uvicorn.run(
        build_app(settings),
        host=settings.approval_host,
        port=settings.approval_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
