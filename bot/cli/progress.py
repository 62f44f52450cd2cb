"""Progress of a long operator command whose total is not known in advance (a paged sync).

On a terminal: click's progress bar (pulsing, with the count). Elsewhere (a log file, a
pipe, CI): one plain line every `every` items, on standard error, so logs stay readable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

import click

EVERY = 100  # one API page


@contextmanager
def counter(
    label: str, *, file: TextIO | None = None, every: int = EVERY
) -> Iterator[Callable[[int], None]]:
    """A callback taking the running count, drawn as a bar on a terminal, else as lines."""
    stream = file if file is not None else sys.stderr
    if not stream.isatty():
        yield lambda count: _line(stream, label, count, every)
        return
    # The iterable is a stand-in with no length: the total is unknown, the bar only counts.
    nothing: Iterator[int] = (n for n in range(0))
    with click.progressbar(nothing, label=label.capitalize(), show_pos=True, file=stream) as bar:
        seen = 0

        def advance(count: int) -> None:
            nonlocal seen
            bar.update(count - seen)
            seen = count

        yield advance


def _line(stream: TextIO, label: str, count: int, every: int) -> None:
    if count % every == 0:
        click.echo(f"{count} {label} so far", file=stream)
