"""gunicorn settings, for `gunicorn -c config/gunicorn.conf.py 'webhooks.app:create_app()'`.

The settings live in the package (webhooks/gunicorn_conf.py) so that `ovbot serve` works
from an installed wheel; this file re-exports them.  Add your own overrides below.
"""

from webhooks import gunicorn_conf
from webhooks.gunicorn_conf import *  # noqa: F403

gunicorn_conf.scrub_logs()  # each time this file is read: secrets masked in every log line
