"""hitl's demo agents, loaded by the runtime like any other app (`hitl_demo:app`).

- `banking`: balances in MongoDB; transfers above AGENT_TRANSFER_APPROVAL_THRESHOLD
  wait for a human. Contributes `GET /v1/accounts`.
- `files`: lists and deletes files in AGENT_FILES_SANDBOX; deleting always waits for
  a human, who sees exactly which files would go. Router style (action plans).
"""

import logging

from hitl_sdk import Agent, App, Resources

from hitl_demo import banking, files, offline
from hitl_demo.ledger import Ledger
from hitl_demo.routes import accounts_router
from hitl_demo.sandbox import Sandbox
from hitl_demo.settings import DemoSettings

__all__ = ["app", "build"]

log = logging.getLogger(__name__)


def build(settings: DemoSettings | None = None) -> App:
    settings = settings or DemoSettings()
    ledger = Ledger()
    sandbox = Sandbox(settings.agent_files_sandbox)
    demo = App(
        [
            Agent(
                "banking",
                system_prompt=banking.SYSTEM_PROMPT,
                tools=banking.banking_tools(
                    ledger,
                    threshold=settings.agent_transfer_approval_threshold,
                    daily_limit=settings.agent_account_daily_limit,
                ),
                offline_plan=offline.banking_plan,
            ),
            # The files agent halts the other way: the model returns an action plan.
            Agent(
                "files",
                system_prompt=files.SYSTEM_PROMPT,
                style="router",
                tools=files.files_tools(sandbox),
                offline_plan=offline.files_plan,
            ),
        ],
        routers=[accounts_router(ledger)],
        name="hitl-demo",
    )

    @demo.on_startup
    async def start(resources: Resources) -> None:
        ledger.bind(resources.database)
        await ledger.ensure_indexes()
        await ledger.seed(settings.agent_seed_accounts)
        # A store written by an older hitl: balances from its ledger, once.
        await ledger.migrate()
        if not sandbox.ensure():
            log.error("cannot create the files sandbox %s; the files agent will fail", sandbox.root)
        log.info("demo agents ready (files sandbox: %s)", sandbox.root)

    return demo


app = build()
