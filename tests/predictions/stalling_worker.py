"""A Celery app for one test: its worker stalls inside a scoring chunk, after predicting and
right before writing, and says so in a marker file, so that the test can SIGKILL it there.

Used as `celery -A tests.predictions.stalling_worker worker`; everything else is the project's
own app and configuration.
"""

import os
import time
from pathlib import Path

from celery.signals import task_prerun

from loyalty.celery import app

__all__ = ["app"]
STALL_SECONDS = 300


@task_prerun.connect
def _stall_before_writing(**_: object) -> None:
    from predictions.services.scoring import runs as scoring

    if getattr(scoring, "_stalls", False):
        return
    write = scoring._write_chunk

    def stalled_write(**kwargs):
        Path(os.environ["STALL_MARKER"]).write_text(str(kwargs["chunk_id"]))
        time.sleep(STALL_SECONDS)
        return write(**kwargs)

    scoring._write_chunk = stalled_write
    scoring._stalls = True
