"""One home for handling a mint's outcome: what went wrong, logged once, as a value.

Every caller (a customer's CODE, an agent's sale or special code, a payment) asks the
ledger through `attempt()` and maps `Attempt.failure` to its own wording.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.ledger.book import AlreadyFree, MintPending, MintResult, Refused, ServiceUnavailable

log = logging.getLogger(__name__)

Failure = Literal["pending", "unavailable", "refused", "already_free"]


@dataclass(frozen=True)
class Attempt:
    result: MintResult | None  # None when the mint did not go through
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None


def attempt(mint: Callable[[], MintResult], what: str) -> Attempt:
    """Run `mint`; a refusal, an outage or a mint still in flight becomes a failure kind."""
    try:
        return Attempt(mint())
    except MintPending as exc:
        log.info("%s: %s", what, exc)
        return Attempt(None, "pending")
    except ServiceUnavailable as exc:
        log.warning("%s: %s", what, exc)
        return Attempt(None, "unavailable")
    except AlreadyFree as exc:  # a plain answer, not an upstream problem
        log.info("%s: %s", what, exc)
        return Attempt(None, "already_free")
    except Refused as exc:
        log.error("%s: refused upstream: %s", what, exc)
        return Attempt(None, "refused")
