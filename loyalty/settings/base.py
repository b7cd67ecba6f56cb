"""Settings read from the environment (django-environ); every variable is listed in .env.example.

With nothing set, the app runs embedded: a SQLite file and a Celery broker on the file system, so
that `make run` works on a bare machine. `DATABASE_URL` and `CELERY_BROKER_URL` switch to
PostgreSQL and Redis or RabbitMQ without a code change.
"""

import hashlib
import hmac
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Development only: production settings refuse to start with it (loyalty/settings/production.py).
DEVELOPMENT_SECRET_KEY = "insecure-development-key-change-me"
SECRET_KEY = env("DJANGO_SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
# Keys the digests of erased members' external ids (loyalty.models.ErasureTombstone). Changing
# it lets every erased id come back: set it on its own (not derived) before rotating SECRET_KEY.
ERASURE_TOMBSTONE_KEY = (
    env("ERASURE_TOMBSTONE_KEY", default="")
    or hmac.new(SECRET_KEY.encode(), b"erasure-tombstone", hashlib.sha256).hexdigest()
)
DEBUG = env.bool("DJANGO_DEBUG", default=True)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",  # API tokens, hashed at rest, with an expiry (see "API tokens" below)
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_celery_beat",
    "loyalty",
    "predictions",
    "reviews",
    "learning",
    "integrations",
    "home",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "loyalty.middleware.CurrentUserMiddleware",
]

ROOT_URLCONF = "loyalty.urls"
WSGI_APPLICATION = "loyalty.wsgi.application"
ASGI_APPLICATION = "loyalty.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "loyalty.context_processors.roles",
                "reviews.context_processors.workflow",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "loyalty.sqlite3"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions + WAL: a web process and a worker writing at once never hit
    # "database is locked" (a deferred transaction that reads, then writes, can fail at its
    # first write without waiting for the timeout). No ATOMIC_REQUESTS on SQLite.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # A new PostgreSQL connection costs ~7 ms; keep it for a minute.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and sessions ----------------------------------------------------------------------
