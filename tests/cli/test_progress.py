"""Progress of `ovbot sync-devices`: a bar on a terminal, plain count lines elsewhere."""

from __future__ import annotations

import io

from bot.cli.progress import counter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_bar_counts_what_was_done():
    screen = Terminal()
    with counter("devices synced", file=screen) as progress:
        for count in range(1, 251):
            progress(count)
    frames = screen.getvalue().split("\r")
    assert "Devices synced" in frames[-1] and "]  250" in frames[-1]
    assert "so far" not in screen.getvalue()


def test_elsewhere_one_plain_line_per_page():
    log = io.StringIO()
    with counter("devices synced", file=log, every=100) as progress:
        for count in range(1, 251):
            progress(count)
    assert log.getvalue() == "100 devices synced so far\n200 devices synced so far\n"
