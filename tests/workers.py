"""Helpers of the tests that start real worker processes (and kill them): wait for what a worker
does, and name the test database to a worker process the way its settings read it."""

import os
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def wait_until(check, *, timeout: float = 90.0, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def worker_database_url() -> str:
    """The test database as a DATABASE_URL, for a worker process started by the test."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker_process(app: str, *, queue: str, log, env: dict | None = None):
    """A `celery -A app worker` process (solo pool) on one queue of the test's broker and
    database, writing to `log`; the caller kills it. `env` adds variables."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app,
            "worker",
            "--pool=solo",
            "--queues",
            queue,
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": worker_database_url(), **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
