"""Packaging beyond what pyproject.toml can say: the top-level `config/` folder (what
operators edit) ships inside the wheel as the package `bot.config`, so the wording is
package data read with importlib.resources, from a wheel as from a checkout.

pyproject.toml's `packages.find` cannot add a package that lives outside its parent's
folder, so the package list is built here: every package under bot/ and webhooks/, plus
`bot.config` (and `bot.config.messages`) mapped onto config/.  Editable installs (`make install`) map it the same way.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["bot", "bot.*", "webhooks", "webhooks.*"]),
        "bot.config",
        "bot.config.messages",
    ],
    package_dir={"bot.config": "config"},
    package_data={
        "bot": [
            "storage/migrations/*.py",
            "storage/migrations/versions/*.py",
            "storage/migrations/*.mako",
        ],
        # The console's pages and stylesheet: served from the package (no CDN, no build).
        "webhooks": ["console/templates/console/*.html", "console/static/*.css"],
        "bot.config": ["example.env", "gunicorn.conf.py"],
        "bot.config.messages": ["*.toml"],
    },
)
