"""Suite-wide fixtures: role users, an API client, and a real Celery worker."""

import os
from dataclasses import replace
from pathlib import Path

import pytest

# Playwright's sync API and pytest-django's live_server share one process.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

TEST_PASSWORD = "review-test-pass-1"


@pytest.fixture
def make_user(db, django_user_model):
    """A user in the given role group (analyst, expert, admin, integrator)."""
    from django.contrib.auth.models import Group

    def make(role: str | None, username: str | None = None, **fields):
        user = django_user_model.objects.create_user(
            username=username or f"{role or 'nobody'}-user",
            password=TEST_PASSWORD,
            is_staff=role == "admin",
            **fields,
        )
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def reason_codes(db):
    from reviews.services.reason_codes import seed_reason_codes

    seed_reason_codes()


@pytest.fixture
def without_blind_review(db):
    """Policies of both kinds with no blind share, for tests that route many items to people
    and are about something else: of every 20 items for people, the default opens one blind
    (`reviews.services.blind`), which hides the model and refuses quick decisions."""
    from dataclasses import replace

    from reviews.policy_settings import PolicySettings
    from reviews.selectors.policy import current_policy
    from reviews.services.policy import change_policy

    for kind in ("churn", "next_action"):
        settings = PolicySettings.of(current_policy(kind))
        change_policy(
            kind=kind,
            settings=replace(settings, blind_share=0.0),
            actor=None,
            reason="no blind review in this test",
        )


@pytest.fixture
def routed(reason_codes):
    """Three churn reviews: one per route (auto, analyst, expert). No audit sample: with the
    default 2 % one, whether the 'auto' prediction is sampled depends on its database id."""
    from dataclasses import replace

    from reviews.models import Review
    from reviews.policy_settings import PolicySettings
    from reviews.selectors.policy import current_policy
    from reviews.services.policy import change_policy
    from reviews.services.routing import route_new_predictions
    from tests.factories import ModelVersionFactory, PredictionFactory

    defaults = PolicySettings.of(current_policy("churn"))
    change_policy(
        kind="churn",
        settings=replace(defaults, audit_sample_rate=0.0),
        actor=None,
        reason="no audit sample in tests",
    )
    version = ModelVersionFactory()
    auto = PredictionFactory(model_version=version, confidence=0.99, score=0.1)
    analyst = PredictionFactory(model_version=version, confidence=0.8, score=0.3)
    expert = PredictionFactory(model_version=version, confidence=0.2, score=0.5)
    route_new_predictions(kind="churn")
    return {
        name: Review.objects.get(prediction=prediction)
        for name, prediction in (("auto", auto), ("analyst", analyst), ("expert", expert))
    }


@pytest.fixture
def next_action_review(reason_codes):
    """A routed next-action review over two actions."""
    from reviews.models import Review
    from reviews.services.routing import route_new_predictions
    from tests.factories import ActionFactory, ModelVersionFactory, PredictionFactory

    ActionFactory(code="bonus_points")
    ActionFactory(code="win_back_email")
    prediction = PredictionFactory(
        model_version=ModelVersionFactory(kind="next_action"),
        kind="next_action",
        score=0.6,
        confidence=0.8,
        probabilities={"bonus_points": 0.6, "win_back_email": 0.4},
    )
    route_new_predictions(kind="next_action")
    return Review.objects.get(prediction=prediction)


@pytest.fixture
def migrator():
    """Migrates the test database to the given (app, migration) targets and returns the
    historical apps there; back to the latest state after the test, whatever it did."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    def migrate(targets):
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(targets)
        return executor.loader.project_state(targets).apps

    yield migrate
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def celery_worker(transactional_db):
    """A real worker thread on the project's own Celery app and configured broker, for tests
    that commit (tasks run in another thread and must see the rows).

    One per test, not per session: a worker left running between tests would take tasks that
    other tests queued on commit (routing after scoring) and run them into the table flush at
    their teardown. Stray messages are purged before it starts; on teardown it waits until
    the worker has been idle for a moment before stopping.
    """
    from celery.contrib.testing.worker import start_worker

    from loyalty.celery import app, ensure_broker_folders

    ensure_broker_folders()
    app.control.purge()
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield app
        _wait_until_worker_idle()


# Idle this long with nothing active or reserved: anything queued on commit has been taken.
WORKER_QUIET_SECONDS = 1.0
WORKER_IDLE_TIMEOUT = 60.0


def _wait_until_worker_idle() -> None:
    import time

    from celery.worker import state

    deadline = time.monotonic() + WORKER_IDLE_TIMEOUT
    quiet_since = None
    while time.monotonic() < deadline:
        if state.active_requests or state.reserved_requests:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= WORKER_QUIET_SECONDS:
            return
        time.sleep(0.05)


def output_dir(request) -> Path:
    """A folder for a test's artifacts (screenshots), kept after the run."""
    base = Path(os.environ.get("TEST_OUTPUT_DIR", Path(__file__).parent.parent / "test-results"))
    folder = base / request.node.name.replace("[", "-").replace("]", "")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# A next-action policy that auto-approves from confidence 0.5, sends nothing to experts for
# value and samples nothing for audit: what is auto-approved follows from confidence alone.
LENIENT_NEXT_ACTIONS = {
    "auto_approve_confidence": 0.5,
    "expert_confidence": 0.1,
    "expert_value_quantile": 0.99,
    "audit_sample_rate": 0.0,
}


@pytest.fixture
def lenient_catalog(reason_codes):
    """The seeded action catalog (with its retention-gain priors) under a lenient next-action
    policy (LENIENT_NEXT_ACTIONS)."""
    from loyalty.services.catalog import seed_action_catalog
    from reviews.policy_settings import DEFAULT_SETTINGS
    from reviews.services.policy import change_policy

    seed_action_catalog()
    settings = replace(DEFAULT_SETTINGS["next_action"], **LENIENT_NEXT_ACTIONS)
    change_policy(kind="next_action", settings=settings, actor=None, reason="auto-approve")
    return settings


@pytest.fixture
def case_versions(lenient_catalog):
    """An active version of each kind, so that routing makes cases, under a churn policy that
    samples nothing for audit and sends no one to experts for value (with the lenient
    next-action policy, routes follow from the confidences alone)."""
    from predictions.models import ModelVersion
    from reviews.policy_settings import DEFAULT_SETTINGS
    from reviews.services.policy import change_policy
    from tests.factories import ModelVersionFactory

    change_policy(
        kind="churn",
        settings=replace(
            DEFAULT_SETTINGS["churn"], audit_sample_rate=0.0, expert_value_quantile=0.99
        ),
        actor=None,
        reason="routes from confidence alone",
    )
    return {
        kind: ModelVersionFactory(kind=kind, status=ModelVersion.Status.ACTIVE)
        for kind in ("churn", "next_action")
    }
