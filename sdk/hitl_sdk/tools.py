"""Tools: typed arguments, the function that acts, and when a human must approve it."""

import inspect
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

from hitl_contracts import RiskLevel
from hitl_contracts.approval import EditPolicy
from pydantic import BaseModel

__all__ = [
    "RESERVED_TOOL_NAMES",
    "Approval",
    "DefinitionError",
    "Movement",
    "Tool",
    "ToolArgs",
    "ToolContext",
    "ToolError",
    "tool",
]

Approval: TypeAlias = Literal["always", "never", "when"]

# The runtime adds this tool to every agent: the model asks a person for help.
RESERVED_TOOL_NAMES = frozenset({"request_human_intervention"})

# What OpenAI-compatible APIs accept as a function name.
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class DefinitionError(ValueError):
    """An agent, tool or app is declared wrongly; the message names what and why."""


class ToolError(Exception):
    """Raise from a tool to refuse its input; the message goes back to the model."""


@dataclass(frozen=True)
class Movement:
    """An amount a call moves through an account (money, stock, quota).

    The runtime adds up what each run moved without a human's approval and hands it
    to the tool's `totals` check, so splitting one large action into small ones does
    not avoid approval.
    """

    account: str
    amount: float
    # "out" of the account (e.g. a transfer's source) or "in" (e.g. a deposit).
    direction: Literal["in", "out"]


class ToolArgs(BaseModel):
    """Base class of a tool's arguments (a pydantic model).

    Validators may normalise the arguments; `approval_reason` decides, from the
    validated arguments, whether a human must approve this call (`approval="when"`).
    """

    def approval_reason(self) -> str | None:
        """Why this call needs a human's approval, or None when it may run at once."""
        return None

    def movement(self) -> Movement | None:
        """What this call moves, when it moves anything (see `Movement`, `totals`)."""
        return None

    def public_arguments(self) -> dict[str, Any]:
        """The arguments as a reviewer sees and may edit them (JSON-ready)."""
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class ToolContext:
    """What the runtime tells a tool about the call it is executing."""

    agent: str
    run_id: str
    tool_call_id: str
    # Unique per tool call and stable across retries, crashes and replicas: key the
    # tool's effects by it (an insert with this unique key, a payment API's
    # idempotency key) so a repeated execution finds them done.
    idempotency_key: str
    # What the reviewer saw (the tool's preview) when they approved the call as
    # asked; None for calls that needed no approval or whose arguments were edited.
    preview: dict[str, Any] | None = None


A = TypeVar("A", bound=ToolArgs)

ToolFunction: TypeAlias = Callable[[Any, ToolContext], Awaitable[str]]
PreviewFunction: TypeAlias = Callable[[Any], Awaitable[dict[str, Any]]]
CheckFunction: TypeAlias = Callable[[Any], Awaitable[str | None]]
# (arguments, what this run already moved without approval) -> reasons to ask a human.
TotalsFunction: TypeAlias = Callable[[Any, float], Awaitable[list[str]]]


@dataclass(frozen=True)
class Tool:
    """One tool of an agent. Build it with `tool(...)` or `Agent.tool(...)`."""

    name: str
    description: str
    args: type[ToolArgs]
    fn: ToolFunction
    approval: Approval = "never"
    risk: RiskLevel = RiskLevel.MEDIUM
    # How long a held call waits for a decision; None: the runtime's default.
    timeout_seconds: float | None = None
    # Safe to execute again for the same call after a crash (its effects are keyed
    # by ctx.idempotency_key). Otherwise an interrupted call is reported, not repeated.
    idempotent: bool = False
    # Extra context for the reviewer, computed when a call is held.
    preview: PreviewFunction | None = None
    # What a reviewer's `modify` may change; None: any field, within the schema.
    edit_policy: EditPolicy | None = None
    # An async predicate for what the arguments alone cannot tell (e.g. "first payment
    # to this vendor" needs a lookup): a reason means a human must approve the call.
    approval_check: CheckFunction | None = None
    # Limits on what calls add up to (see `Movement`): reasons to ask once they'd pass.
    totals: TotalsFunction | None = None

    def __post_init__(self) -> None:
        # Accept "high" as well as RiskLevel.HIGH.
        object.__setattr__(self, "risk", _risk(self.risk, self.name))
        _check_tool(self)


