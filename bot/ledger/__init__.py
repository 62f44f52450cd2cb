"""The rules of credit and codes: payments in, codes out, and never a code lost.

`book` keeps the ledger (payments, mints, reconciliation); `devices` finds devices,
`fleet` keeps the devices table in step with the API, `owners` imports who owns what.
"""

from bot.ledger.book import (
    ENTRY_ORDER,
    MAX_PAYMENT_DAYS,
    OPEN,
    AlreadyFree,
    InvalidPayment,
    Ledger,
    LedgerError,
    MintPending,
    MintResult,
    PaymentResult,
    Refused,
    ServiceUnavailable,
    money,
    room,
)

__all__ = [
    "ENTRY_ORDER",
    "AlreadyFree",
    "MAX_PAYMENT_DAYS",
    "OPEN",
    "InvalidPayment",
    "Ledger",
    "LedgerError",
    "MintPending",
    "MintResult",
    "PaymentResult",
    "Refused",
    "ServiceUnavailable",
    "money",
    "room",
]
