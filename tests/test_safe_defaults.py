"""Safe defaults: the servers' entry points run production settings unless told otherwise,
production refuses DEBUG and the development key, demo users exist only in development, and
the image never receives the .env file."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from loyalty.services.users import DEMO_USERS
from loyalty.settings.base import DEVELOPMENT_SECRET_KEY

ROOT = Path(__file__).resolve().parent.parent
SHOW_SETTINGS = (
    "import {module}, os; from django.conf import settings; "
    "print(os.environ['DJANGO_SETTINGS_MODULE'], settings.DEBUG)"
)


def _run(code: str, **env_vars: str) -> subprocess.CompletedProcess:
    """Python in a fresh process, with no settings module named and no test switches."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in ("DJANGO_SETTINGS_MODULE", "DJANGO_DEBUG", "DJANGO_SECRET_KEY", "DATABASE_URL")
        and not key.startswith("DJANGO_ALLOW_ASYNC")
    }
    env.update(env_vars)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )


PRODUCTION_ENV = {"DJANGO_ALLOWED_HOSTS": "loyalty.example.com"}


@pytest.mark.parametrize("module", ["loyalty.wsgi", "loyalty.asgi", "loyalty.celery"])
def test_server_entry_points_default_to_production_settings(module):
    result = _run(
        SHOW_SETTINGS.format(module=module),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        **PRODUCTION_ENV,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["loyalty.settings.production", "False"]


def test_manage_py_keeps_the_development_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW_SETTINGS.format(module="django")],
        cwd=ROOT,
        env={
            k: v
            for k, v in os.environ.items()
            if k not in ("DJANGO_SETTINGS_MODULE", "DJANGO_DEBUG")
        },
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["loyalty.settings.base", "True"]


@pytest.mark.parametrize(
    ("env_vars", "named"),
    [
        ({}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": DEVELOPMENT_SECRET_KEY}, "DJANGO_SECRET_KEY is empty, the dev"),
        ({"DJANGO_SECRET_KEY": "django-insecure-" + "x" * 50}, "a key marked insecure"),
        ({"DJANGO_SECRET_KEY": "  "}, "DJANGO_SECRET_KEY is empty"),
        (
            {"DJANGO_SECRET_KEY": secrets.token_urlsafe(64), "DJANGO_DEBUG": "true"},
            "DJANGO_DEBUG is on, and production settings never run with DEBUG",
        ),
    ],
    ids=["no key", "development key", "insecure key", "blank key", "debug on"],
)
def test_production_refuses_to_start_with_debug_or_a_known_key(env_vars, named):
    result = _run(SHOW_SETTINGS.format(module="loyalty.wsgi"), **PRODUCTION_ENV, **env_vars)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr


@pytest.mark.django_db
def test_create_demo_users_refuses_outside_debug(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="only runs with DEBUG on"):
        call_command("create_demo_users")

    assert (
        not get_user_model()
        .objects.filter(username__in=[demo.username for demo in DEMO_USERS])
        .exists()
    )


@pytest.mark.django_db
def test_create_demo_users_runs_in_development(settings, capsys):
    settings.DEBUG = True

    call_command("create_demo_users")

    users = get_user_model().objects.filter(username__in=[demo.username for demo in DEMO_USERS])
    assert sorted(users.values_list("username", flat=True)) == sorted(
        demo.username for demo in DEMO_USERS
    )
    assert "analyst-demo" in capsys.readouterr().out


def test_the_image_never_receives_the_env_file_or_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split("\n")

    assert {".env", ".env.*", "!.env.example", ".venv", "var", "test-results"} <= set(ignored)
