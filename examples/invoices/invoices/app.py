"""The invoices agent: look vendors up freely; a payment above 1,000, or the first
payment to a vendor, waits for a human's approval.

Run it against a hitl stack:  hitl-agent --app invoices.app:app
"""

from hitl_sdk import Agent, App, EditPolicy, Resources, ToolArgs, ToolContext, ToolError
from pydantic import Field, field_validator

from invoices.payments import Payments

APPROVAL_ABOVE = 1_000.0

# The vendor master data this example knows; a real agent would call an ERP here.
VENDORS = {
    "acme": {"name": "ACME Corp", "iban": "DE44 5001 0517 5407 3249 31"},
    "globex": {"name": "Globex Inc", "iban": "FR14 2004 1010 0505 0001 3M02 606"},
    "initech": {"name": "Initech LLC", "iban": "GB29 NWBK 6016 1331 9268 19"},
}

payments = Payments()

invoices = Agent(
    "invoices",
    system_prompt=(
        "You pay vendor invoices. Look the vendor up first with lookup_vendor, then pay "
        "with pay_invoice. Vendor ids are lower-case. If a human rejects a payment, do "
        "not retry it; tell the user."
    ),
)


class VendorArgs(ToolArgs):
    vendor: str = Field(description="Vendor id, e.g. 'acme'.", min_length=1)

    @field_validator("vendor")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


class PayInvoiceArgs(VendorArgs):
    invoice: str = Field(description="The invoice number.", min_length=1)
    amount: float = Field(gt=0, le=1_000_000, description="Amount to pay.")

    def approval_reason(self) -> str | None:
        if self.amount > APPROVAL_ABOVE:
            return f"payment of {self.amount:.2f} is above {APPROVAL_ABOVE:,.0f}"
        return None


async def first_payment(args: PayInvoiceArgs) -> str | None:
    if not await payments.paid_before(args.vendor):
        return f"first payment to vendor {args.vendor!r}"
    return None


async def vendor_card(args: PayInvoiceArgs) -> dict[str, object]:
    """What the reviewer sees beside the arguments."""
    vendor = VENDORS.get(args.vendor, {})
    earlier = await payments.of_vendor(args.vendor)
    return {
        "vendor_name": vendor.get("name", "unknown vendor"),
        "iban": vendor.get("iban", ""),
        "payments_so_far": len(earlier),
    }


@invoices.tool(risk="low", idempotent=True)
async def lookup_vendor(args: VendorArgs, ctx: ToolContext) -> str:
    """Look a vendor up: name, bank account, payments so far."""
    vendor = VENDORS.get(args.vendor)
    if vendor is None:
        raise ToolError(f"no vendor {args.vendor!r}; known: {sorted(VENDORS)}")
    count = len(await payments.of_vendor(args.vendor))
    return f"{vendor['name']} ({args.vendor}), IBAN {vendor['iban']}, {count} payments so far"


@invoices.tool(
    risk="high",
    # The payment is one insert keyed by the call: running it again finds it made.
    idempotent=True,
    approval_check=first_payment,
    preview=vendor_card,
    timeout_seconds=3600,
    # A reviewer may lower the amount, not raise it or pay someone else.
    edit_policy=EditPolicy(locked=("vendor", "invoice"), not_above=("amount",)),
)
async def pay_invoice(args: PayInvoiceArgs, ctx: ToolContext) -> str:
    """Pay a vendor's invoice."""
    if args.vendor not in VENDORS:
        raise ToolError(f"no vendor {args.vendor!r}; known: {sorted(VENDORS)}")
    fresh = await payments.pay(
        ctx.idempotency_key, vendor=args.vendor, invoice=args.invoice, amount=args.amount
    )
    done = "Paid" if fresh else "Already paid"
    return f"{done} {args.amount:.2f} to {args.vendor} for invoice {args.invoice}."


app = App([invoices], name="invoices")


@app.on_startup
async def start(resources: Resources) -> None:
    payments.bind(resources.database)
    await payments.ensure_indexes()
