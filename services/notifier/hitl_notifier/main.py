"""`hitl-notifier`: run the notifier service."""

import uvicorn
from hitl_shared.logs import configure
from hitl_shared.telemetry import configure_tracing

from hitl_notifier.bootstrap import build_app
from hitl_notifier.settings import NotifierSettings


def main() -> None:
    settings = NotifierSettings()
    configure("notifier", settings.log_level)
    configure_tracing("notifier")
    uvicorn.run(
        build_app(settings),
        host=settings.notifier_host,
        port=settings.notifier_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
