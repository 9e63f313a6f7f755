"""`hitl-approval`: run the approval service."""

from hitl_shared.serve import serve

from hitl_approval.bootstrap import build_app
from hitl_approval.settings import ApprovalSettings


def main() -> None:
    settings = ApprovalSettings()
    serve(
        "approval",
        lambda: build_app(settings),
        host=settings.approval_host,
        port=settings.approval_port,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
