"""`hitl-agent`: run the agent service."""

import uvicorn
from hitl_shared.logs import configure
from hitl_shared.telemetry import configure_tracing

from hitl_agent.bootstrap import build_app
from hitl_agent.settings import AgentSettings


def main() -> None:
    settings = AgentSettings()
    configure("agent", settings.log_level)
    configure_tracing("agent")
    uvicorn.run(
        build_app(settings),
        host=settings.agent_host,
        port=settings.agent_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
