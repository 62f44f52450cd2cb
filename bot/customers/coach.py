"""The code coach: why a keypad may have refused a code the customer typed back to us.

Pure: the digits the customer sent and their own codes in, a `Verdict` out (and its
wording, with the `say` the conversation passes).  Only the sender's codes are ever
compared, so nothing is learnt about anyone else's devices: a code of another customer's
device gets the very reply random digits get.

The verdicts, in the order they are tried:

- the code is one of theirs, exactly: the newest of its device (`NEWEST`; `OTHER_DEVICE`
  when they own several devices, so the reply says which one it is for), or an older one
  (`SUPERSEDED`: the codes that came after it, in the order to enter them);
- it is one slip away from one of theirs (`NEAR`): one or two digits differ (a swapped
  pair of neighbours is two), or, with 20 or 22 digits, one digit is missing or extra.
  The nearest wins: the fewest differing digits, then the newest code (minted last;
  within a device, the later in entry order);
- none of that: `NOT_OURS`.

Bounded: at most `WINDOW` codes per device are compared, each in 21 steps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

DIGITS = 21  # "0" and 20 more, shown in seven groups of three (OMNIVOLTAIC.md section 1)
GROUP = 3
GROUPS = DIGITS // GROUP
WINDOW = 20  # the newest codes of each device that are compared
MAX_SLIPS = 2  # differing digits a near miss may have

NEWEST, OTHER_DEVICE, SUPERSEDED, NEAR, NOT_OURS = (
    "newest",
    "other_device",
    "superseded",
    "near",
    "not_ours",
)
WRONG, MISSING, EXTRA = "wrong", "missing", "extra"  # what kind of slip a near miss is


@dataclass(frozen=True)
class Known:
    """One of the customer's minted codes."""

    code: str  # as the API gave it: "*024 413 975 593 119 504 641#"
    minted_at: datetime | None = None


@dataclass(frozen=True)
class Verdict:
    kind: str
    device_id: int | None = None
    code: str | None = None  # the code it is, or the nearest
    newer: tuple[str, ...] = ()  # the device's codes after `code`, in entry order
    slip: str | None = None  # NEAR: WRONG, MISSING or EXTRA
    groups: tuple[int, ...] = ()  # NEAR: the groups (1 to 7) to check


_NOT_OURS = Verdict(NOT_OURS)


_NOT_DIGIT = re.compile(r"[^0-9]")


def digits(code: str) -> str:
    return _NOT_DIGIT.sub("", code)


def judge(sent: str, codes: Mapping[int, Sequence[Known]]) -> Verdict:
    """What `sent` (digits only) is among `codes`: every device the customer owns (those
    without codes too), each with its codes in the order they must be entered."""
    window = {device: list(known)[-WINDOW:] for device, known in codes.items()}
    best: tuple[tuple[object, ...], Verdict] | None = None
    for device, known in window.items():
        for position, code in enumerate(known):
            slip = _slip(sent, digits(code.code))
            if slip is None:
                continue
            differing, kind, groups = slip
            newer = tuple(c.code for c in known[position + 1 :])
            if differing == 0:
                return _exact(device, code.code, newer, several=len(codes) > 1)
            verdict = Verdict(NEAR, device, code.code, newer, slip=kind, groups=groups)
            minted = code.minted_at.timestamp() if code.minted_at else float("-inf")
            rank = (-differing, minted, position)
            if best is None or rank > best[0]:
                best = (rank, verdict)
    return best[1] if best else _NOT_OURS


def _exact(device: int, code: str, newer: tuple[str, ...], *, several: bool) -> Verdict:
    if newer:
        return Verdict(SUPERSEDED, device_id=device, code=code, newer=newer)
    return Verdict(OTHER_DEVICE if several else NEWEST, device_id=device, code=code)


def _group(position: int) -> int:
    return min(position // GROUP, GROUPS - 1) + 1


def _slip(sent: str, code: str) -> tuple[int, str, tuple[int, ...]] | None:
    """How many digits `sent` gets wrong against `code` (0: it is the code), the kind of
    slip and the groups it is in, if it is at most a near miss; None otherwise."""
    if len(sent) == len(code):
        wrong: list[int] = []
        for i, (a, b) in enumerate(zip(sent, code, strict=True)):
            if a != b:
                wrong.append(i)
                if len(wrong) > MAX_SLIPS:
                    return None  # most codes part at once: a few digits read
        return len(wrong), WRONG, tuple(sorted({_group(i) for i in wrong}))
    if abs(len(sent) - len(code)) != 1:
        return None
    # One digit more or less: it is where the two first part (if anywhere it works).
    longer, shorter = (sent, code) if len(sent) > len(code) else (code, sent)
    first = next(
        (i for i, (a, b) in enumerate(zip(longer, shorter, strict=False)) if a != b), len(shorter)
    )
    if longer[first + 1 :] != shorter[first:]:
        return None
    return 1, EXTRA if len(sent) > len(code) else MISSING, (_group(first),)


# -- the wording ----------------------------------------------------------------------

Say = Callable[..., str]


def texts(say: Say, verdict: Verdict, ref: str, serial: str) -> tuple[str, ...]:
    """The reply, one SMS per text: `ref` and `serial` name the verdict's device."""
    if verdict.kind == NOT_OURS:
        return (say("coach_not_ours"),)
    code = verdict.code
    if verdict.kind == NEWEST:
        return (say("coach_newest", device=ref, code=code),)
    if verdict.kind == OTHER_DEVICE:
        return (say("coach_other_device", device=ref, serial=serial),)
    if verdict.kind == SUPERSEDED:
        return _newer(say, verdict.newer, ref)
    first, *more = verdict.groups or (1,)
    if verdict.slip == WRONG and more:
        near = say("coach_near_two", group=first, other=more[0], device=ref, code=code)
    else:
        near = say(f"coach_near_{verdict.slip}", group=first, device=ref, code=code)
    return (near, *(_newer(say, verdict.newer, ref) if verdict.newer else ()))


def _newer(say: Say, newer: Sequence[str], ref: str) -> tuple[str, ...]:
    """The codes that replaced the one sent: one, or several in the order to enter them."""
    if len(newer) == 1:
        return (say("coach_superseded", device=ref, code=newer[0]),)
    return (
        say("coach_superseded_many", device=ref, count=len(newer)),
        *(
            say("coach_part", index=i, count=len(newer), code=c)
            for i, c in enumerate(newer, start=1)
        ),
    )
