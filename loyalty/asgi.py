"""ASGI entry point."""

import os

from django.core.asgi import get_asgi_application

# A server runs production settings unless told otherwise: a forgotten variable must not
# serve DEBUG pages with the development key. Development names its own (manage.py, `make run`).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.production")
application = get_asgi_application()
