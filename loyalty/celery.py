"""The Celery application: configured from Django settings (the CELERY_ namespace)."""

import logging
import os
import socket
from pathlib import Path

from celery import Celery
from celery.signals import worker_init, worker_ready

from loyalty import broker

# Workers and beat are production processes like the web server, and must run the settings it
# runs (the same keys decrypt webhook secrets and key erasure tombstones): production unless the
# environment names another. Importing the `loyalty` package runs this line first, so it is also
# the default that loyalty/wsgi.py and asgi.py get. manage.py names the development settings
# before it imports anything; `make run` and the tests name theirs.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.production")
broker.install()

logger = logging.getLogger(__name__)

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


@worker_ready.connect
def _record_first_heartbeat(**_: object) -> None:
    """A worker that has just started reports at once, not a beat interval later, so that the
    home page does not call a healthy start "no worker". Never keeps a worker from starting:
    without a database it logs and goes on (beat's heartbeat task reports once it is back)."""
    from django.db import DatabaseError, InterfaceError  # Django is set up by now

    from loyalty.services.heartbeat import record_worker_heartbeat

    try:
        record_worker_heartbeat(hostname=socket.gethostname())
    except (DatabaseError, InterfaceError):
        logger.warning("Could not record the worker's first heartbeat.", exc_info=True)
