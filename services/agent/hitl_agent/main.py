"""`hitl-agent`: run the agent service."""

from hitl_shared.serve import serve

from hitl_agent.bootstrap import build_app
from hitl_agent.settings import AgentSettings


def main() -> None:
    settings = AgentSettings()
    serve(
        "agent",
        lambda: build_app(settings),
        host=settings.agent_host,
        port=settings.agent_port,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
