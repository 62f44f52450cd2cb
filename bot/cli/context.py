"""The click context object of `ovbot`: settings and deps, built on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bot.settings import ConfigError, Settings

if TYPE_CHECKING:
    from bot.deps import Deps


class _Context:
    """Builds settings and deps on first use, so `--help` needs no configuration."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._deps: Deps | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings.from_env()
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._settings

    @property
    def deps(self) -> Deps:
        if self._deps is None:
            from bot import bootstrap

            try:
                self._deps = bootstrap.build(self.settings)
            except ConfigError as exc:  # e.g. OVBOT_CONFIG_DIR's wording is broken
                raise click.ClickException(str(exc)) from None
        return self._deps

    def close(self) -> None:
        if self._deps is not None:
            self._deps.close()
