"""gunicorn settings for `ovbot serve` and the Procfile's web process."""
import multiprocessing
import os

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


def _scrub_logs() -> None:
    """Every log record of the master and the workers (forked from it), gunicorn's own
    included, goes through bot/text/logs.py's scrubbing: secrets, PINs and phone numbers
    masked.  The app (bootstrap.build) registers the settings' secrets again."""
    from bot.settings import ConfigError, Settings
    from bot.text import logs

    logs.install()
    try:
        logs.hide_settings(Settings.from_env())
    except ConfigError:
        pass  # the app names the bad setting when it starts


_scrub_logs()


# Metrics (bot/metrics.py): a worker that exits has its live gauges dropped from the sum.
from bot.metrics import child_exit  # noqa: E402, F401 - gunicorn's hook, found by name
