"""Settings for the test suite: the base settings plus fast hashing, plain static files, and a
broker folder and SQLite file of the suite's own."""

import os
import tempfile

from loyalty.settings.base import *  # noqa: F403
from loyalty.settings.base import CELERY_BROKER_URL, DATABASES, VAR_DIR, env

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Hashed manifest names 404 under pytest-django's live_server.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: a worker thread or process must see the same test database.
    DATABASES["default"]["TEST"] = {
        "NAME": env("TEST_SQLITE_PATH", default=str(VAR_DIR / "test.sqlite3"))
    }

if CELERY_BROKER_URL.startswith("filesystem://"):
    # The embedded broker gets a folder per test session, so that a developer's running
    # `make run` worker never takes the suite's messages (and the reverse). Exported, so that
    # worker processes a test starts use the same folder.
    if "CELERY_BROKER_DIR" not in os.environ:
        os.environ["CELERY_BROKER_DIR"] = tempfile.mkdtemp(prefix="loyalty-test-broker-")
    _folder = os.environ["CELERY_BROKER_DIR"]
    CELERY_BROKER_DIR = _folder
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": f"{_folder}/queue",
        "data_folder_out": f"{_folder}/queue",
        "control_folder": f"{_folder}/control",
        "polling_interval": 0.1,
    }

# As in production: tests that deliver to a receiver on this machine allow it themselves.
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=False)

# No control groups unless a test sets their shares: whether a member is drawn into one
# depends on its database id, which no test may depend on (tests/loyalty/test_control_groups.py
# sets the shares it tests).
LOYALTY_UNIVERSAL_CONTROL_SHARE = 0.0
LOYALTY_ACTION_HOLDOUT_SHARE = 0.0

# Rates far above anything the suite sends: many tests make dozens of requests as one user
# (tests/test_route_matrix.py), and the default cache outlives a test. Tests of throttling set
# low rates with the `settings` fixture and clear the cache.
THROTTLE_RATES = {scope: "1000000/minute" for scope in THROTTLE_RATES}  # noqa: F405
# Django's test client logs in with `authenticate()` and no request, which django-axes refuses;
# the lockout tests turn it on with the `settings` fixture (tests/loyalty/test_rate_limits.py).
AXES_ENABLED = False
