"""`hitl-agent [--app package.module:app ...]`: run an agent worker hosting those apps."""

import argparse
import sys

from fastapi import FastAPI
from hitl_shared.serve import serve

from hitl_agent.adapters.apps import AppLoadError
from hitl_agent.bootstrap import build_app, load_apps
from hitl_agent.settings import AgentSettings


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hitl-agent",
        description="Run a hitl agent worker: it hosts the agents of the given apps, "
        "consumes their tasks and decisions, and serves the runs API.",
    )
    parser.add_argument(
        "--app",
        dest="apps",
        action="append",
        default=[],
        metavar="MODULE:ATTRIBUTE",
        help="An app to host, e.g. myco.agents:app (repeatable). Default: AGENT_APPS, "
        "else every app installed packages declare under the 'hitl.apps' entry points.",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    settings = AgentSettings()

    def build() -> FastAPI:
        try:
            return build_app(settings, apps=load_apps(args.apps, settings))
        except AppLoadError as exc:
            # A bad import string, duplicate agent or invalid policy: say which, stop.
            sys.exit(f"hitl-agent: {exc}")

    serve(
        "agent",
        build,
        host=settings.agent_host,
        port=settings.agent_port,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
