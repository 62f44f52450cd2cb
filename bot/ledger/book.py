"""The ledger: payments in, codes out, and never a code lost (OMNIVOLTAIC.md section 2).

Paid days not yet in a code are `paid - reserved`, where reserved counts every days code
that is not known to have failed. A mint goes in three steps:

1. under the device's row lock, reserve the days in a `pending` code row and COMMIT it;
2. call the API with no transaction open;
3. record the outcome and commit: `minted` (credit moves), `failed` (surely not minted:
   the days are free again) or `unknown` (timed out after sending).

Step 1 is the one place the core commits on the edge's session: the attempt must be on
disk before the API can mint, or a crash would lose the code. An `unknown` (or a stale
`pending`) attempt is reconciled from the API's code history before anything new is
minted for that device; while that cannot be done, nothing new is minted.

Fencing, not a clock: each attempt gets a send deadline when it is reserved, just before
it is sent. Past it no process may start sending it (the client refuses, and uses what is
left as the request's timeouts). Reconciliation releases an attempt as "surely not
minted" only once its deadline plus the answer window (`grace`) had passed before the
history was read, and that history does not hold it. An answer that still arrives for a
released attempt is recorded, returned and raised as an integrity alarm, never dropped.

The API is called with the device's `api_id` (what the configured generation names it
by), never with the product id people type.

No upstream call is made while a lock is held (a row lock, or SQLite's one write lock):
reconciliation commits, reads the history, then locks the device and checks again.

The credit-ahead cap (DESIGN.md section 3): a days code is minted only while
`credit_until - now + days <= 1095`, so one request mints at most one days code, and no
code we hand out, entered alone after skipped ones, can read as FREE on the device. Paid
days beyond the cap stay as credit (`MintResult.held`) and are minted when they fit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, Integer, ScalarSelect, Select, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import metrics
from bot.domain import MAX_CODE_DAYS
from bot.ledger.devices import Named
from bot.omnivoltaic import client as api
from bot.storage.models import Code, Device, IntegrityAlarm, Payment, utcnow

log = logging.getLogger(__name__)

MAX_PAYMENT_DAYS = 3650  # ten years: anything above is a typo or abuse
MAX_AMOUNT = Decimal("10000000")
CENT = Decimal("0.01")
OPEN = ("pending", "unknown")
# The order codes must be entered in: the API's own counter, then ours.
ENTRY_ORDER = (Code.upstream_index.asc().nulls_last(), Code.id.asc())


class LedgerError(Exception):
    """Base of what the ledger refuses; the message is for operators, not customers."""


class ServiceUnavailable(LedgerError):
    """The API could not be reached; nothing was spent."""


class MintPending(LedgerError):
    """A mint for this device is in flight or awaiting reconciliation; try again soon."""


class Refused(LedgerError):
    """The API refused (allowance used up, chain exhausted, device not ours)."""


class AlreadyFree(Refused):
    """A free code for a device that is already free: refused plainly, nothing minted."""


class InvalidPayment(LedgerError, ValueError):
    """A payment that cannot be recorded as given."""


@dataclass(frozen=True)
class MintResult:
    codes: tuple[Code, ...]  # in the order they must be entered
    new: bool  # False when the request key had already been served
    held: int = 0  # paid days kept as credit: they would put the device over the cap


def room(device: Device, now: datetime) -> int:
    """The most days one code may carry now: `credit_until - now + days <= 1095`."""
    if device.credit_until is None or device.credit_until <= now:
        return MAX_CODE_DAYS
    ahead = (device.credit_until - now) / timedelta(days=1)
    return max(int(MAX_CODE_DAYS - ahead), 0)


@dataclass(frozen=True)
class StatusFigures:
    unspent_days: int
    last_minted_at: datetime | None

    @classmethod
    def of(cls, paid: int | None, reserved: int | None, last: datetime | None) -> StatusFigures:
        """From the values of `status_columns`."""
        return cls(int(paid or 0) - int(reserved or 0), last)


@dataclass(frozen=True)
class PaymentResult:
    payment: Payment
    created: bool


def status_columns(device: ColumnElement[int]) -> tuple[ScalarSelect[Any], ...]:
    """What STATUS shows of the device `device` names (a bound id, or a column of a
    statement over devices): paid days, days reserved by codes, and when the latest code
    was minted (as `latest_code` finds it). `StatusFigures.of` reads them back. The one
    definition of unspent days."""
    paid = select(func.coalesce(func.sum(Payment.days), 0)).where(Payment.device_id == device)
    reserved = select(func.coalesce(func.sum(Code.days), 0)).where(
        Code.device_id == device, Code.kind == "days", Code.state != "failed"
    )
    last = (
        select(Code.minted_at)
        .where(Code.device_id == device, Code.state == "minted")
        .order_by(Code.minted_at.desc(), Code.id.desc())
        .limit(1)
    )
    return (paid.scalar_subquery(), reserved.scalar_subquery(), last.scalar_subquery())


def _status_figures() -> Select[Any]:
    """Built once (a read path's cost is mostly building statements): bind `device`."""
    return select(*status_columns(bindparam("device", type_=Integer)))


_STATUS_FIGURES = _status_figures()


class Ledger:
    def __init__(
        self,
        client: api.OmnivoltaicClient,
        *,
        grace: timedelta = timedelta(seconds=60),
        send_window: timedelta = timedelta(seconds=10),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.client = client
        self.grace = grace  # after its send deadline, how long an answer may still come
        self.send_window = send_window  # from reserving an attempt to its send deadline
        self.clock = clock

    # -- payments ---------------------------------------------------------------------

    def record_payment(
        self,
        session: Session,
        *,
        reference: str,
        device: Device | None,
        days: int | None = None,
        amount: Decimal | None = None,
        source: str,
        agent_id: int | None = None,
        phone: str | None = None,
        product_ref: str | None = None,
    ) -> PaymentResult:
        """Record a payment once per reference; a repeat returns the first one unchanged.

        Nothing is changed (not even the device's balance) unless the payment is recorded.
        """
        if not isinstance(reference, str) or not reference.strip():
            raise InvalidPayment("a payment needs a reference")
        existing = session.scalar(select(Payment).where(Payment.reference == reference))
        if existing is not None:
            return PaymentResult(existing, created=False)
        if (days is None) == (amount is None):
            raise InvalidPayment("give either days or amount")
        if amount is not None:
            amount = money(amount)
        if device is not None:
            device = self._lock(session, device.id)
        balance = None
        if amount is not None:
            days, balance = self._convert(device, amount) if device is not None else (0, None)
        if (
            not isinstance(days, int)
            or isinstance(days, bool)
            or days < 0
            or (amount is None and days == 0)
        ):
            raise InvalidPayment("days must be a positive whole number")
        _check_days(days)
        payment = Payment(
            reference=reference,
            device_id=device.id if device else None,
            days=days,
            amount=amount,
            source=source,
            agent_id=agent_id,
            phone=phone,
            product_ref=product_ref,
        )
        try:
            with session.begin_nested():
                session.add(payment)
        except IntegrityError:  # the same reference, recorded concurrently
            first = session.scalar(select(Payment).where(Payment.reference == reference))
            if first is None:  # not a duplicate reference: a real error
                raise
            return PaymentResult(first, created=False)
        if balance is not None and device is not None:  # only once the row is ours
            device.balance = balance
        return PaymentResult(payment, created=True)

    def assign_payment(self, session: Session, payment: Payment, device: Device) -> Payment:
        """Give an unmatched payment its device (amounts convert at that device's price).

        The payment row is locked and re-read first, so two operators assigning the same
        payment at once cannot both succeed.
        """
        payment = session.scalars(
            select(Payment)
            .where(Payment.id == payment.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        if payment.device_id is not None:
            raise InvalidPayment(f"payment {payment.reference} already belongs to a device")
        device = self._lock(session, device.id)
        if payment.amount is not None:
            days, balance = self._convert(device, Decimal(payment.amount))
            _check_days(days)
            payment.days, device.balance = days, balance
        payment.device_id = device.id
        session.flush()
        return payment

    def quote(self, device: Device, amount: Decimal) -> int:
        """The whole days `amount` would buy `device` now (its balance counted), as
        `record_payment` converts it; InvalidPayment when it could not be recorded."""
        days, _ = self._convert(device, money(amount))
        _check_days(days)
        return days

    @staticmethod
    def _convert(device: Device, amount: Decimal) -> tuple[int, Decimal]:
        """The whole days `amount` buys with the device's balance, and the new balance."""
        if not device.value_per_day or device.value_per_day <= 0:
            raise InvalidPayment(f"device {device.product_id} has no price per day")
        total = Decimal(device.balance or 0) + amount
        days = int((total / Decimal(device.value_per_day)).to_integral_value(ROUND_FLOOR))
        return days, total - days * Decimal(device.value_per_day)

    def unspent_days(self, session: Session, device: Device) -> int:
        """Days paid and not yet in a code (an attempt that surely failed gives them back)."""
        return self.status_figures(session, device).unspent_days

    def status_figures(self, session: Session, device: Named) -> StatusFigures:
        """What STATUS shows, in one query: the unspent days and when the latest code was
        minted (as `latest_code` finds it)."""
        session.flush()  # what autoflush would do; then Core on the connection, which
        # costs less than the session's ORM execution on a read path
        row = session.connection().execute(_STATUS_FIGURES, {"device": device.id}).one()
        return StatusFigures.of(row[0], row[1], row[2])

    # -- codes ------------------------------------------------------------------------

    def latest_code(self, session: Session, device: Device) -> Code | None:
        return session.scalar(
            select(Code)
            .where(Code.device_id == device.id, Code.state == "minted")
            .order_by(Code.minted_at.desc(), Code.id.desc())
            .limit(1)
        )

    def latest_codes(self, session: Session, device: Device) -> tuple[Code, ...]:
        """Every code of the latest mint (one request's codes), in the order to enter them."""
        latest = self.latest_code(session, device)
        if latest is None:
            return ()
        base = latest.request_key.rsplit(":", 1)[0]
        return tuple(
            session.scalars(
                select(Code)
                .where(
                    Code.device_id == device.id,
                    Code.state == "minted",
                    Code.request_key.startswith(base + ":", autoescape=True)
                    | (Code.adopted_by == base),
                )
                .order_by(*ENTRY_ORDER)
            )
        )

    def mint_days(
        self,
        session: Session,
        device: Device,
        *,
        request_key: str,
        channel: str,
        requested_by: str | None = None,
        timeout: float | None = None,
    ) -> MintResult:
        """Mint the paid days not yet in a code, as far as the credit-ahead cap allows.

        One days code at most; the days it cannot carry are `held`. The result also holds,
        first, any code this request adopted from the history while reconciling: nobody
        has seen those yet, and they must be entered first.
        """
        served, adopted, device, timeout = self._begin(session, device, request_key, timeout)
        if served is not None:
            return served
        unspent = self.unspent_days(session, device)
        if unspent <= 0:
            return MintResult(adopted, new=True)
        days = min(unspent, room(device, self.clock()))
        if days <= 0:
            return MintResult(adopted, new=True, held=unspent)
        attempt = self._reserve(
            session, device, "days", days, f"{request_key}:0", channel, requested_by, timeout
        )
        if days == unspent:  # payments still not fully in a code stay for the sweep
            self._link_payments(session, device, attempt)
        minted = self._send(session, device, attempt, adopted, timeout)
        return MintResult(adopted + minted, new=True, held=unspent - days)

    def mint_special(
        self,
        session: Session,
        device: Device,
        kind: str,
        *,
        request_key: str,
        channel: str,
        requested_by: str | None = None,
        timeout: float | None = None,
    ) -> MintResult:
        """A free or reset code, through the same recorded path.

        Open attempts are settled first (none is minted while another is open), and what
        that adopted comes back first, in entry order, with the special code: whoever
        enters the special code must enter those before it. A retried free or reset code
        whose first try was adopted from the history returns that one, not a second code
        (a second free code would read as a reset). A free code for a device that is
        already free is refused.
        """
        if kind not in ("free", "reset"):
            raise ValueError(f"not a special code kind: {kind}")
        served, adopted, device, timeout = self._begin(session, device, request_key, timeout)
        if served is not None:
            return served
        if any(c.kind == kind for c in adopted):  # the retried one was minted after all
            return MintResult(adopted, new=True)
        if kind == "free" and device.state == "free":
            raise AlreadyFree(f"device {device.product_id} is already free")
        attempt = self._reserve(
            session, device, kind, None, f"{request_key}:0", channel, requested_by, timeout
        )
        return MintResult(
            adopted + self._send(session, device, attempt, adopted, timeout), new=True
        )

    def _begin(
        self, session: Session, device: Device, request_key: str, timeout: float | None
    ) -> tuple[MintResult | None, tuple[Code, ...], Device, float | None]:
        """What every mint does first: serve a repeat, settle open attempts, lock, re-check.

        Returns (the answer already given to this request, or None), the codes adopted on
        the way, the locked device, and what is left of the budget for the mint itself.
        """
        if not self._open_request(session, request_key):  # an open one: settle it first
            served = self._served(session, device, request_key)
            if served is not None:
                return served, (), device, timeout
        read_budget, timeout = _split(timeout)
        adopted = self.reconcile(session, device, request_key=request_key, budget=read_budget)
        device = self._lock(session, device.id)
        served = self._served(session, device, request_key)  # a duplicate got here first
        return served, adopted, device, timeout

    def _send(
        self,
        session: Session,
        device: Device,
        attempt: Code,
        adopted: tuple[Code, ...],
        timeout: float | None,
    ) -> tuple[Code, ...]:
        """Commit the attempt, then call the API; a failure after adopting keeps those."""
        session.commit()  # the attempt is on disk before the API can mint anything
        try:
            return self._call_all(session, device, [attempt], timeout).codes
        except LedgerError:
            if not adopted:
                raise
            return ()  # the new code waits for the next request; the adopted ones go out

    @staticmethod
    def _open_request(session: Session, request_key: str) -> bool:
        """Whether this request's attempt is still open (sent, answer not yet known)."""
        return (
            session.scalar(
                select(Code.id).where(Code.request_key == f"{request_key}:0", Code.state.in_(OPEN))
            )
            is not None
        )

    def _served(self, session: Session, device: Device, request_key: str) -> MintResult | None:
        """The codes already made for this request key (`key:0`, `key:1`, ...), if any,
        after those it adopted from the history, as its first answer gave them.

        A key used for another device is not this request: it is refused, never served.
        """
        codes: list[Code] = []
        while (
            code := session.scalar(
                select(Code).where(Code.request_key == f"{request_key}:{len(codes)}")
            )
        ) is not None:
            if code.device_id != device.id:
                raise Refused(f"request {request_key} was for another device")
            codes.append(code)
        if not codes:
            return None
        if any(c.state in OPEN for c in codes):
            raise MintPending(f"request {request_key} is still being confirmed")
        adopted = session.scalars(
            select(Code)
            .where(Code.device_id == device.id, Code.adopted_by == request_key)
            .order_by(*ENTRY_ORDER)
        ).all()  # shown first by this request's answer: the same again
        own = [c for c in codes if c.state == "minted"]
        return MintResult((*adopted, *own), new=False)

    def _reserve(
        self,
        session: Session,
        device: Device,
        kind: str,
        days: int | None,
        key: str,
        channel: str,
        requested_by: str | None,
        timeout: float | None,
    ) -> Code:
        now = self.clock()
        window = self.send_window
        if timeout is not None:
            window = min(window, timedelta(seconds=timeout))
        code = Code(
            device_id=device.id,
            kind=kind,
            days=days,
            state="pending",
            request_key=key,
            channel=channel,
            requested_by=requested_by,
            created_at=now,
            send_deadline=now + window,
        )
        session.add(code)
        session.flush()
        return code

    def _link_payments(self, session: Session, device: Device, code: Code) -> None:
        for payment in session.scalars(
            select(Payment).where(Payment.device_id == device.id, Payment.code_id.is_(None))
        ):
            payment.code_id = code.id

    def _call_all(
        self, session: Session, device: Device, attempts: list[Code], timeout: float | None
    ) -> MintResult:
        """Call the API for each committed attempt in order; stop at the first failure."""
        minted: list[Code] = []
        for position, attempt in enumerate(attempts):
            try:
                minted.append(self._call(session, device, attempt, timeout))
                metrics.mint(attempt.kind, "minted")
            except LedgerError as exc:
                metrics.mint(attempt.kind, "unknown" if isinstance(exc, MintPending) else "failed")
                for never_sent in attempts[position + 1 :]:
                    self._fail(session, never_sent)
                session.commit()
                if not minted:
                    raise
                break
        return MintResult(tuple(minted), new=True)

    def _call(self, session: Session, device: Device, attempt: Code, timeout: float | None) -> Code:
        """Call the API for one committed attempt and record what happened."""
        deadline = attempt.send_deadline or attempt.created_at + self.send_window
        within = (deadline - self.clock()).total_seconds()
        try:
            if within <= 0:  # fenced: another process may already have released it
                raise api.DeadlinePassed(f"mint {attempt.id}: send deadline passed; not sent")
            if attempt.kind == "days":
                assert attempt.days is not None  # the schema's CHECK days_match_kind
                minted = self.client.days_code(
                    device.api_id, attempt.days, timeout=timeout, send_by=deadline
                )
            elif attempt.kind == "free":
                minted = self.client.free_code(device.api_id, timeout=timeout, send_by=deadline)
            else:
                minted = self.client.reset_code(device.api_id, timeout=timeout, send_by=deadline)
        except api.OutcomeUnknown:
            log.warning(
                "mint %s for device %s: outcome unknown; will reconcile",
                attempt.id,
                device.product_id,
            )
            device = self._lock(session, device.id)
            session.refresh(attempt)
            if attempt.state == "pending":
                attempt.state = "unknown"
                # Its one send is over: nothing more can leave for it after now.
                attempt.send_deadline = min(deadline, self.clock())
            session.commit()
            raise MintPending("the code service did not answer in time") from None
        except api.OmnivoltaicError as exc:
            device = self._lock(session, device.id)  # surely not minted: free its days
            session.refresh(attempt)
            if attempt.state in OPEN:
                self._fail(session, attempt)
            session.commit()
            if isinstance(exc, api.Rejected):
                raise Refused(str(exc)) from exc
            raise ServiceUnavailable(str(exc)) from exc
        device = self._lock(session, device.id)
        session.refresh(attempt)  # a reconciliation may have settled it while we waited
        if attempt.state == "minted":  # adopted from the history: applied once already
            if attempt.code != minted.code:
                self._alarm(
                    session,
                    "answer_differs",
                    device,
                    attempt,
                    f"answer index {minted.otp_count} differs from the adopted code",
                )
            session.commit()
            return attempt
        if attempt.state == "failed":  # released while in flight: its days may be minted twice
            self._alarm(
                session,
                "late_answer",
                device,
                attempt,
                f"an answer (index {minted.otp_count}) came after the attempt was released",
            )
        self._apply(device, attempt, minted.code, minted.otp_hash, minted.otp_count)
        session.commit()
        return attempt

    def _alarm(
        self, session: Session, kind: str, device: Device, attempt: Code, detail: str
    ) -> None:
        """An integrity alarm: logged, kept (`ovbot alarms` lists them), never raised."""
        log.error(
            "INTEGRITY %s: device %s, mint %s: %s", kind, device.product_id, attempt.id, detail
        )
        metrics.integrity_alarm(kind)
        session.add(
            IntegrityAlarm(
                kind=kind,
                device_id=device.id,
                code_id=attempt.id,
                detail=detail,
                created_at=self.clock(),
            )
        )

    def _fail(self, session: Session, attempt: Code) -> None:
        attempt.state = "failed"
        for payment in session.scalars(select(Payment).where(Payment.code_id == attempt.id)):
            payment.code_id = None

    def _apply(
        self, device: Device, attempt: Code, code: str, otp_hash: str | None, index: int | None
    ) -> None:
        now = self.clock()
        attempt.code, attempt.otp_hash, attempt.otp_count = code, otp_hash, index
        attempt.upstream_index = index
        attempt.state, attempt.minted_at = "minted", now
        if attempt.kind == "days":
            assert attempt.days is not None  # the schema's CHECK days_match_kind
            start = max(now, device.credit_until or now)
            device.credit_until = start + timedelta(days=attempt.days)
            if device.state == "locked":
                device.state = "payg"
        elif attempt.kind == "free":
            device.state = "free"
        else:
            device.state, device.credit_until = "locked", now
        attempt.credit_until_after = device.credit_until

    # -- reconciliation ---------------------------------------------------------------

    def reconcile(
        self,
        session: Session,
        device: Device,
        *,
        request_key: str | None = None,
        budget: float | None = None,
    ) -> tuple[Code, ...]:
        """Settle open attempts from the code history before anything new is minted.

        Returns the codes adopted from the history, in the order they must be entered
        (recorded as adopted by `request_key`, so a RESEND shows them with its codes).
        The history is read with no lock held and no transaction open: this commits the
        session first, then locks the device and checks again. With a `budget` (a
        customer's request), the read gets one try within it.
        """
        kinds = [attempt.kind for attempt in self._open(session, device)]
        if not kinds:
            return ()
        session.commit()  # no lock (SQLite: no write lock) while the API is called
        read_at = self.clock()
        try:
            history = self.client.code_history(
                device.api_id, 0, 100, timeout=budget, retries=0 if budget else None
            )
        except api.OmnivoltaicError as exc:
            for kind in kinds:
                metrics.reconciled(kind, "unavailable")
            raise ServiceUnavailable(f"cannot read the code history: {exc}") from exc
        device = self._lock(session, device.id)
        open_ = self._open(session, device)  # another request may have settled some
        known = set(
            session.scalars(
                select(Code.code).where(Code.device_id == device.id, Code.code.is_not(None))
            )
        )
        last = (
            session.scalar(select(func.max(Code.upstream_index)).where(Code.device_id == device.id))
            or 0
        )
        candidates = sorted(
            (r for r in history if r.code not in known and r.index > last), key=lambda r: r.index
        )
        waiting, adopted = False, []
        for attempt in open_:
            match = next(
                (
                    r
                    for r in candidates
                    if r.kind == attempt.kind and (attempt.kind != "days" or r.days == attempt.days)
                ),
                None,
            )
            if match is not None:
                candidates.remove(match)
                log.info(
                    "reconciled mint %s for device %s from history index %s",
                    attempt.id,
                    device.product_id,
                    match.index,
                )
                self._apply(device, attempt, match.code, None, match.index)
                if request_key is not None and not attempt.request_key.startswith(
                    f"{request_key}:"
                ):  # another request's code, shown with this one's answer
                    attempt.adopted_by = request_key
                adopted.append(attempt)
                metrics.reconciled(attempt.kind, "adopted")
            elif self._fence(attempt) <= read_at:  # fenced before the history was read
                log.info(
                    "mint %s for device %s is not in the history; credit released",
                    attempt.id,
                    device.product_id,
                )
                self._fail(session, attempt)
                metrics.reconciled(attempt.kind, "released")
            else:
                waiting = True
                metrics.reconciled(attempt.kind, "waiting")
        session.commit()
        if waiting:
            raise MintPending(f"a code for device {device.product_id} is being confirmed")
        return tuple(adopted)

    def _fence(self, attempt: Code) -> datetime:
        """When no answer can come any more: the send deadline plus the answer window."""
        deadline = attempt.send_deadline or attempt.created_at + self.send_window
        return deadline + self.grace

    @staticmethod
    def _open(session: Session, device: Device) -> list[Code]:
        return list(
            session.scalars(
                select(Code)
                .where(Code.device_id == device.id, Code.state.in_(OPEN))
                .order_by(Code.id)
                .execution_options(populate_existing=True)
            )
        )

    @staticmethod
    def _lock(session: Session, device_id: int) -> Device:
        return session.scalars(
            select(Device)
            .where(Device.id == device_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()


def money(value: object) -> Decimal:
    """A positive amount in whole cents, at most MAX_AMOUNT; InvalidPayment otherwise."""
    try:
        amount = None
        if isinstance(value, int | float | str | Decimal) and not isinstance(value, bool):
            amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        amount = None
    if (
        amount is None
        or not amount.is_finite()
        or amount <= 0
        or amount > MAX_AMOUNT
        or amount < CENT  # also what `%` would round away: 1e-1000027 underflows to 0
        or amount % CENT
    ):
        raise InvalidPayment(f"amount must be above 0, at most {MAX_AMOUNT}, in whole cents")
    return amount


def _check_days(days: int) -> None:
    if days > MAX_PAYMENT_DAYS:
        raise InvalidPayment(f"more than {MAX_PAYMENT_DAYS} days in one payment")


def _split(budget: float | None) -> tuple[float | None, float | None]:
    """A request's upstream budget: half to read the history (one try), half to mint."""
    return (None, None) if budget is None else (budget / 2, budget / 2)
