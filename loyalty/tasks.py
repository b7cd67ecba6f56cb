"""Celery entry points of the loyalty app."""

import socket

from celery import shared_task

from loyalty.services.heartbeat import record_worker_heartbeat


@shared_task(name="loyalty.record_worker_heartbeat_task")
def record_worker_heartbeat_task() -> int:
    """Runs every minute from beat: proves to the home page that a worker is alive."""
    return record_worker_heartbeat(hostname=socket.gethostname()).pk
