"""Production settings: the base settings with debug off and every security header on.

Required: DJANGO_SECRET_KEY (50+ random characters), DJANGO_ALLOWED_HOSTS, DATABASE_URL,
CELERY_BROKER_URL. `manage.py check --deploy` passes with no warnings once they are set. They
refuse to start (ImproperlyConfigured) with DJANGO_DEBUG on or with the development secret key.
The servers' entry points (loyalty/wsgi.py, asgi.py, the Celery app) default to these settings.
"""

from django.core.exceptions import ImproperlyConfigured

from loyalty.settings.base import *  # noqa: F403
from loyalty.settings.base import DEVELOPMENT_SECRET_KEY, env

# Refuse to start rather than run unsafely: DEBUG pages show settings and code to anyone, and a
# known key lets anyone sign sessions and decrypt the webhook secrets derived from it.
if env.bool("DJANGO_DEBUG", default=False):
    raise ImproperlyConfigured(
        "DJANGO_DEBUG is on, and production settings never run with DEBUG: unset it (or set it "
        "to false), or use loyalty.settings.base for development."
    )
DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
if (
    not SECRET_KEY.strip()
    or SECRET_KEY == DEVELOPMENT_SECRET_KEY
    or SECRET_KEY.startswith("django-insecure-")
):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is empty, the development default or a key marked insecure: set it "
        "to 50 or more random characters, e.g. python -c 'import secrets; "
        "print(secrets.token_urlsafe(64))'."
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=False)

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
