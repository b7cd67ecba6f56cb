"""WSGI entry point (gunicorn)."""

import os

from django.core.wsgi import get_wsgi_application

# A server runs production settings unless told otherwise: a forgotten variable must not
# serve DEBUG pages with the development key. Development names its own (manage.py, `make run`).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.production")
application = get_wsgi_application()
