"""The banking demo agent's tools: balances live in MongoDB, transfers may need approval."""

from typing import Any

from hitl_sdk import RiskLevel, Tool, ToolArgs, ToolContext, ToolError
from pydantic import Field, PrivateAttr, model_validator

from hitl_demo.ledger import Ledger, UnknownAccount, to_cents

SYSTEM_PROMPT = (
    "You are a banking assistant. The user's own account is 'checking'. Use the tools to "
    "read balances, deposit and transfer money. Account names are lower-case. When a tool "
    "reports that a human rejected an action, do not retry it; explain to the user. "
    "When you are stuck or unsure what the user wants, call request_human_intervention."
)


class BalanceArgs(ToolArgs):
    account: str = Field(default="checking", description="Account name, lower-case.")


class DepositArgs(ToolArgs):
    account: str = Field(default="checking")
    amount: float = Field(gt=0, le=1_000_000)


class TransferFields(ToolArgs):
    to_account: str = Field(description="Recipient account, lower-case.", min_length=1)
    amount: float = Field(gt=0, le=1_000_000, description="Amount in the account currency.")
    from_account: str = Field(default="checking")
    # Whatever the model claims here is ignored: the amount alone decides.
    requires_confirmation: bool | None = Field(
        default=None, description="Ignored; approval is decided by policy."
    )

    def public_arguments(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"requires_confirmation"})


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


def banking_tools(
    ledger: Ledger, *, threshold: float, timeout_seconds: float | None = None
) -> list[Tool]:
    async def get_balance(args: BalanceArgs, run: ToolContext) -> str:
        try:
            cents = await ledger.balance_cents(args.account)
        except UnknownAccount as exc:
            raise ToolError(str(exc)) from None
        return f"Balance of {args.account}: {cents / 100:.2f}"

    async def deposit(args: DepositArgs, run: ToolContext) -> str:
        await _known(ledger, args.account)
        await ledger.post(
            run.idempotency_key, source=None, target=args.account, cents=to_cents(args.amount)
        )
        balance = await ledger.balance_cents(args.account)
        return f"Deposited {args.amount:.2f} to {args.account}. New balance: {balance / 100:.2f}"

    async def transfer(args: TransferFields, run: ToolContext) -> str:
        source, target, amount = args.from_account, args.to_account, args.amount
        await _known(ledger, source)
        await _known(ledger, target)
        if not await ledger.applied(run.idempotency_key):
            if await ledger.balance_cents(source) < to_cents(amount):
                raise ToolError(f"insufficient funds in {source} for a transfer of {amount:.2f}")
            await ledger.post(
                run.idempotency_key, source=source, target=target, cents=to_cents(amount)
            )
        balance = await ledger.balance_cents(source)
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
            DepositArgs,
            deposit,
            risk=RiskLevel.LOW,
            # One ledger insert keyed by the call: a repeat finds it applied.
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
            idempotent=True,
        ),
    ]


async def _known(ledger: Ledger, account: str) -> None:
    if not await ledger.exists(account):
        raise ToolError(f"no account named {account!r}")
