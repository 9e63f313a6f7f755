"""The hitl stack in containers for your own tests (a pytest plugin; see plugin.py).

The names below load on first use: pytest loads the plugin in every run where the
package is installed, and testcontainers (with the Docker SDK) is needed only by a
session that starts containers.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hitl_testcontainers.containers import (
        DEV_REVIEWER_TOKEN,
        Infra,
        Stack,
        start_infra,
        start_stack,
    )

__all__ = ["DEV_REVIEWER_TOKEN", "Infra", "Stack", "start_infra", "start_stack"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hitl_testcontainers import containers

        return getattr(containers, name)
    raise AttributeError(f"module 'hitl_testcontainers' has no attribute {name!r}")
