"""A Celery app for one test: its worker stalls inside retraining at the moment the candidate
would be registered (artifacts written, no version yet) and says so in a marker file, so that
the test can SIGKILL it there.

Used as `celery -A tests.reviews.stalling_retraining_worker worker`; everything else is the
project's own app and configuration.
"""

import os
import time
from pathlib import Path

from celery.signals import task_prerun

from loyalty.celery import app

__all__ = ["app"]
STALL_SECONDS = 300


@task_prerun.connect
def _stall_before_registering(**_: object) -> None:
    from predictions.services import training

    if getattr(training, "_stalls", False):
        return
    register = training._register

    def stalled_register(**kwargs):
        Path(os.environ["STALL_MARKER"]).write_text(str(kwargs["directory"]))
        time.sleep(STALL_SECONDS)
        return register(**kwargs)

    training._register = stalled_register
    training._stalls = True
