"""The banking demo agent's tools: balances live in MongoDB, transfers may need approval."""

from typing import Any

from hitl_contracts import RiskLevel
from pydantic import Field, PrivateAttr, model_validator

from hitl_agent.adapters.ledger import InsufficientFunds, Ledger, UnknownAccount, to_cents
from hitl_agent.domain.policy import ToolPolicy
from hitl_agent.tools.registry import Execution, PolicyArgs, Registry, Tool, ToolError

SYSTEM_PROMPT = (
    "You are a banking assistant. The user's own account is 'checking'. Use the tools to "
    "read balances, deposit and transfer money. Account names are lower-case. When a tool "
    "reports that a human rejected an action, do not retry it; explain to the user. "
    "When you are stuck or unsure what the user wants, call request_human_intervention."
)


class BalanceArgs(PolicyArgs):
    account: str = Field(default="checking", description="Account name, lower-case.")


class DepositArgs(PolicyArgs):
    account: str = Field(default="checking")
    amount: float = Field(gt=0, le=1_000_000)


class TransferFields(PolicyArgs):
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


def banking_registry(
    ledger: Ledger, *, threshold: float, timeout_seconds: float | None = None
) -> Registry:
    async def get_balance(args: BalanceArgs, run: Execution) -> str:
        try:
            cents = await ledger.balance_cents(args.account)
        except UnknownAccount as exc:
            raise ToolError(str(exc)) from None
        return f"Balance of {args.account}: {cents / 100:.2f}"

    async def deposit(args: DepositArgs, run: Execution) -> str:
        try:
            posted = await ledger.post(
                str(run.key), source=None, target=args.account, cents=to_cents(args.amount)
            )
        except UnknownAccount as exc:
            raise ToolError(str(exc)) from None
        balance = posted.target_cents
        return f"Deposited {args.amount:.2f} to {args.account}. New balance: {balance / 100:.2f}"

    async def transfer(args: TransferFields, run: Execution) -> str:
        source, target, amount = args.from_account, args.to_account, args.amount
        try:
            # The balance check is made on the balance it debits: no transfer overtakes it.
            posted = await ledger.post(
                str(run.key), source=source, target=target, cents=to_cents(amount)
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

    return Registry(
        [
            Tool(
                "get_balance",
                "Read an account's balance.",
                BalanceArgs,
                get_balance,
                policy=ToolPolicy(risk_level=RiskLevel.LOW),
                idempotent=True,
            ),
            Tool(
                "deposit",
                "Deposit money into an account.",
                DepositArgs,
                deposit,
                policy=ToolPolicy(risk_level=RiskLevel.LOW),
                # One ledger entry keyed by the call: a repeat completes or reuses it.
                idempotent=True,
            ),
            Tool(
                "transfer",
                "Transfer money from one account to another.",
                transfer_args(threshold),
                transfer,
                policy=ToolPolicy(risk_level=RiskLevel.HIGH, timeout_seconds=timeout_seconds),
                idempotent=True,
            ),
        ]
    )
