"""The Celery application: configured from Django settings (the CELERY_ namespace)."""

import os
from pathlib import Path

from celery import Celery
from celery.signals import worker_init

from loyalty import broker

# Workers and beat are production processes like the web server, and must run the settings it
# runs (the same keys decrypt webhook secrets and key erasure tombstones): production unless the
# environment names another. Importing the `loyalty` package runs this line first, so it is also
# the default that loyalty/wsgi.py and asgi.py get. manage.py names the development settings
# before it imports anything; `make run` and the tests name theirs.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.production")
broker.install()

app = Celery("loyalty")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def ensure_broker_folders() -> None:
    """kombu's file transport needs its folders before a worker or a producer starts."""
    options = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


@worker_init.connect
def _prepare_worker(**_: object) -> None:
    ensure_broker_folders()
