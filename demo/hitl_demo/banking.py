"""The banking demo agent's tools: balances live in MongoDB, transfers may need approval."""

from datetime import timedelta
from typing import Any, Literal, Protocol

from hitl_sdk import (
    EditPolicy,
    Movement,
    RiskLevel,
    Tool,
    ToolArgs,
    ToolContext,
    ToolError,
)
from hitl_sdk.tools import TotalsFunction
from pydantic import Field, PrivateAttr, field_validator, model_validator

from hitl_demo.ledger import InsufficientFunds, Ledger, UnknownAccount, to_cents

# Per-account totals are over the last day, rolling.
DAY = timedelta(days=1)

SYSTEM_PROMPT = (
    "You are a banking assistant. The user's own account is 'checking'. Use the tools to "
    "read balances, deposit and transfer money. Account names are lower-case. When a tool "
    "reports that a human rejected an action, do not retry it; explain to the user. "
    "When you are stuck or unsure what the user wants, call request_human_intervention."
)


class BalanceArgs(ToolArgs):
    account: str = Field(default="checking", description="Account name, lower-case.")


def _whole_cents(amount: float) -> float:
    # 0.001 would be booked as 0.00: refuse amounts the ledger cannot hold exactly.
    if abs(amount * 100 - round(amount * 100)) > 1e-6:
        raise ValueError("amounts have at most two decimals (whole cents)")
    return amount


class DepositFields(ToolArgs):
    account: str = Field(default="checking")
    amount: float = Field(ge=0.01, le=1_000_000)

    _cents = field_validator("amount")(_whole_cents)

    def movement(self) -> Movement:
        return Movement(self.account, self.amount, "in")


def deposit_args(threshold: float) -> type[DepositFields]:
    class DepositArgs(DepositFields):
        """Deposit money; above the threshold a human must approve."""

        @model_validator(mode="after")
        def _normalise(self) -> "DepositArgs":
            self.account = self.account.strip().lower()
            return self

        def approval_reason(self) -> str | None:
            if self.amount > threshold:
                return (
                    f"deposit of {self.amount:.2f} exceeds the {threshold:.2f} approval threshold"
                )
            return None

    return DepositArgs


class TransferFields(ToolArgs):
    to_account: str = Field(description="Recipient account, lower-case.", min_length=1)
    amount: float = Field(ge=0.01, le=1_000_000, description="Amount in the account currency.")
    from_account: str = Field(default="checking")
    # Whatever the model claims here is ignored: the amount alone decides.
    requires_confirmation: bool | None = Field(
        default=None, description="Ignored; approval is decided by policy."
    )

    _cents = field_validator("amount")(_whole_cents)

    def public_arguments(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"requires_confirmation"})

    def movement(self) -> Movement:
        return Movement(self.from_account, self.amount, "out")


def transfer_args(threshold: float) -> type[TransferFields]:
    class TransferArgs(TransferFields):
        """Move money between accounts; above the threshold a human must approve."""

        _needs_approval: bool = PrivateAttr(default=False)

        @model_validator(mode="after")
        def _policy(self) -> "TransferArgs":
            self.to_account = self.to_account.strip().lower()
            self.from_account = self.from_account.strip().lower()
            self._needs_approval = self.amount > threshold
            return self

        def approval_reason(self) -> str | None:
            if self._needs_approval:
                return (
                    f"transfer of {self.amount:.2f} exceeds the {threshold:.2f} approval threshold"
                )
            return None

    return TransferArgs


class RecentMoves(Protocol):
    """The part of the ledger the totals read (the MongoDB `Ledger` satisfies it)."""

    async def moved_cents(
        self, account: str, direction: Literal["in", "out"], *, within: timedelta
    ) -> int: ...


