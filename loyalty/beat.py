"""Beat's scheduler: django-celery-beat's, with the settings' entries as seeds only.

django-celery-beat writes every CELERY_BEAT_SCHEDULE entry over its database row each time beat
starts, so an admin's change to a schedule (the refresh at another hour, another `every_days`)
would last until the next restart. Here an entry is written only when its row is missing: the
settings give a new install its schedule, and the admin owns it from then on.
"""

from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry


class SeedingEntry(ModelEntry):
    @classmethod
    def from_entry(cls, name, app=None, **entry):
        existing = PeriodicTask._default_manager.filter(name=name).first()
        if existing is not None:
            return cls(existing, app=app)
        return super().from_entry(name, app=app, **entry)


class SeedingDatabaseScheduler(DatabaseScheduler):
    Entry = SeedingEntry
