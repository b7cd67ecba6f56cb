"""A worker that starts reports at once (celery's worker_ready), so that the home page does
not call a healthy start "no worker"; without a database it starts anyway."""

import logging
import socket

import pytest
from celery.signals import worker_ready
from django.db import OperationalError

from loyalty.models import WorkerHeartbeat
from loyalty.services import heartbeat

pytestmark = pytest.mark.django_db


def test_a_worker_that_becomes_ready_records_a_heartbeat():
    assert WorkerHeartbeat.objects.count() == 0

    worker_ready.send(sender=None)

    assert list(WorkerHeartbeat.objects.values_list("hostname", flat=True)) == [
        socket.gethostname()
    ]


def test_without_a_database_the_worker_logs_and_goes_on(monkeypatch, caplog):
    def refuse(**_):
        raise OperationalError("connection refused")

    monkeypatch.setattr(heartbeat, "record_worker_heartbeat", refuse)

    with caplog.at_level(logging.WARNING, logger="loyalty.celery"):
        answers = worker_ready.send(sender=None)

    assert [answer for _, answer in answers if isinstance(answer, Exception)] == []
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("WARNING", "Could not record the worker's first heartbeat.")
    ]
    assert WorkerHeartbeat.objects.count() == 0
