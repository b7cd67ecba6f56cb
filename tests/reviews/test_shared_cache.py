"""With a shared cache (CACHE_URL), what every page reads (permissions, roles, the pause banner,
unread notifications, reason codes) comes from it, and every change shows on the next request.

Run against two real cache backends: Django's file-based cache, which any machine has (and
which, like Redis, every process shares), and Redis where one answers on the standard port.
"""

import socket

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from reviews.models import ReasonCode, Review
from reviews.services.automation import pause_auto_approval, resume_auto_approval
from reviews.services.notifications import notify
from reviews.services.routing import route_new_predictions
from tests.conftest import TEST_PASSWORD
from tests.factories import PredictionFactory

pytestmark = pytest.mark.django_db


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(params=["file", "redis"])
def shared(request, settings, tmp_path):
    if request.param == "redis":
        if not _redis_answers():
            pytest.skip("no Redis on 127.0.0.1:6379")
        backend = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/12",
        }
    else:
        backend = {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    settings.CACHES = {"default": backend}
    settings.SHARED_CACHE = True
    caches["default"].clear()
    yield caches["default"]
    caches["default"].clear()


@pytest.fixture
def analyst(make_user, client):
    user = make_user("analyst")
    client.login(username=user.username, password=TEST_PASSWORD)
    return user


def _tables(queries) -> set[str]:
    names = ("auth_permission", "auth_group", "reviews_notification", "reviews_automationpause")
    return {name for name in names for query in queries if f'"{name}"' in query["sql"]}


def test_a_page_reads_permissions_roles_pauses_and_notices_from_the_cache(shared, analyst, client):
    client.get(reverse("reviews:queue"))

    with CaptureQueriesContext(connection) as second:
        response = client.get(reverse("reviews:queue"))

    assert response.status_code == 200
    assert 'data-testid="current-role">analyst<' in response.content.decode()
    assert _tables(second.captured_queries) == set()


def test_without_a_shared_cache_every_page_asks_the_database(settings, analyst, client):
    settings.SHARED_CACHE = False
    client.get(reverse("reviews:queue"))

    with CaptureQueriesContext(connection) as second:
        client.get(reverse("reviews:queue"))

    assert _tables(second.captured_queries) == {
        "auth_permission",
        "auth_group",
        "reviews_notification",
        "reviews_automationpause",
    }


def test_a_removed_role_is_gone_on_the_next_request(shared, analyst, client):
    assert client.get(reverse("reviews:queue")).status_code == 200

    analyst.groups.clear()

    assert client.get(reverse("reviews:queue")).status_code == 403


def test_a_granted_role_shows_on_the_next_request(shared, make_user, client):
    from django.contrib.auth.models import Group

    user = make_user(None, username="newcomer")
    client.login(username=user.username, password=TEST_PASSWORD)
    assert client.get(reverse("reviews:queue")).status_code == 403

    Group.objects.get(name="expert").user_set.add(user)

    response = client.get(reverse("reviews:expert_queue"))
    assert response.status_code == 200
    assert 'data-testid="current-role">expert<' in response.content.decode()


def test_the_pause_banner_comes_and_goes_with_the_pause(shared, analyst, client):
    assert (
        'data-testid="automation-paused"'
        not in client.get(reverse("reviews:queue")).content.decode()
    )

    pause_auto_approval(kind="churn", reason="calibration error 0.09 > 0.05")
    paused = client.get(reverse("reviews:queue")).content.decode()
    resume_auto_approval(kind="churn", actor=None, reason="checked")
    resumed = client.get(reverse("reviews:queue")).content.decode()

    assert "calibration error 0.09 &gt; 0.05" in paused
    assert 'data-testid="automation-paused"' not in resumed


def test_the_unread_count_follows_new_and_read_notifications(shared, analyst, client):
    assert 'data-testid="unread-count"' not in client.get(reverse("reviews:queue")).content.decode()

    notify(recipients=[analyst], subject="Two reviews are overdue")
    notify(recipients=[analyst], subject="A new version is active")
    unread = client.get(reverse("reviews:queue")).content.decode()
    client.post(reverse("reviews:mark_all_read"))
    read = client.get(reverse("reviews:queue")).content.decode()

    assert 'data-testid="unread-count">2<' in unread
    assert 'data-testid="unread-count"' not in read


def test_a_reason_code_switched_off_in_the_admin_leaves_the_forms_at_once(
    shared, analyst, client, reason_codes
):
    PredictionFactory(confidence=0.8, score=0.45)
    route_new_predictions(kind="churn")
    page = reverse("reviews:review", args=[Review.objects.get().pk])
    assert "The model is right" in client.get(page).content.decode()

    code = ReasonCode.objects.get(code="model-correct")
    code.is_active = False
    code.save()

    assert "The model is right" not in client.get(page).content.decode()
