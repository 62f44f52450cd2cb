"""The little grammar templates need: plural forms and French elision, as format specs.

Templates stay plain `str.format` text with the same placeholders in every language (the
loader checks it); what a language needs is written after the colon, so the wording stays
in the TOML files where translators see it:

- `{left:# try left|# tries left}`: the form for one, then the form for the others, `#`
  standing for the number; which is "one" follows each language's rule (CLDR): 1 in
  English and Swahili, 0 and 1 in French ("0 essai restant").
- `{name:de}`: French "de" before a name, elided before a vowel or a mute h ("d'Amina",
  "d'Hélène", "de Juma"). A given name's h is taken as mute: there is no rule to tell an
  aspirated one, and "d'H..." is the usual written form for names.

Any other spec is Python's own (`{days:>3}`).
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Mapping
from typing import Any

_VOWELS = frozenset("aeiouy")


def plural_is_one(lang: str, count: int) -> bool:
    """Whether `count` takes the "one" form in `lang` (CLDR cardinal rules)."""
    if lang == "fr":
        return count in (0, 1)
    return count == 1


def plural(lang: str, count: int, spec: str) -> str:
    """`spec` is "one|other" with `#` for the number."""
    one, other = spec.split("|")
    return (one if plural_is_one(lang, count) else other).replace("#", str(count))


def _plain(letter: str) -> str:
    return "".join(
        ch for ch in unicodedata.normalize("NFKD", letter) if not unicodedata.combining(ch)
    ).lower()


def elide_de(name: str) -> str:
    """French "de" + `name`: "d'Amina", "d'Yvonne", "d'Hassan", "de Juma", "de Yusuf"."""
    name = name.strip()
    letters = [_plain(ch) for ch in name[:2]] + ["", ""]
    first, second = letters[0], letters[1]
    vowel_sound = (
        first in _VOWELS - {"y"}
        or (first == "y" and second not in _VOWELS)  # Yvonne, not Yusuf
        or (first == "h" and second in _VOWELS)  # taken as a mute h
    )
    return f"d'{name}" if name and vowel_sound else f"de {name}".rstrip()


def check_spec(spec: str) -> None:
    """ValueError unless a spec this module reads is well formed (at load time)."""
    if "|" in spec and spec.count("|") != 1:
        raise ValueError(f"plural spec {spec!r} must be 'one|other'")


class _Formatter(string.Formatter):
    def __init__(self, lang: str) -> None:
        super().__init__()
        self.lang = lang

    def format_field(self, value: Any, format_spec: str) -> str:
        if "|" in format_spec:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"a plural spec needs a whole number, not {value!r}")
            return plural(self.lang, value, format_spec)
        if format_spec == "de":
            return elide_de(str(value))
        return str(super().format_field(value, format_spec))


def fill(template: str, lang: str, values: Mapping[str, object]) -> str:
    """`template` with `values`, reading the specs above in `lang`'s grammar."""
    return _Formatter(lang).vformat(template, (), values)
