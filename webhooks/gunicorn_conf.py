"""gunicorn settings for the web process: `ovbot serve` loads them as
`-c python:webhooks.gunicorn_conf`, so they work from an installed wheel;
config/gunicorn.conf.py re-exports them for those who run `gunicorn -c` by hand.

gunicorn reads the module-level names that are its settings.  Its own lines, the error log
and the access log, are written by `Logger`: the project's format (LOG_FORMAT, text or
JSON), scrubbed, and each access line carries the request id the app echoed.
"""

from __future__ import annotations

import multiprocessing
import os
from datetime import timedelta
from typing import Any

from gunicorn import glogging

from bot.settings import ConfigError, Settings, read_log_format
from bot.text import logs

__all__ = [
    "access_log_format",
    "accesslog",
    "bind",
    "forwarded_allow_ips",
    "graceful_timeout",
    "logger_class",
    "threads",
    "timeout",
    "workers",
]

bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Above the USSD mint budget and the Omnivoltaic timeout, below the providers' own limits.
timeout = 30
graceful_timeout = 20
accesslog = "-"
# The method, the path and the protocol, never the query string (a callback URL may carry
# ?token=...), and never request bodies (they hold phone numbers and PINs).
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
logger_class = "webhooks.gunicorn_conf.Logger"


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


scrub_logs()
