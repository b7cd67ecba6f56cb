"""Deployment artifacts: production settings pass the deploy checks; the compose file holds."""

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _environment_without_test_switches() -> dict[str, str]:
    """The suite sets DJANGO_ALLOW_ASYNC_UNSAFE for Playwright; a deployment never would."""
    return {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}


def test_production_settings_pass_check_deploy_with_no_warnings():
    env = {
        **_environment_without_test_switches(),
        "DJANGO_SETTINGS_MODULE": "loyalty.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "loyalty.example.com",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = _environment_without_test_switches()
    env.pop("DJANGO_SECRET_KEY", None)
    env.update(DJANGO_SETTINGS_MODULE="loyalty.settings.production", DJANGO_ALLOWED_HOSTS="x")

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_compose_file_runs_every_process_from_one_image_with_the_same_settings():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    services = compose["services"]

    assert set(services) == {"migrate", "web", "worker", "beat", "postgres", "redis"}
    for name in ("migrate", "web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert env["DJANGO_SETTINGS_MODULE"] == "loyalty.settings.production"
    assert services["web"]["command"][0] == "gunicorn"
    assert services["worker"]["command"][:4] == ["celery", "-A", "loyalty", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "loyalty", "beat"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_file_validates_with_docker_compose():
    result = subprocess.run(
        ["docker-compose", "-f", "docker/compose.yml", "config", "-q"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SECRET_KEY": "x" * 60},
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr


def test_requirements_are_all_pinned():
    lines = [
        line.strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-"))
    ]

    assert lines, "requirements.txt is empty"
    assert [line for line in lines if "==" not in line] == []
    assert not any(line.lower().startswith("xgboost==") for line in lines)
