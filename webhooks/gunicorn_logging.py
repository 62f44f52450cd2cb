"""gunicorn's own lines, the error log and the access log, written like ours.

config/gunicorn.conf.py names `Logger` as gunicorn's `logger_class`: the project's
formatter (LOG_FORMAT: text, or one JSON object a line), scrubbed, and each access line
under the request id the app echoed in the response (webhooks/app.py).  `scrub_logs`
makes every record of the master and the workers go through bot/text/logs.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gunicorn import glogging

from bot.settings import ConfigError, Settings, read_log_format
from bot.text import logs


class Logger(glogging.Logger):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn's logger, writing its lines with the project's formatter."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        formatter = logs.formatter(read_log_format())
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):  # gunicorn's own, not a user's
                    handler.setFormatter(formatter)

    def access(self, resp: Any, req: Any, environ: Any, request_time: timedelta) -> None:
        """The access line, under the request id the app put on the response."""
        given = [v for k, v in getattr(resp, "headers", ()) if k.lower() == "x-request-id"]
        token = logs.REQUEST_ID.set(given[0] if given else None)
        try:
            super().access(resp, req, environ, request_time)
        finally:
            logs.REQUEST_ID.reset(token)


def scrub_logs() -> None:
    """Every log record of the master and the workers (forked from it), gunicorn's own
    included, goes through bot/text/logs.py's scrubbing: secrets, PINs and phone numbers
    masked.  The app (bootstrap.build) registers the settings' secrets again."""
    logs.install()
    try:
        logs.hide_settings(Settings.from_env())
    except ConfigError:
        pass  # the app names the bad setting when it starts
