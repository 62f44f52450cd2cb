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
# The default access log format includes the query string; ours carries no secrets, but
# never log request bodies (they hold phone numbers and PINs).
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
