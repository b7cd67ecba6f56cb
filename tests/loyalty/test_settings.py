"""The settings the environment chooses: embedded default, or PostgreSQL and a broker server."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders

ROOT = Path(__file__).resolve().parent.parent.parent
PRINT_SETTINGS = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], "
    "'name': str(s.DATABASES['default']['NAME']), 'broker': s.CELERY_BROKER_URL, "
    "'options': s.CELERY_BROKER_TRANSPORT_OPTIONS, 'acks_late': s.CELERY_TASK_ACKS_LATE}))"
)


def _settings_with(**env_vars: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_BROKER_DIR")
    }
    env.update(DJANGO_SETTINGS_MODULE="loyalty.settings.base", **env_vars)
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_with_nothing_set_the_app_runs_embedded():
    settings = _settings_with()

    assert settings["engine"] == "django.db.backends.sqlite3"
    assert settings["name"] == str(ROOT / "var" / "loyalty.sqlite3")
    assert settings["broker"] == "filesystem://"
    folder = str(ROOT / "var" / "celery-broker" / "queue")
    assert settings["options"]["data_folder_in"] == settings["options"]["data_folder_out"] == folder
    assert settings["options"]["polling_interval"] == 0.1
    assert settings["acks_late"] is True


def test_database_and_broker_urls_switch_to_servers():
    settings = _settings_with(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/loyalty",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/3",
    )

    assert settings["engine"] == "django.db.backends.postgresql"
    assert settings["name"] == "loyalty"
    assert settings["broker"] == "redis://127.0.0.1:6379/3"
    assert settings["options"] == {"visibility_timeout": 7200}


@pytest.mark.parametrize(
    "asset", ["plotly/plotly.min.js", "django_htmx/htmx-2.min.js", "css/app.css"]
)
def test_front_end_assets_come_from_installed_packages_not_a_cdn(asset):
    assert finders.find(asset) is not None


@pytest.mark.django_db
def test_pages_reference_no_external_script_or_style(client):
    html = client.get("/login/").content.decode()

    assert "<script" in html
    assert "https://" not in html and "http://" not in html
