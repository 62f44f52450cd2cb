"""Typed results of the Omnivoltaic API, and the pure parsers that build them.

The legacy field names (``productItemID``, ``codeValue``…) stop here: nothing outside
this package sees them. Parsers raise ``ValueError`` on anything they cannot read; the
client turns that into its own errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from bot.omnivoltaic.acp1 import parse_code

CodeKind = Literal["days", "free", "reset"]
ApiVersion = Literal["v1", "v2"]
API_VERSIONS: tuple[ApiVersion, ...] = ("v1", "v2")

# The fields the parsers read (`ovbot api check` reports the others as ignored).
ITEM_FIELDS = (
    "productItemID",
    "productItemOEM_SN",
    "oemItemID",
    "productItemPAYG_SN",
    "valuePerDay",
    "lifeCycleStatus",
)
HISTORY_FIELDS = (
    "codeHistoryID",
    "otpGeneratorID",
    "codeIndex",
    "codeValue",
    "codeDate",
    "codeDays",
)
MINT_FIELDS = ("code", "otpHash", "otpCount")

_CODE = re.compile(r"\*0\d\d( \d{3}){6}#")
_HEX16 = re.compile(r"[0-9A-Fa-f]{16}")


@dataclass(frozen=True)
class Item:
    """An assigned item. `api_id` is how the configured generation addresses it:
    `productItemID` in v1, the OEM item id (`oemItemID`, else the OEM serial) in v2."""

    product_id: int
    api_id: str
    oem_serial: str | None
    payg_serial: str | None
    value_per_day: Decimal | None
    lifecycle_status: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class ItemPage:
    items: tuple[Item, ...]
    total: int | None


@dataclass(frozen=True)
class MintedCode:
    code: str
    otp_hash: str
    otp_count: int


@dataclass(frozen=True)
class HistoryRow:
    history_id: int | str
    product_id: int
    index: int
    code: str
    created_at: datetime
    kind: CodeKind
    days: int | None


@dataclass(frozen=True)
class HistoryPage:
    items: tuple[HistoryRow, ...]
    total: int | None


def code_to_hex(code: str) -> str:
    """Exactly ``*ddd ddd ddd ddd ddd ddd ddd#`` -> its 16 hex digits, else ValueError."""
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise ValueError(f"malformed code {code!r}")
    return parse_code(code)


def minted_code_from_api(body: Any) -> MintedCode:
    """A mint answer; the code must decode to the same 16 hex digits as ``otpHash``."""
    if not isinstance(body, dict):
        raise ValueError("mint answer is not an object")
    code, otp_hash = body.get("code"), body.get("otpHash")
    if not isinstance(otp_hash, str) or not _HEX16.fullmatch(otp_hash):
        raise ValueError("otpHash missing or not 16 hex digits")
    if not isinstance(code, str):
        raise ValueError(f"malformed code {code!r}")  # as code_to_hex would say
    if code_to_hex(code) != otp_hash.upper():
        raise ValueError("code does not match otpHash")
    count = _int(body.get("otpCount"), "otpCount")
    return MintedCode(code=code, otp_hash=otp_hash.upper(), otp_count=count)


def item_from_api(row: Any, version: ApiVersion = "v1") -> Item:
    if not isinstance(row, dict):
        raise ValueError("item is not an object")
    value = row.get("valuePerDay")
    product_id = _int(row.get("productItemID"), "productItemID")
    oem_serial = _text(row.get("productItemOEM_SN", row.get("oemItemID")))
    api_id = str(product_id)
    if version == "v2":
        api_id = _text(row.get("oemItemID")) or oem_serial or ""
        if not api_id:
            raise ValueError("item has no oemItemID nor productItemOEM_SN: no id for v2")
    return Item(
        product_id=product_id,
        api_id=api_id,
        oem_serial=oem_serial,
        payg_serial=_text(row.get("productItemPAYG_SN")),
        value_per_day=None if value in (None, "") else _decimal(value),
        lifecycle_status=_text(row.get("lifeCycleStatus")),
        raw=dict(row),
    )


def history_row_from_api(row: Any) -> HistoryRow:
    if not isinstance(row, dict):
        raise ValueError("history row is not an object")
    code = row.get("codeValue")
    if not isinstance(code, str) or not code:
        raise ValueError("codeValue missing")
    kind, days = _kind(row.get("codeDays"))
    history_id = row.get("codeHistoryID")
    if history_id is None or isinstance(history_id, bool):
        raise ValueError("codeHistoryID missing")
    return HistoryRow(
        history_id=history_id if isinstance(history_id, str) else _int(history_id, "codeHistoryID"),
        product_id=_int(row.get("otpGeneratorID"), "otpGeneratorID"),
        index=_int(row.get("codeIndex"), "codeIndex"),
        code=code,
        created_at=_when(row.get("codeDate")),
        kind=kind,
        days=days,
    )


def _kind(value: Any) -> tuple[CodeKind, int | None]:
    """``"5"`` or 5 -> a days code; text containing "free" -> free; other text -> reset."""
    text = str(value).strip() if value is not None else ""
    if text.isdigit():
        return "days", int(text)
    if "free" in text.lower():
        return "free", None
    return "reset", None


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError(f"{name} is not an integer: {value!r}")


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def _when(value: Any) -> datetime:
    """ISO 8601 (``Z`` accepted) or epoch seconds/milliseconds; naive times are UTC."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, tz=UTC)
    if not isinstance(value, str):
        raise ValueError(f"codeDate is not a date: {value!r}")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
