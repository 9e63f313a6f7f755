"""The public SDK: declaring agents, tools and apps, and the mistakes it refuses."""

import subprocess
import sys

import pytest
from hitl_sdk import (
    Agent,
    App,
    DefinitionError,
    EditPolicy,
    Movement,
    Resources,
    RiskLevel,
    Tool,
    ToolArgs,
    ToolContext,
    tool,
)
from pydantic import Field


class LookupArgs(ToolArgs):
    vendor: str


class PayArgs(ToolArgs):
    vendor: str
    amount: float = Field(gt=0)

    def approval_reason(self) -> str | None:
        return f"{self.amount:.2f} is above 1,000" if self.amount > 1_000 else None


def make_agent() -> Agent:
    agent = Agent("invoices", system_prompt="You pay invoices.")

    @agent.tool(risk="low")
    async def lookup_vendor(args: LookupArgs, ctx: ToolContext) -> str:
        """Find a vendor."""
        return args.vendor

    @agent.tool(
        risk=RiskLevel.HIGH,
        idempotent=True,
        timeout_seconds=60,
        edit_policy=EditPolicy(locked=("vendor",), not_above=("amount",)),
    )
    async def pay_invoice(args: PayArgs, ctx: ToolContext) -> str:
        """Pay an invoice."""
        return f"paid {args.amount} under {ctx.idempotency_key}"

    return agent


def test_a_decorated_tool_takes_its_name_arguments_and_description_from_the_function() -> None:
    agent = make_agent()
    lookup, pay = agent.tools
    assert (lookup.name, lookup.args, lookup.description) == (
        "lookup_vendor",
        LookupArgs,
        "Find a vendor.",
    )
    assert (lookup.approval, lookup.risk, lookup.idempotent) == ("never", RiskLevel.LOW, False)
    # The arguments model decides, so approval defaults to "when".
    assert (pay.approval, pay.risk, pay.timeout_seconds) == ("when", RiskLevel.HIGH, 60)
    assert PayArgs(vendor="acme", amount=1_500).approval_reason() == "1500.00 is above 1,000"
    assert PayArgs(vendor="acme", amount=10).approval_reason() is None


async def test_a_tool_receives_its_arguments_and_the_call_context() -> None:
    pay = make_agent().tools[1]
    ctx = ToolContext(agent="invoices", run_id="r", tool_call_id="c", idempotency_key="r:c")
    assert await pay.fn(PayArgs(vendor="acme", amount=5), ctx) == "paid 5.0 under r:c"


def test_a_standalone_tool_joins_an_agent_and_an_app_holds_agents_and_hooks() -> None:
    @tool(approval="always", description="Say hi.")
    async def greet(args: LookupArgs, ctx: ToolContext) -> str:
        return "hi"

    agent = Agent("greeter", system_prompt="Greet.", style="router", tools=[greet])
    app = App([agent], name="demo")

    @app.on_startup
    async def start(resources: Resources) -> None:
        return None

    assert agent.tools == [greet]
    assert greet.approval == "always"
    assert app.agents == [agent]
    assert app.startup == [start]


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda: Agent("bad name!", system_prompt="x"), "agent name 'bad name!'"),
        (
            lambda: Agent("a", system_prompt="x", style="graph"),  # type: ignore[arg-type]
            "style must be 'tools' or 'router'",
        ),
        (lambda: Agent("a", system_prompt="  "), "system prompt is empty"),
        (lambda: Agent("a", system_prompt="x", max_steps=0), "max_steps must be at least 1"),
        (
            lambda: Agent("a", system_prompt="x", confidence_threshold=2),
            "confidence_threshold must be within 0..1",
        ),
        (lambda: App([Agent("a", system_prompt="x")] * 2), "two agents named 'a'"),
    ],
)
def test_agent_mistakes_are_refused_with_the_reason(declare: object, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        declare()  # type: ignore[operator]


async def _fn(args: LookupArgs, ctx: ToolContext) -> str:
    return ""


def _sync(args: LookupArgs, ctx: ToolContext) -> str:
    return ""


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda: Tool("bad name", "", LookupArgs, _fn), "a name is 1-64 letters"),
        (
            lambda: Tool("request_human_intervention", "", LookupArgs, _fn),
            "reserved",
        ),
        (lambda: Tool("t", "", dict, _fn), "args must be a ToolArgs subclass"),  # type: ignore[arg-type]
        (lambda: Tool("t", "", LookupArgs, _sync), "must be `async def`"),  # type: ignore[arg-type]
        (
            lambda: Tool("t", "", LookupArgs, _fn, approval="when"),
            "does not override approval_reason",
        ),
        (lambda: Tool("t", "", PayArgs, _fn, approval="never"), "approval='never' but PayArgs"),
        (lambda: Tool("t", "", LookupArgs, _fn, risk="extreme"), "risk 'extreme'"),  # type: ignore[arg-type]
        (lambda: Tool("t", "", LookupArgs, _fn, timeout_seconds=0), "must be positive"),
        (
            lambda: Tool("t", "", LookupArgs, _fn, edit_policy=EditPolicy(locked=("amount",))),
            r"edit_policy names \['amount'\]",
        ),
        (lambda: tool()(_sync), "must be `async def`"),  # type: ignore[arg-type]
    ],
)
def test_tool_mistakes_are_refused_with_the_reason(declare: object, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        declare()  # type: ignore[operator]


def test_a_function_without_typed_arguments_is_refused() -> None:
    async def untyped(args, ctx):  # type: ignore[no-untyped-def]
        return ""

    with pytest.raises(DefinitionError, match="annotate the first parameter"):
        tool()(untyped)
    with pytest.raises(DefinitionError, match="got 1 parameters"):
        tool()(lambda args: args)  # type: ignore[arg-type, misc]


def test_two_tools_of_one_name_are_refused() -> None:
    agent = make_agent()
    with pytest.raises(DefinitionError, match="two tools named 'lookup_vendor'"):
        agent.add_tool(agent.tools[0])


def test_importing_the_sdk_pulls_in_no_service_code() -> None:
    code = (
        "import sys, hitl_sdk; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'hitl_agent', 'hitl_shared', 'hitl_approval', 'hitl_notifier', 'faststream', "
        "'aiokafka', 'pymongo', 'fastapi', 'openai'}); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_totals_and_movements_let_a_tool_add_up_what_calls_move() -> None:
    class Move(ToolArgs):
        account: str
        amount: float

        def movement(self) -> Movement:
            return Movement(self.account, self.amount, "out")

    async def limit(args: Move, run_total: float) -> list[str]:
        return ["over"] if run_total + args.amount > 100 else []

    @tool(totals=limit)
    async def send(args: Move, ctx: ToolContext) -> str:
        return "sent"

    assert send.approval == "when"
    assert Move(account="a", amount=5).movement() == Movement("a", 5, "out")
    with pytest.raises(DefinitionError, match="approval='never' but Move"):
        Tool("t", "", Move, _fn, approval="never", totals=limit)
    with pytest.raises(DefinitionError, match="totals must be `async def"):
        Tool("t", "", Move, _fn, approval="when", totals=lambda a, t: [])  # type: ignore[arg-type, return-value]
