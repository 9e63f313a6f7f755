"""Loading agent apps (import strings, entry points) and running their agents' tools."""

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hitl_agent import catalog
from hitl_agent import main as agent_main
from hitl_agent.adapters.apps import AppLoadError, load_app, parse_apps, resolve
from hitl_agent.adapters.offline import OfflinePlanner, spelled_out
from hitl_agent.domain.policy import AgentPolicy
from hitl_agent.domain.run import Style
from hitl_agent.service_layer.agents import UnknownAgent, builtin_of
from hitl_agent.settings import AgentSettings
from hitl_agent.tools.registry import Execution, ExecutionKey
from hitl_sdk import Agent, App, ToolArgs, ToolContext

APP = """
from hitl_sdk import Agent, App, ToolArgs, ToolContext

class Args(ToolArgs):
    text: str

def make(name):
    agent = Agent(name, system_prompt="Echo.")

    @agent.tool()
    async def echo(args: Args, ctx: ToolContext) -> str:
        return args.text

    return agent

app = App([make("{name}")])
lone = make("{name}-lone")

def factory():
    return App([make("{name}-made")])

number = 42
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A throwaway importable package; returns its name."""
    name = f"userpkg_{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "agents.py").write_text(APP.replace("{name}", name.replace("_", "-")))
    (root / "broken.py").write_text("import not_installed_anywhere_xyz\n")
    (root / "invalid.py").write_text(
        "from hitl_sdk import Agent\nagent = Agent('bad name', system_prompt='x')\n"
    )
    (root / "boom.py").write_text("raise RuntimeError('no config')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_an_import_string_names_an_app_an_agent_or_a_factory(package: str) -> None:
    agent = package.replace("_", "-")
    assert [a.name for a in load_app(f"{package}.agents:app").app.agents] == [agent]
    assert [a.name for a in load_app(f"{package}.agents:lone").app.agents] == [f"{agent}-lone"]
    assert [a.name for a in load_app(f"{package}.agents:factory").app.agents] == [f"{agent}-made"]
    assert parse_apps(" a.b:app, c:d  e:f ") == ["a.b:app", "c:d", "e:f"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{p}.agents", "expected 'package.module:attribute'"),
        ("{p}.nope:app", "no module named '{p}.nope'; is its package installed"),
        ("{p}.broken:app", "importing {p}.broken failed: No module named 'not_installed_any"),
        ("{p}.invalid:agent", "agent name 'bad name'"),
        ("{p}.boom:app", "importing {p}.boom raised RuntimeError\\('no config'\\)"),
        ("{p}.agents:missing", "module {p}.agents has no attribute 'missing'"),
        ("{p}.agents:number", "number is a int, not a hitl_sdk.App"),
    ],
)
def test_a_bad_app_stops_start_up_with_a_message_naming_it(
    package: str, spec: str, message: str
) -> None:
    with pytest.raises(AppLoadError, match=message.replace("{p}", package)) as caught:
        load_app(spec.replace("{p}", package))
    assert str(caught.value).startswith(repr(spec.replace("{p}", package)))


def test_two_apps_with_one_agent_name_are_refused(package: str) -> None:
    with pytest.raises(AppLoadError, match=r"two agents named .* in '.*:app' and in '.*:app'"):
        resolve([f"{package}.agents:app", f"{package}.agents:app"])


def test_with_no_app_named_the_installed_entry_points_are_hosted() -> None:
    (demo,) = resolve([])
    assert demo.source == "entry point 'demo' (hitl_demo:app)"
    assert sorted(a.name for a in demo.app.agents) == ["banking", "files"]


def test_a_policy_file_naming_an_agent_nobody_hosts_is_refused(
    package: str, tmp_path: Path
) -> None:
    policies = tmp_path / "policies.json"
    policies.write_text(json.dumps({"invoicez": {"tools": {}}}))
    settings = AgentSettings(agent_policies_file=str(policies))
    app = load_app(f"{package}.agents:app").app
    with pytest.raises(UnknownAgent, match="'invoicez' is not hosted here"):
        catalog.agents(settings, [app])


