"""hitl-sdk: agents whose risky tool calls wait for a human, run by hitl's agent runtime.

```python
from hitl_sdk import Agent, App, ToolArgs, ToolContext

class PayArgs(ToolArgs):
    vendor: str
    amount: float

    def approval_reason(self) -> str | None:
        return f"{self.amount:.2f} is above 1,000" if self.amount > 1_000 else None

invoices = Agent("invoices", system_prompt="You pay invoices.")

@invoices.tool(risk="high", idempotent=True)
async def pay_invoice(args: PayArgs, ctx: ToolContext) -> str:
    ...  # key the payment by ctx.idempotency_key
    return "paid"

app = App([invoices])
```

Run it: `hitl-agent --app yourpackage.module:app`.
"""

from hitl_contracts import RiskLevel
from hitl_contracts.approval import EditPolicy

from hitl_sdk.agents import Agent, App, Hook, OfflinePlan, Resources, Style
from hitl_sdk.tools import (
    Approval,
    DefinitionError,
    Movement,
    Tool,
    ToolArgs,
    ToolContext,
    ToolError,
    tool,
)

__all__ = [
    "Agent",
    "App",
    "Approval",
    "DefinitionError",
    "EditPolicy",
    "Hook",
    "Movement",
    "OfflinePlan",
    "Resources",
    "RiskLevel",
    "Style",
    "Tool",
    "ToolArgs",
    "ToolContext",
    "ToolError",
    "tool",
]
