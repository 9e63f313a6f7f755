"""`hitl-notifier`: run the notifier service."""

from hitl_shared.serve import serve

from hitl_notifier.bootstrap import build_app
from hitl_notifier.settings import NotifierSettings


def main() -> None:
    settings = NotifierSettings()
    serve(
        "notifier",
        lambda: build_app(settings),
        host=settings.notifier_host,
        port=settings.notifier_port,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