def test_the_command_line_names_the_bad_app_and_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process: the app is built before uvicorn would start, so serving is not needed.
    def build_only(_: str, build: Callable[[], object], **__: object) -> None:
        build()

    monkeypatch.setattr(agent_main, "serve", build_only)
    with pytest.raises(SystemExit) as exited:
        agent_main.main(["--app", "no_such_pkg_xyz.agents:app"])
    # A string code: Python prints it to stderr and exits with status 1.
    assert str(exited.value.code).startswith(
        "hitl-agent: 'no_such_pkg_xyz.agents:app': no module named 'no_such_pkg_xyz'"
    )


class Pay(ToolArgs):
    amount: float

    def approval_reason(self) -> str | None:
        return "large" if self.amount > 1_000 else None


async def test_an_sdk_tool_runs_with_the_call_context_and_keeps_its_policy() -> None:
    seen: list[ToolContext] = []
    agent = Agent("payer", system_prompt="Pay.", style="router", max_steps=3)

    @agent.tool(risk="high", idempotent=True, timeout_seconds=30)
    async def pay(args: Pay, ctx: ToolContext) -> str:
        seen.append(ctx)
        return f"paid {args.amount}"

    @agent.tool(approval="always")
    async def wipe(args: ToolArgs, ctx: ToolContext) -> str:
        return "wiped"

    builtin = builtin_of(agent, AgentPolicy(max_steps=12, confidence_threshold=0.5))
    assert (builtin.policy.style, builtin.policy.max_steps) == (Style.ROUTER, 3)
    assert builtin.policy.confidence_threshold == 0.5
    registry = builtin.registry()
    tool = registry.get("pay")
    assert tool is not None
    assert (tool.policy.risk_level, tool.policy.timeout_seconds, tool.idempotent) == (
        "high",
        30,
        True,
    )
    assert not tool.policy.requires_approval
    assert tool.parse({"amount": 5_000}).approval_reason() == "large"
    wipe_tool = registry.get("wipe")
    assert wipe_tool is not None
    assert wipe_tool.policy.requires_approval
    result = await tool.execute(tool.parse({"amount": 5}), Execution(ExecutionKey("r1", "c1")))
    assert result == "paid 5.0"
    assert seen == [
        ToolContext(agent="payer", run_id="r1", tool_call_id="c1", idempotency_key="r1:c1")
    ]


def test_an_app_may_hold_several_agents() -> None:
    app = App([Agent("a", system_prompt="x"), Agent("b", system_prompt="y")])
    settings = AgentSettings()
    hosted = catalog.agents(settings, [app])
    # Each gets the runtime's intervention tool beside its own.
    assert sorted(hosted) == ["a", "b"]
    assert hosted["a"].registry.get("request_human_intervention") is not None


def test_no_runtime_module_holds_demo_code() -> None:
    runtime = Path(__file__).parents[2] / "services" / "agent" / "hitl_agent"
    text = "\n".join(p.read_text() for p in runtime.rglob("*.py"))
    for name in ("hitl_demo", "banking_tools", "files_tools", "Ledger(", "Sandbox(", "_TRANSFER"):
        assert name not in text, name


async def test_the_offline_planner_calls_any_agents_tools_when_spelled_out() -> None:
    request = 'Look up lookup_vendor {"vendor": "acme"} then pay_invoice {"vendor": "acme", "amount": 1500} and nope {"x": 1}'
    assert spelled_out(request, {"lookup_vendor", "pay_invoice"}) == [
        ("lookup_vendor", {"vendor": "acme"}),
        ("pay_invoice", {"vendor": "acme", "amount": 1500}),
    ]
    tools = [{"function": {"name": "pay_invoice"}}]
    reply = await OfflinePlanner().complete(
        [{"role": "user", "content": 'pay_invoice {"vendor": "acme"}'}], tools
    )
    (call,) = reply.message["tool_calls"]
    assert call["function"] == {"name": "pay_invoice", "arguments": '{"vendor": "acme"}'}
