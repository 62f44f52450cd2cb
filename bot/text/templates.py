"""Reply wording, kept apart from logic: one TOML file of templates per language.

`config/messages/<lang>.toml` maps keys to `str.format` templates ("New code for
{device}: {code}"). The folder ships in the wheel as the package `bot.config` (setup.py)
and is read with importlib.resources, so an installed product needs no checkout; an
operator's own copy is `OVBOT_CONFIG_DIR/messages/<lang>.toml` (`Messages.configured`).
English is complete and is the fallback: a key missing in another language, or a
language with no file, renders in English. A key missing everywhere is a programming
error (KeyError). Loading checks that every translation uses exactly the placeholders of
its English template, so a typo fails at start-up, not in a customer's SMS.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType

from bot.settings import ConfigError
from bot.text import grammar

FALLBACK = "en"
PACKAGE = "bot.config"  # config/ in the wheel (setup.py maps it)
CONFIG_DIR_SETTING = "OVBOT_CONFIG_DIR"


class MessagesError(ConfigError, ValueError):
    """A template file is missing, unreadable or inconsistent; the message names it.

    A ConfigError: an operator's broken wording stops start-up like a bad setting."""


def packaged() -> Traversable:
    """The wording that ships with the code: config/messages in a checkout or the wheel."""
    return files(PACKAGE) / "messages"


def placeholders(template: str) -> frozenset[str]:
    """The field names a template uses: "{code} ({days} days)" -> {"code", "days"}."""
    names = set()
    for _, field, spec, _ in string.Formatter().parse(template):
        if field is not None:
            names.add(field.split(".")[0].split("[")[0])
            grammar.check_spec(spec or "")  # plural and elision specs (bot/text/grammar.py)
    return frozenset(names)


def _read(path: Traversable) -> dict[str, str]:
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


def _check(path: Traversable, templates: Mapping[str, str], english: Mapping[str, str]) -> None:
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
    def load(cls, directory: Traversable | str | None = None) -> Messages:
        """Read every `<lang>.toml` in `directory` (default: the packaged wording)."""
        folder = Path(directory) if isinstance(directory, str) else directory or packaged()
        english_path = folder / f"{FALLBACK}.toml"
        if not english_path.is_file():
            raise MessagesError(f"{english_path}: the {FALLBACK} templates are missing")
        english = _read(english_path)
        templates = {FALLBACK: MappingProxyType(english)}
        others = (p for p in folder.iterdir() if p.name.endswith(".toml") and p.is_file())
        for path in sorted(others, key=lambda p: p.name):
            lang = path.name.removesuffix(".toml")
            if lang != FALLBACK:
                translated = _read(path)
                _check(path, translated, english)
                templates[lang] = MappingProxyType(translated)
        return cls(MappingProxyType(templates))

    @classmethod
    def configured(cls, config_dir: str | None) -> Messages:
        """The operator's wording in `config_dir/messages` (OVBOT_CONFIG_DIR), else the
        packaged one.  A missing or broken copy is refused, naming the setting and the
        path: a typo there must stop start-up, not reach a customer's SMS."""
        if config_dir is None:
            return cls.load()
        folder = Path(config_dir).expanduser() / "messages"
        if not folder.is_dir():
            raise MessagesError(
                f"{CONFIG_DIR_SETTING}={config_dir}: {folder} is not a folder; it must hold "
                f"messages/{FALLBACK}.toml (copy config/messages from the project to start)"
            )
        try:
            return cls.load(folder)
        except MessagesError as exc:
            raise MessagesError(f"{CONFIG_DIR_SETTING}={config_dir}: {exc}") from exc

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
