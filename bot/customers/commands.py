"""The customer command parser: text in, `Command` out.  Pure: no I/O, no state.

Customers type on feature phones and in chat apps, so the parser forgives case, accents,
spaces, punctuation, a leading "/" and Telegram's "@botname" suffix.  What it cannot read
becomes `Command(UNKNOWN)`, which the conversation answers with help.  The keywords are
data (`KEYWORDS`), so help texts and the README can list them per language.  One command
has no keyword but a shape: a code typed back to us (`COACH`, the code coach).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

CODE = "code"
RESEND = "resend"
STATUS = "status"
HISTORY = "history"
DEVICES = "devices"
HELP = "help"
LANG = "lang"
START = "start"
STOP = "stop"
COACH = "coach"  # a code typed back to us (recognised by its shape, not by a keyword)
UNKNOWN = "unknown"
NAMES = (CODE, RESEND, STATUS, HISTORY, DEVICES, HELP, LANG, START, STOP, COACH, UNKNOWN)
SHAPES = (COACH,)  # the commands that have no keyword

MAX_LENGTH = 160


@dataclass(frozen=True)
class Command:
    name: str
    device: str | None = None  # upper-case product id, serial or serial suffix
    argument: str | None = None  # LANG: "en", "fr", "sw", or None; COACH: the digits


# Keywords by language; the first of each tuple is the one help texts show.  Matching
# ignores case and accents, and every keyword works whatever the customer's language.
# A keyword may be two words ("TUMA TENA").
KEYWORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        CODE: ("CODE", "CODES", "TOKEN"),
        RESEND: ("RESEND", "AGAIN", "SEND AGAIN"),
        STATUS: ("STATUS", "BALANCE", "DAYS"),
        HISTORY: ("HISTORY",),
        DEVICES: ("DEVICES", "DEVICE"),
        HELP: ("HELP", "INFO", "?"),
        LANG: ("LANG", "LANGUAGE"),
        START: ("START", "UNSTOP", "YES"),
        # The carriers' opt-out words, as Twilio honours them.
        STOP: ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"),
    },
    "fr": {
        CODE: ("CODE", "JETON"),
        RESEND: ("RENVOYER", "RENVOI"),
        STATUS: ("SOLDE", "STATUT", "JOURS"),
        HISTORY: ("HISTORIQUE",),
        DEVICES: ("APPAREILS", "APPAREIL"),
        HELP: ("AIDE",),
        LANG: ("LANGUE",),
        START: ("DEMARRER", "REPRENDRE"),
        STOP: ("ARRET", "ARRETER"),
    },
    "sw": {
        CODE: ("NAMBA", "MSIMBO", "TOKENI"),
        RESEND: ("TUMA", "TUMA TENA"),
        STATUS: ("SALIO", "HALI", "SIKU"),
        HISTORY: ("HISTORIA",),
        DEVICES: ("VIFAA", "KIFAA"),
        HELP: ("MSAADA",),
        LANG: ("LUGHA",),
        START: ("ANZA",),
        STOP: ("SIMAMA",),
    },
}

# What LANG accepts, folded to upper case without accents.
LANGUAGE_NAMES = {
    "EN": "en",
    "ENG": "en",
    "ENGLISH": "en",
    "ANGLAIS": "en",
    "KIINGEREZA": "en",
    "FR": "fr",
    "FRANCAIS": "fr",
    "FRENCH": "fr",
    "KIFARANSA": "fr",
    "SW": "sw",
    "SWAHILI": "sw",
    "KISWAHILI": "sw",
}

# What may follow each keyword.  HELP and STOP ignore the rest of the message (an opt-out
# is honoured however it is phrased); START too, for Telegram's "/start <payload>" links.
_DEVICE, _LANGUAGE, _NOTHING, _ANYTHING = "device", "language", "nothing", "anything"
_TAKES = {
    CODE: _DEVICE,
    RESEND: _DEVICE,
    STATUS: _DEVICE,
    HISTORY: _DEVICE,
    DEVICES: _NOTHING,
    LANG: _LANGUAGE,
    HELP: _ANYTHING,
    START: _ANYTHING,
    STOP: _ANYTHING,
}


def _index(keywords: dict[str, dict[str, tuple[str, ...]]]) -> dict[str, str]:
    index: dict[str, str] = {}
    for by_command in keywords.values():
        for name, words in by_command.items():
            for word in words:
                if index.setdefault(word, name) != name:
                    raise ValueError(f"keyword {word!r} means both {index[word]} and {name}")
    return index


_LOOKUP = _index(KEYWORDS)
_UNKNOWN = Command(UNKNOWN)
_BOT_SUFFIX = re.compile(r"^(\W*\w+)@\w*BOT\b")  # "/code@MyBot 1001"; bot names end in "bot"
_HYPHEN = re.compile(r"(?<=[A-Z])-(?=[0-9])")  # "OVES-001001", "CODE-1001"
_TOKEN = re.compile(r"[^\W_]+|\?")  # words of letters and digits, and "?"
_GLUED = re.compile(r"([A-Z]+)([0-9][A-Z0-9]*)")  # "CODE1001"
_DEVICE_REF = re.compile(r"(?=[A-Z]*[0-9])[A-Z0-9]{1,24}")  # ASCII, at least one digit
# A code as the keypad wants it ("*024 413 975 593 119 504 641#"), or as typed back:
# digits with any of "*", "#", spaces and dashes; 21 digits, or 20 or 22 (a mistype).
_CODE_LIKE = re.compile(r"[0-9*#\s-]+", re.ASCII)
CODE_DIGITS = range(20, 23)


def _fold(text: str) -> str:
    """Upper case without accents: "Arrêt" -> "ARRET", "français" -> "FRANCAIS"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()


