"""The overview's chart: payments and codes minted per day, as an inline SVG (no script,
no library). Pure: the figures in, the drawing's numbers out; the template draws them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT, PAD = 600, 200, 28


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    y: float
    height: float
    label: str  # for screen readers and the tooltip


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    top: int  # the largest value, the y axis's top
    payments: tuple[Bar, ...]
    codes: tuple[Bar, ...]
    first: str
    last: str


def render(days: tuple[tuple[date, int, int], ...]) -> Chart:
    top = max([1, *(max(p, c) for _, p, c in days)])
    slot = (WIDTH - 2 * PAD) / max(len(days), 1)
    bar = slot * 0.4
    usable = HEIGHT - 2 * PAD

    def one(i: int, value: int, offset: float, what: str, day: date) -> Bar:
        h = usable * value / top
        return Bar(
            x=round(PAD + i * slot + offset, 1),
            width=round(bar, 1),
            y=round(HEIGHT - PAD - h, 1),
            height=round(h, 1),
            label=f"{day:%d %b}: {value} {what}",
        )

    return Chart(
        width=WIDTH,
        height=HEIGHT,
        top=top,
        payments=tuple(one(i, p, 0, "payments", d) for i, (d, p, _) in enumerate(days)),
        codes=tuple(one(i, c, bar, "codes", d) for i, (d, _, c) in enumerate(days)),
        first=f"{days[0][0]:%d %b}" if days else "",
        last=f"{days[-1][0]:%d %b}" if days else "",
    )
