"""The Omnivoltaic API emulator: a test double of the upstream API (OMNIVOLTAIC.md).

`app` is the Flask app (the one place under bot/ that imports Flask), `store` its SQLite
state shared by every process that embeds it.
"""

from bot.omnivoltaic.emulator.app import EmulatorTransport, create_emulator

__all__ = ["EmulatorTransport", "create_emulator"]
