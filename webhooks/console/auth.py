"""Signing in and out of the console (Flask-Login): the password check, the lock-out and
the failure count are bot/operators/accounts.py's; here the form and the cookie.

The cookie holds the operator's id and session token (a new password signs every browser
out); "strong" session protection drops it when the browser's address or agent changes.
"""

from __future__ import annotations

from flask import Flask, flash, redirect, render_template, request, session, url_for
from flask_login import LoginManager, login_user, logout_user
from werkzeug.wrappers import Response

from bot.operators import accounts
from bot.storage import db
from webhooks.console.web import Signed, bp, console_path, deps

login_manager = LoginManager()
login_manager.session_protection = "strong"
login_manager.login_view = "console.login"
login_manager.login_message = "Sign in to see the console."


def load(session_id: str) -> Signed | None:
    with db.reading(deps().sessions) as s:
        found = accounts.by_session_id(s, session_id)
        return Signed(found, session_id) if found is not None else None


login_manager.user_loader(load)


def install(app: Flask) -> None:
    login_manager.init_app(app)


def _next() -> str:
    """Where to go after signing in: the page asked for, if a console page."""
    return console_path(request.args.get("next", ""), url_for("console.overview"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    if request.method == "GET":
        return render_template("console/login.html")
    email = request.form.get("email", "")
    result = accounts.authenticate(
        deps().sessions, email, request.form.get("password", ""), now=deps().clock()
    )
    if result.outcome == "locked":
        until = f"{result.locked_until:%H:%M} UTC" if result.locked_until else "later"
        error = f"Too many wrong passwords: this account is locked until {until}."
        return render_template("console/login.html", error=error, email=email), 429
    if result.outcome != "ok":
        error = "Wrong email or password."
        return render_template("console/login.html", error=error, email=email), 401
    assert result.session_id is not None  # an ok login names its session
    signed = load(result.session_id)
    assert signed is not None
    session.clear()  # no state carried over from before the sign-in
    session.permanent = True
    session["since"] = deps().clock().isoformat()
    login_user(signed)
    return redirect(_next())


@bp.post("/logout")
def logout() -> Response:
    logout_user()
    session.clear()
    flash("Signed out.")
    return redirect(url_for("console.login"))