def money_totals(ledger: RecentMoves, *, threshold: float, daily_limit: float) -> TotalsFunction:
    """Splitting does not avoid approval: amounts add up per run and per account per day.

    `run_total` is what this run already moved without a human's approval; the
    account's daily total counts every movement of the last 24 hours, approved or not.
    """

    async def check(args: ToolArgs, run_total: float) -> list[str]:
        moved = args.movement()
        if moved is None:
            return []
        reasons: list[str] = []
        # Above the threshold on its own the call has its own reason already.
        if moved.amount <= threshold and run_total + moved.amount > threshold:
            reasons.append(
                f"this run already moved {run_total:.2f} without approval; with this "
                f"{moved.amount:.2f} it would be {run_total + moved.amount:.2f}, above the "
                f"{threshold:.2f} approval threshold (split amounts add up)"
            )
        today = await ledger.moved_cents(moved.account, moved.direction, within=DAY) / 100
        if today + moved.amount > daily_limit:
            verb = "received" if moved.direction == "in" else "sent"
            reasons.append(
                f"{moved.account} has {verb} {today:.2f} in the last 24 hours; with this "
                f"{moved.amount:.2f} it would pass its daily limit of {daily_limit:.2f}"
            )
        return reasons

    return check


# A reviewer may lower the amount, never raise it or change where money comes from or goes.
TRANSFER_EDITS = EditPolicy(locked=("to_account", "from_account"), not_above=("amount",))
DEPOSIT_EDITS = EditPolicy(locked=("account",), not_above=("amount",))


def banking_tools(
    ledger: Ledger,
    *,
    threshold: float,
    daily_limit: float = 1000.0,
    timeout_seconds: float | None = None,
) -> list[Tool]:
    totals = money_totals(ledger, threshold=threshold, daily_limit=daily_limit)

    async def get_balance(args: BalanceArgs, run: ToolContext) -> str:
        try:
            cents = await ledger.balance_cents(args.account)
        except UnknownAccount as exc:
            raise ToolError(str(exc)) from None
        return f"Balance of {args.account}: {cents / 100:.2f}"

    async def deposit(args: DepositFields, run: ToolContext) -> str:
        try:
            posted = await ledger.post(
                run.idempotency_key, source=None, target=args.account, cents=to_cents(args.amount)
            )
        except UnknownAccount as exc:
            raise ToolError(str(exc)) from None
        balance = posted.target_cents
        return f"Deposited {args.amount:.2f} to {args.account}. New balance: {balance / 100:.2f}"

    async def transfer(args: TransferFields, run: ToolContext) -> str:
        source, target, amount = args.from_account, args.to_account, args.amount
        try:
            # The balance check is made on the balance it debits: no transfer overtakes it.
            posted = await ledger.post(
                run.idempotency_key, source=source, target=target, cents=to_cents(amount)
            )
        except UnknownAccount as exc:
            raise ToolError(str(exc)) from None
        except InsufficientFunds:
            raise ToolError(
                f"insufficient funds in {source} for a transfer of {amount:.2f}"
            ) from None
        balance = posted.source_cents or 0
        return (
            f"Transferred {amount:.2f} from {source} to {target}. "
            f"New balance of {source}: {balance / 100:.2f}"
        )

    return [
        Tool(
            "get_balance",
            "Read an account's balance.",
            BalanceArgs,
            get_balance,
            risk=RiskLevel.LOW,
            idempotent=True,
        ),
        Tool(
            "deposit",
            "Deposit money into an account.",
            deposit_args(threshold),
            deposit,
            approval="when",
            risk=RiskLevel.MEDIUM,
            timeout_seconds=timeout_seconds,
            edit_policy=DEPOSIT_EDITS,
            totals=totals,
            # One ledger entry keyed by the call: a repeat completes or reuses it.
            idempotent=True,
        ),
        Tool(
            "transfer",
            "Transfer money from one account to another.",
            transfer_args(threshold),
            transfer,
            approval="when",
            risk=RiskLevel.HIGH,
            timeout_seconds=timeout_seconds,
            edit_policy=TRANSFER_EDITS,
            totals=totals,
            idempotent=True,
        ),
    ]
