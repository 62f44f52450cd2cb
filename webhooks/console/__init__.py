"""The operator console at /console/: a Flask blueprint, server-rendered (Jinja templates,
plain CSS, no script), its templates and stylesheet shipped inside this package.

web.py (the blueprint, the sign-in guard, CSRF, masking), auth.py (sign in and out),
pages.py (what operators read), actions.py (what admins do, each audited), chart.py (the
overview's SVG). The core behind it is bot/operators/.

`install` turns it on only with CONSOLE_SECRET_KEY (it signs the session cookies); the
cookies are HttpOnly, SameSite=Lax, limited to /console, and Secure when PUBLIC_BASE_URL
is https.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException

from bot.settings import Settings
from webhooks.console import actions, auth, pages
from webhooks.console.web import bp, csrf

IDLE = timedelta(hours=2)  # a session unused this long ends (Flask's permanent session)

__all__ = ["actions", "install", "pages"]


def install(app: Flask, settings: Settings) -> bool:
    """Register the console on `app` when CONSOLE_SECRET_KEY is set (the start-up warning
    of webhooks.app names it when it is not)."""
    if not settings.console_secret_key:
        return False
    secure = (settings.public_base_url or "").lower().startswith("https://")
    app.config.update(
        SECRET_KEY=settings.console_secret_key,
        SESSION_COOKIE_NAME="ovbot_console",
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        PERMANENT_SESSION_LIFETIME=IDLE,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=secure,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked by the console's guard, not on webhooks
        WTF_CSRF_TIME_LIMIT=None,  # as long as the session
        WTF_CSRF_SSL_STRICT=secure,
    )
    csrf.init_app(app)
    auth.install(app)
    app.register_blueprint(bp)
    return True


@bp.errorhandler(HTTPException)
def refused(error: HTTPException) -> tuple[str, int]:
    """A refusal as a page of the console (a webhook's refusals keep their own format)."""
    return render_template("console/error.html", error=error), error.code or 500
