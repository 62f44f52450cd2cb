"""gunicorn settings for `ovbot serve` (which finds this file in the installed package,
bot.config) and for `gunicorn -c config/gunicorn.conf.py 'webhooks.app:create_app()'`."""

import multiprocessing
import os

from webhooks.gunicorn_logging import scrub_logs

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
# Its error and access lines in the project's format (LOG_FORMAT), with request ids.
logger_class = "webhooks.gunicorn_logging.Logger"

scrub_logs()  # every log record, gunicorn's own included, scrubbed


# Metrics (bot/metrics): a worker that exits has its live gauges dropped from the sum.
from bot.metrics import child_exit  # noqa: E402, F401 - gunicorn's hook, found by name