def _tokens(text: str) -> list[str]:
    folded = _HYPHEN.sub("", _BOT_SUFFIX.sub(r"\1", _fold(text).strip(), count=1))
    tokens = _TOKEN.findall(folded)
    tokens = tokens[:1] + [t for t in tokens[1:] if t != "?"]  # "CODE?" is CODE
    glued = _GLUED.fullmatch(tokens[0]) if tokens else None
    if glued and glued.group(1) in _LOOKUP:
        tokens[:1] = glued.groups()
    return tokens


def _device(name: str, rest: list[str]) -> Command:
    if not rest:
        return Command(name)
    if len(rest) == 1 and _DEVICE_REF.fullmatch(rest[0]):
        return Command(name, device=rest[0])
    return _UNKNOWN


def _language(name: str, rest: list[str]) -> Command:
    if len(rest) > 1:
        return _UNKNOWN
    return Command(name, argument=LANGUAGE_NAMES.get(rest[0]) if rest else None)


_ARGUMENTS: dict[str, Callable[[str, list[str]], Command]] = {
    _DEVICE: _device,
    _LANGUAGE: _language,
    _NOTHING: lambda name, rest: _UNKNOWN if rest else Command(name),
    _ANYTHING: lambda name, rest: Command(name),
}


@functools.lru_cache(maxsize=1024)  # a message is parsed several times (bot/inbound.py)
def parse(text: str) -> Command:
    """Read one customer message.  Never raises; junk is `Command(UNKNOWN)`."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        return _UNKNOWN
    if _CODE_LIKE.fullmatch(text):
        digits = "".join(ch for ch in text if ch.isdigit())
        if len(digits) in CODE_DIGITS:
            return Command(COACH, argument=digits)
    tokens = _tokens(text)
    for width in (2, 1):
        name = _LOOKUP.get(" ".join(tokens[:width])) if len(tokens) >= width else None
        if name is not None:
            return _ARGUMENTS[_TAKES[name]](name, tokens[width:])
    return _UNKNOWN
