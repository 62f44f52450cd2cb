"""What an operator may change of a customer: the reply language and the opt-out.

The same fields `LANG` and `STOP`/`START` set from the customer's own phone; the console
calls this, with the audit in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot.domain import LANGUAGES
from bot.operators.accounts import InvalidOperator
from bot.storage.models import Customer


def preferences(customer: Customer) -> dict[str, Any]:
    return {"language": customer.language, "opted_out": customer.opted_out}


def set_preferences(
    session: Session, customer_id: int, language: str, opted_out: bool
) -> tuple[Customer, dict[str, Any]]:
    """Set them; returns (customer, what they were). Bad input changes nothing."""
    if language not in LANGUAGES:
        raise InvalidOperator(f"language must be one of {', '.join(LANGUAGES)}")
    customer = session.get(Customer, customer_id, with_for_update=True)
    if customer is None:
        raise InvalidOperator(f"no customer {customer_id}")
    before = preferences(customer)
    customer.language, customer.opted_out = language, opted_out
    session.flush()
    return customer, before
