"""Reply wording, kept apart from logic: one TOML file of templates per language.

`config/messages/<lang>.toml` maps keys to `str.format` templates ("New code for
{device}: {code}").  English is complete and is the fallback: a key missing in another
language, or a language with no file, renders in English.  A key missing everywhere is a
programming error (KeyError).  Loading checks that every translation uses exactly the
placeholders of its English template, so a typo fails at start-up, not in a customer's SMS.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType

from bot.text import grammar

FALLBACK = "en"
DEFAULT_DIRECTORY = Path(__file__).resolve().parents[2] / "config" / "messages"


class MessagesError(ValueError):
    """A template file is missing, unreadable or inconsistent; the message names it."""


def placeholders(template: str) -> frozenset[str]:
    """The field names a template uses: "{code} ({days} days)" -> {"code", "days"}."""
    names = set()
    for _, field, spec, _ in string.Formatter().parse(template):
        if field is not None:
            names.add(field.split(".")[0].split("[")[0])
            grammar.check_spec(spec or "")  # plural and elision specs (bot/text/grammar.py)
    return frozenset(names)


def _read(path: Path) -> dict[str, str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MessagesError(f"{path}: cannot read templates: {exc}") from exc
    for key, template in data.items():
        if not isinstance(template, str):
            raise MessagesError(f"{path}: {key} must be a string")
        try:
            placeholders(template)
        except ValueError as exc:
            raise MessagesError(f"{path}: {key} is not a valid template: {exc}") from exc
    return data


def _check(path: Path, templates: Mapping[str, str], english: Mapping[str, str]) -> None:
    for key, template in templates.items():
        if key not in english:
            raise MessagesError(f"{path}: {key} is not a key of {FALLBACK}.toml")
        want, got = placeholders(english[key]), placeholders(template)
        if want != got:
            raise MessagesError(
                f"{path}: {key} uses placeholders {sorted(got)} "
                f"but {FALLBACK}.toml uses {sorted(want)}"
            )


@dataclass(frozen=True)
class Messages:
    templates: Mapping[str, Mapping[str, str]]  # language -> key -> template

    @classmethod
    def load(cls, directory: Path | str | None = None) -> Messages:
        """Read every `<lang>.toml` in `directory` (default: the repository's config)."""
        folder = Path(directory) if directory is not None else DEFAULT_DIRECTORY
        english_path = folder / f"{FALLBACK}.toml"
        if not english_path.is_file():
            raise MessagesError(f"{english_path}: the {FALLBACK} templates are missing")
        english = _read(english_path)
        templates = {FALLBACK: MappingProxyType(english)}
        for path in sorted(folder.glob("*.toml")):
            if path.stem != FALLBACK:
                translated = _read(path)
                _check(path, translated, english)
                templates[path.stem] = MappingProxyType(translated)
        return cls(MappingProxyType(templates))

    def languages(self) -> tuple[str, ...]:
        """The languages with templates, English first: ("en", "fr", "sw")."""
        return (FALLBACK, *sorted(lang for lang in self.templates if lang != FALLBACK))

    def template(self, lang: str | None, key: str) -> str:
        """The raw template for `key` in `lang`, falling back to English."""
        translated = self.templates.get((lang or FALLBACK).lower(), {})
        if key in translated:
            return translated[key]
        try:
            return self.templates[FALLBACK][key]
        except KeyError:
            raise KeyError(f"no message {key!r} in {FALLBACK}.toml") from None

    def render(self, lang: str | None, key: str, **values: object) -> str:
        """`key` in `lang` with `values` filled in.  A missing value is a KeyError.

        Plural and elision specs follow the grammar of the template's own language (the
        English one when `key` fell back to English)."""
        lang = (lang or FALLBACK).lower()
        own = lang if key in self.templates.get(lang, {}) else FALLBACK
        return grammar.fill(self.template(lang, key), own, values)


def format_date(value: date | None) -> str:
    """A date as replies show it: ISO, the same in every language; "-" for none."""
    return value.strftime("%Y-%m-%d") if value else "-"
