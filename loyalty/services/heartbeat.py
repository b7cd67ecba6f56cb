"""Worker liveness rows."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from loyalty.models import WorkerHeartbeat

# A day of minute-beats is enough history to see when a worker stopped.
HEARTBEAT_RETENTION = timedelta(days=1)


@transaction.atomic
def record_worker_heartbeat(*, hostname: str) -> WorkerHeartbeat:
    """Write one heartbeat and drop those older than the retention window."""
    WorkerHeartbeat.objects.filter(beat_at__lt=timezone.now() - HEARTBEAT_RETENTION).delete()
    return WorkerHeartbeat.objects.create(hostname=hostname)
