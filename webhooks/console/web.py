"""The console's blueprint and what every view shares: the deps, the signed-in operator,
the admin check, the masking of phone numbers for viewers.

Every view needs a signed-in operator (`guard`, before any view: a forgotten decorator
cannot open a page), and every POST a CSRF token (Flask-WTF), checked after the sign-in
so that a stranger is sent to the login page, not told about tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, abort, current_app, redirect, request, session, url_for
from flask_login import UserMixin, current_user, logout_user
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Response

from bot.deps import Deps
from bot.storage.models import Operator
from bot.text.phones import mask

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
csrf = CSRFProtect()
OPEN = frozenset({"console.login", "console.static"})
SESSION_HOURS = 12  # at most, from sign-in; idle sessions end sooner (PERMANENT_SESSION_LIFETIME)
F = TypeVar("F", bound=Callable[..., Any])


class Signed(UserMixin):  # type: ignore[misc]
    """The operator a browser is signed in as (a copy: no database session behind it)."""

    def __init__(self, operator: Operator, session_id: str) -> None:
        self.operator_id = operator.id
        self.email = operator.email
        self.role = operator.role
        self._session_id = session_id

    def get_id(self) -> str:
        return self._session_id

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def deps() -> Deps:
    return cast(Deps, current_app.extensions["ovbot"])


def operator() -> Signed:
    return cast(Signed, current_user._get_current_object())


@bp.before_request
def guard() -> Response | None:
    if request.endpoint in OPEN:
        if request.endpoint == "console.login" and request.method == "POST":
            csrf.protect()
        return None
    if not current_user.is_authenticated or _expired():
        logout_user()
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
    if request.method == "POST":
        csrf.protect()  # a 400 when the token is missing or wrong
    return None


def _expired() -> bool:
    since = session.get("since")
    if not isinstance(since, str):
        return True
    try:
        started = datetime.fromisoformat(since)
    except ValueError:
        return True
    return (deps().clock() - started).total_seconds() > SESSION_HOURS * 3600


def admin_only(view: F) -> F:
    """A viewer asking for an admin action gets 403, and nothing changes."""

    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if not operator().is_admin:
            abort(403, description="this needs an admin operator")
        return view(*args, **kwargs)

    return cast(F, checked)


def console_path(target: str, default: str) -> str:
    """`target` if it is a page of the console (never another site: no `//host`, no
    backslash a browser would read as a slash), else `default`."""
    if target.startswith("/console/") and "//" not in target and "\\" not in target:
        return target
    return default


def back(default: str) -> str:
    """Where a form asked to go back to (its `back` field), if a console page."""
    return console_path(request.form.get("back", ""), default)


@bp.app_template_filter("phone")
def phone(value: str | None) -> str:
    """Phone numbers in clear for admins, masked for viewers (and in every log)."""
    if not value:
        return ""
    if current_user.is_authenticated and operator().is_admin:
        return value
    return mask(value)


@bp.app_template_filter("when")
def when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "-"