def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    approval: Approval | None = None,
    risk: RiskLevel | str = RiskLevel.MEDIUM,
    timeout_seconds: float | None = None,
    idempotent: bool = False,
    preview: PreviewFunction | None = None,
    edit_policy: EditPolicy | None = None,
    approval_check: CheckFunction | None = None,
    totals: TotalsFunction | None = None,
) -> Callable[[Callable[[A, ToolContext], Awaitable[str]]], Tool]:
    """Declare a tool from `async def name(args: SomeArgs, ctx: ToolContext) -> str`.

    The arguments model comes from the first parameter's annotation, the name from
    the function and the description from its docstring (unless given).
    `approval`: "always", "never", or "when" (the arguments' `approval_reason` and
    `approval_check` decide); by default "when" if either is given, else "never".
    """

    def declare(fn: Callable[[A, ToolContext], Awaitable[str]]) -> Tool:
        args = _args_model(fn)
        return Tool(
            name=name or fn.__name__,
            description=description or inspect.getdoc(fn) or "",
            args=args,
            fn=fn,
            approval=approval
            or ("when" if _has_predicate(args) or approval_check or totals else "never"),
            risk=_risk(risk, name or fn.__name__),
            timeout_seconds=timeout_seconds,
            idempotent=idempotent,
            preview=preview,
            edit_policy=edit_policy,
            approval_check=approval_check,
            totals=totals,
        )

    return declare


def _risk(value: RiskLevel | str, name: str) -> RiskLevel:
    try:
        return RiskLevel(value)
    except ValueError:
        raise DefinitionError(
            f"tool {name!r}: risk {value!r} is not one of {[r.value for r in RiskLevel]}"
        ) from None


def _args_model(fn: Callable[..., Any]) -> type[ToolArgs]:
    where = getattr(fn, "__qualname__", repr(fn))
    params = list(inspect.signature(fn).parameters.values())
    if len(params) != 2:
        raise DefinitionError(
            f"tool {where}: expected `async def {fn.__name__}(args: <ToolArgs subclass>, "
            f"ctx: ToolContext) -> str`, got {len(params)} parameters"
        )
    try:
        hints = typing.get_type_hints(fn)
    except NameError as exc:
        raise DefinitionError(f"tool {where}: cannot resolve its annotations ({exc})") from None
    model = hints.get(params[0].name)
    if not (isinstance(model, type) and issubclass(model, ToolArgs)):
        raise DefinitionError(
            f"tool {where}: annotate the first parameter with a ToolArgs subclass (got {model!r})"
        )
    return model


def _has_predicate(args: type[ToolArgs]) -> bool:
    return args.approval_reason is not ToolArgs.approval_reason


def _check_tool(t: Tool) -> None:
    what = f"tool {t.name!r}"
    if not _TOOL_NAME.match(t.name):
        raise DefinitionError(f"{what}: a name is 1-64 letters, digits, '_' or '-'")
    if t.name in RESERVED_TOOL_NAMES:
        raise DefinitionError(f"{what}: the name is reserved (the runtime adds that tool)")
    if not (isinstance(t.args, type) and issubclass(t.args, ToolArgs)):
        raise DefinitionError(f"{what}: args must be a ToolArgs subclass, got {t.args!r}")
    if not inspect.iscoroutinefunction(t.fn):
        raise DefinitionError(f"{what}: the function must be `async def`")
    if t.preview is not None and not inspect.iscoroutinefunction(t.preview):
        raise DefinitionError(f"{what}: preview must be `async def preview(args) -> dict`")
    if t.approval_check is not None and not inspect.iscoroutinefunction(t.approval_check):
        raise DefinitionError(
            f"{what}: approval_check must be `async def check(args) -> str | None`"
        )
    if t.approval not in ("always", "never", "when"):
        raise DefinitionError(f"{what}: approval must be 'always', 'never' or 'when'")
    if t.totals is not None and not inspect.iscoroutinefunction(t.totals):
        raise DefinitionError(
            f"{what}: totals must be `async def totals(args, run_total) -> list[str]`"
        )
    asks = _has_predicate(t.args) or t.approval_check is not None or t.totals is not None
    if t.approval == "when" and not asks:
        raise DefinitionError(
            f"{what}: approval='when' but {t.args.__name__} does not override "
            "approval_reason() and there is no approval_check or totals, so no call would "
            "ever ask"
        )
    if t.approval == "never" and asks:
        raise DefinitionError(
            f"{what}: approval='never' but {t.args.__name__}.approval_reason(), "
            "approval_check or totals may ask; use approval='when' (or 'always')"
        )
    if t.timeout_seconds is not None and not t.timeout_seconds > 0:
        raise DefinitionError(f"{what}: timeout_seconds must be positive")
    if t.edit_policy is not None:
        fields = set(t.args.model_fields)
        named = {*t.edit_policy.locked, *t.edit_policy.not_above}
        if unknown := sorted(named - fields):
            raise DefinitionError(
                f"{what}: edit_policy names {unknown}, not arguments of "
                f"{t.args.__name__} ({sorted(fields)})"
            )