# CACHE_URL names a cache that every web process shares (redis://...): sessions are then read
# from it and written through to the database (cached_db), one query less on every page
# (bench/pages.py). Unset (embedded), each process would hold a cache of its own, where a
# session ended in one process lives on in the others: sessions stay in the database alone.
# With it, a few facts every page reads come from the cache too (loyalty/shared_cache.py).
SHARED_CACHE = bool(env("CACHE_URL", default=""))
if SHARED_CACHE:
    CACHES = {"default": env.cache_url("CACHE_URL")}
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# Django's ModelBackend, with each user's permissions read through the shared cache.
AUTHENTICATION_BACKENDS = ["loyalty.access.CachedPermissionBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files: whitenoise; htmx (django-htmx) and plotly.min.js come from installed packages.
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("plotly", Path(__import__("plotly").__file__).parent / "package_data"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["loyalty.api.permissions.RoleModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "loyalty.api.exceptions.domain_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Loyalty Review API",
    "DESCRIPTION": "Push members and events in; pull predictions and decisions out.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # 3.1 for the `webhooks` section: what the product sends (integrations.api.schema).
    "OAS_VERSION": "3.1.0",
    "WEBHOOKS": [
        f"integrations.api.schema.{name}"
        for name in (
            "DECISION_CREATED",
            "DECISION_HELD_OUT",
            "REVIEW_ESCALATED",
            "MEMBER_ERASED",
            "MEMBER_CONSENT_WITHDRAWN",
            "MODEL_PROMOTED",
            "AUTOMATION_PAUSED",
            "AUTOMATION_RESUMED",
        )
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a `kind` field with different choices: name each enum once.
    "ENUM_NAME_OVERRIDES": {
        "PredictionKindEnum": "predictions.models.PredictionKind",
        "EventKindEnum": "loyalty.models.Event.Kind",
    },
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_DIR = Path(env("CELERY_BROKER_DIR", default=str(VAR_DIR / "celery-broker")))
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's file transport: no server, remote control works; in == out, fast polling.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "polling_interval": 0.1,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A message a killed worker held comes back after this many seconds: it must exceed the
    # longest task (CELERY_TASK_TIME_LIMIT) or a running task would be started twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=2 * 60 * 60)
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=60 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
CELERY_WORKER_LOST_WAIT = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# django-celery-beat's scheduler, except that the entries below only seed the database: an
# entry an admin edited keeps the edit when beat restarts (`loyalty.beat`).
CELERY_BEAT_SCHEDULER = "loyalty.beat:SeedingDatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# --- The loyalty program ----------------------------------------------------------------------
# Tiers from lowest to highest; an action's minimum tier is checked against this ladder.
# Tiers not on the ladder are accepted on import and rank below every listed tier.
LOYALTY_TIER_LADDER = env.list(
    "LOYALTY_TIER_LADDER", default=["bronze", "silver", "gold", "platinum"]
)
# The IANA zone (e.g. Europe/Paris) of imported times written without an offset; the import
# commands' --timezone overrides it. No default: unset, such times are refused, since guessing
# a zone would shift every event of a source by hours without anyone noticing.
# Control groups (loyalty.control_groups): the shares the settings row starts with; admins
# change them in the admin afterwards (audited).
LOYALTY_UNIVERSAL_CONTROL_SHARE = env.float("LOYALTY_UNIVERSAL_CONTROL_SHARE", default=0.05)
LOYALTY_ACTION_HOLDOUT_SHARE = env.float("LOYALTY_ACTION_HOLDOUT_SHARE", default=0.10)
# Training, the gate's evaluation and the monitor read at most this many members (a stable
# sample beyond it, `predictions.selectors.profiling_frames`): their memory follows this
# budget, not the size of the program.
LOYALTY_TRAINING_MAX_MEMBERS = env.int("LOYALTY_TRAINING_MAX_MEMBERS", default=250_000)
# Superseded predictions nothing points to are pruned this many days after they were scored
# (learning.services.housekeeping).
LOYALTY_PREDICTION_RETENTION_DAYS = env.int("LOYALTY_PREDICTION_RETENTION_DAYS", default=90)
# The daily refresh re-scores every member whose scores are this many days old on the scoring
# clock, changed or not (predictions.services.scoring.freshness); the beat entry's
# `every_days` kwarg, editable in the admin, overrides it.
LOYALTY_RESCORE_EVERY_DAYS = env.int("LOYALTY_RESCORE_EVERY_DAYS", default=7)
LOYALTY_IMPORT_TIMEZONE = env.str("LOYALTY_IMPORT_TIMEZONE", default="") or None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Schedules live in the database (django-celery-beat, editable in the admin); these entries
# are written there when beat starts.
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {"task": "loyalty.record_worker_heartbeat_task", "schedule": 60.0},
    "route-unrouted-predictions": {
        "task": "reviews.route_unrouted_predictions_task",
        "schedule": 5 * 60.0,
    },
    "resend-stale-scoring-chunks": {
        "task": "predictions.resend_stale_chunks_task",
        "schedule": 5 * 60.0,
    },
    "sweep-unlabeled-decisions": {
        "task": "learning.sweep_unlabeled_decisions_task",
        "schedule": 10 * 60.0,
    },
    "record-outcomes": {"task": "learning.record_outcomes_task", "schedule": 6 * 60 * 60.0},
    "escalate-overdue-reviews": {"task": "reviews.escalate_overdue_task", "schedule": 5 * 60.0},
    # Items waiting in a queue's backlog enter it as room frees (reviews.services.capacity).
    "drain-backlog": {"task": "reviews.drain_backlog_task", "schedule": 5 * 60.0},
    "weekly-churn-retraining": {
        "task": "learning.scheduled_retraining_task",
        "schedule": 7 * 24 * 60 * 60.0,
        "kwargs": {"kind": "churn"},
    },
    "weekly-next-action-retraining": {
        "task": "learning.scheduled_retraining_task",
        "schedule": 7 * 24 * 60 * 60.0,
        "kwargs": {"kind": "next_action"},
    },
    "monitor-calibration-and-drift": {"task": "learning.monitor_task", "schedule": 6 * 60 * 60.0},
    # Fairness per protected group against the admin's limits (learning.services.fairness).
    "check-fairness": {"task": "learning.check_fairness_task", "schedule": 24 * 60 * 60.0},
    "recover-stalled-retraining": {
        "task": "learning.recover_stalled_retraining_task",
        "schedule": 10 * 60.0,
    },
    # A policy change's re-routing whose message or worker was lost is queued again.
    "reroute-stale": {"task": "reviews.reroute_stale_task", "schedule": 10 * 60.0},
    # Outbox events with no delivery yet, and deliveries due (retries, lost messages).
    "sweep-deliveries": {"task": "integrations.sweep_deliveries_task", "schedule": 60.0},
    # Superseded predictions nothing points to, past LOYALTY_PREDICTION_RETENTION_DAYS.
    "prune-predictions": {"task": "learning.prune_predictions_task", "schedule": 24 * 60 * 60.0},
    # Members whose inputs changed or whose scores aged out are re-scored (daily, 02:00 UTC).
    "refresh-scores": {
        "task": "predictions.refresh_scores_task",
        "schedule": crontab(minute="0", hour="2"),
    },
}

# Notifications by email (SLA escalations, retraining results); the console in development.
# EMAIL_URL picks another backend, e.g. smtp://user:password@mail.example.com:587/?tls=True.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="loyalty-review@localhost")
# The address links in emails point to.
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")

# Trained model artifacts (the registry keeps their checksums and verifies them on load).
MODEL_ARTIFACT_DIR = Path(env("MODEL_ARTIFACT_DIR", default=str(VAR_DIR / "models")))

# --- Webhooks (integrations) ----------------------------------------------------------------
# Receivers on loopback, private or link-local addresses are refused at delivery, except in the
# embedded development setup (SQLite, DEBUG), where a receiver on the same machine is normal.
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool(
    "WEBHOOK_ALLOW_PRIVATE_TARGETS",
    default=DEBUG and DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3",
)
# A Fernet key for the endpoints' signing secrets at rest; derived from SECRET_KEY when empty.
WEBHOOK_ENCRYPTION_KEY = env("WEBHOOK_ENCRYPTION_KEY", default="")
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_MAX_RESPONSE_BYTES = env.int("WEBHOOK_MAX_RESPONSE_BYTES", default=64 * 1024)
# Seconds from a failed attempt to the next: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, i.e.
# eight attempts over about 27.5 hours, then the delivery is given up (the log can redeliver).
WEBHOOK_RETRY_SCHEDULE_SECONDS = [
    int(seconds)
    for seconds in env.list(
        "WEBHOOK_RETRY_SCHEDULE_SECONDS",
        default=["5", "300", "1800", "7200", "18000", "36000", "36000"],
    )
]
# An endpoint whose deliveries have all failed for this long is disabled; admins are told.
WEBHOOK_DISABLE_AFTER_HOURS = env.float("WEBHOOK_DISABLE_AFTER_HOURS", default=5 * 24)
WEBHOOK_SECRET_ROTATION_OVERLAP_HOURS = env.float(
    "WEBHOOK_SECRET_ROTATION_OVERLAP_HOURS", default=24
)

# --- Login lockout and rates ------------------------------------------------------------------
# django-axes: AXES_FAILURE_LIMIT failed logins in a row of one username from one client address
# lock that pair for AXES_COOLOFF_HOURS (0: until an admin unlocks it, admin → Access attempts →
# "Unlock the selected accounts"); each further failure while locked restarts the cool-off.
# Lockouts and unlocks are audited. The pair, not the address alone: behind a proxy every client
# may share one address, and locking it would lock everybody out. The address is found as the
# API's throttles find it (THROTTLE_NUM_PROXIES). Attempts live in the database, which every
# process shares.
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # last, as django-axes requires
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", *AUTHENTICATION_BACKENDS]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0) or None
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "loyalty.rate_limits.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "loyalty.rate_limits.locked_out"

# Throttles (loyalty/rate_limits.py) on every API route: per user (token or session) and per
# client address without one, plus the scoped rates of expensive calls (the API views and pages
# that name the scope). "N/second|minute|hour|day"; each one overridable by its variable.
# The counts live in the default cache: CACHE_URL's where it is set, which every web process
# shares; unset, each process counts alone, exact for one process (runserver) but N times the
# rate with N processes: a deployment with several web processes must set CACHE_URL.
THROTTLE_RATES = {
    "anon": env("THROTTLE_RATE_ANON", default="60/minute"),
    "user": env("THROTTLE_RATE_USER", default="1200/minute"),
    "events_batch": env("THROTTLE_RATE_EVENTS_BATCH", default="120/minute"),
    "what_if": env("THROTTLE_RATE_WHAT_IF", default="30/minute"),
}
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
    "loyalty.rate_limits.AnonymousRateThrottle",
    "loyalty.rate_limits.UserRateThrottle",
    "loyalty.rate_limits.ScopedRateThrottle",
]
# The client address is REMOTE_ADDR unless this many proxies in front of the app append to
# X-Forwarded-For (DRF otherwise trusts the whole header, which a client can forge).
REST_FRAMEWORK["NUM_PROXIES"] = env.int("THROTTLE_NUM_PROXIES", default=0)

# --- API tokens -------------------------------------------------------------------------------
# django-rest-knox: the database keeps a SHA-512 digest of each token, never the token, which is
# shown once (`manage.py drf_create_token USERNAME`, or the admin for superusers). A token stops
# working API_TOKEN_TTL_DAYS after it was made (0: never); clients still send
# `Authorization: Token <key>`. Tokens of DRF's old plaintext table were hashed into knox by
# migration loyalty 0013 with a fresh TTL, and the plaintext keys deleted.
API_TOKEN_TTL_DAYS = env.float("API_TOKEN_TTL_DAYS", default=90)
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=API_TOKEN_TTL_DAYS) if API_TOKEN_TTL_DAYS else None,
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}

# --- Content-Security-Policy (django-csp 4) ---------------------------------------------------
# No inline script and no eval anywhere: pages load their scripts as static files, read figure
# specs from json_script elements (reviews/figures.py) and ask before a delete through
# static/js/confirm.js, not an onsubmit attribute; the API docs load Swagger UI's init script
# from its own URL (SpectacularSwaggerSplitView). Styles may be inline: Plotly and htmx insert
# style rules at run time, and a few pages keep a <style> block. Images may be data: URLs
# (Swagger UI's icons). tests/browser/test_content_security_policy.py opens every kind of page
# under this policy and fails on any violation or console error.
INSTALLED_APPS += ["csp"]
# Files served at the site's root: /favicon.ico, which every browser asks for on every page
# (the admin's and the API's too); without it each first visit logs a 404 console error.
WHITENOISE_ROOT = BASE_DIR / "static" / "root"
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "csp.middleware.CSPMiddleware",
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
