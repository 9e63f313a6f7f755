"""The hitl stack in containers for your own tests (a pytest plugin; see plugin.py)."""

from hitl_testcontainers.containers import (
    DEV_REVIEWER_TOKEN,
    Infra,
    Stack,
    start_infra,
    start_stack,
)

__all__ = ["DEV_REVIEWER_TOKEN", "Infra", "Stack", "start_infra", "start_stack"]
