"""ACP-1: the hash chain behind Omnivoltaic token codes (OMNIVOLTAIC.md section 2).

A value is a 16-character upper-case hex string; one chain step is `h64` of it.
A code is the value at some position counted from the device's secret root; the
device holds the value at position CHAIN_LENGTH (`top`) and walks entered codes forward.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Sequence

from bot.domain import MAX_CODE_DAYS

CHAIN_LENGTH = 100_000
MAX_DAYS = MAX_CODE_DAYS
FREE_JUMP = 1096
RESET_JUMP = 2192
CHECKPOINT_EVERY = 1000

_sha1 = hashlib.sha1
_words = struct.Struct(">5I").unpack
_HEX16 = re.compile(r"[0-9A-F]{16}")
_CODE = re.compile(r"\*?(0\d{20})#?")


def h64(text: str) -> str:
    """SHA-1 folded to 64 bits: (w0^w2^w4, w1^w3) as 16 upper-case hex digits."""
    w0, w1, w2, w3, w4 = _words(_sha1(text.encode("utf-8")).digest())
    return "%016X" % ((w0 ^ w2 ^ w4) << 32 | (w1 ^ w3))


def walk(value: str, steps: int) -> str:
    """Apply `h64` `steps` times to `value` (a hex16 value)."""
    if steps < 0:
        raise ValueError("steps must not be negative")
    v = value.encode("ascii")
    sha1, words = _sha1, _words  # locals: this loop is the hot path
    for _ in range(steps):
        w0, w1, w2, w3, w4 = words(sha1(v).digest())
        v = b"%016X" % ((w0 ^ w2 ^ w4) << 32 | (w1 ^ w3))
    return v.decode("ascii")


def format_code(hex16: str) -> str:
    """Hex value -> `*ddd ddd ddd ddd ddd ddd ddd#` (21 digits, the first always 0)."""
    if not _HEX16.fullmatch(hex16):
        raise ValueError(f"not a 16-digit upper-case hex value: {hex16!r}")
    digits = f"0{int(hex16[:8], 16):010d}{int(hex16[8:], 16):010d}"
    return "*" + " ".join(digits[i : i + 3] for i in range(0, 21, 3)) + "#"


def parse_code(code: str) -> str:
    """`*ddd ddd ...#` (spaces optional, `*`/`#` optional) -> hex value; ValueError if bad."""
    match = _CODE.fullmatch("".join(str(code).split()))
    if not match:
        raise ValueError(f"not a token code: {code!r}")
    digits = match.group(1)
    a, b = int(digits[1:11]), int(digits[11:])
    if a > 0xFFFFFFFF or b > 0xFFFFFFFF:
        raise ValueError(f"not a token code: {code!r}")
    return f"{a:08X}{b:08X}"


def root_for(seed: str, product_id: int) -> str:
    """The deterministic secret root of one device's chain."""
    return h64(f"acp1-root:{seed}:{int(product_id)}")


def checkpoints(root: str) -> list[str]:
    """Every CHECKPOINT_EVERY-th value from `root`: index i is position i*1000, 0..100."""
    points = [root]
    for _ in range(CHAIN_LENGTH // CHECKPOINT_EVERY):
        points.append(walk(points[-1], CHECKPOINT_EVERY))
    return points


def value_at(root_or_checkpoints: str | Sequence[str], position: int) -> str:
    """The chain value at `position` (0..CHAIN_LENGTH); < 1000 hashes given checkpoints."""
    if not 0 <= position <= CHAIN_LENGTH:
        raise ValueError(f"position {position} outside 0..{CHAIN_LENGTH}")
    if isinstance(root_or_checkpoints, str):
        return walk(root_or_checkpoints, position)
    base, rest = divmod(position, CHECKPOINT_EVERY)
    return walk(root_or_checkpoints[base], rest)
