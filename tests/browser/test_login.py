"""Each role logs in through the real login page in chromium and reaches the home page."""

import pytest

from loyalty.services.users import DEMO_USERS, create_demo_users
from tests.conftest import output_dir

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("demo", DEMO_USERS, ids=[demo.role for demo in DEMO_USERS])
def test_each_role_logs_in_and_reaches_home(demo, live_server, page, log_in, request):
    create_demo_users()

    log_in(page, demo.username, demo.password)

    assert page.url == f"{live_server.url}/"
    assert page.get_by_test_id("current-user").inner_text() == demo.username
    assert page.get_by_test_id("current-role").inner_text().lower() == demo.role
    assert page.get_by_test_id("program-overview").is_visible()
    page.screenshot(path=str(output_dir(request) / "home.png"), full_page=True)


def test_wrong_password_stays_on_login_with_a_message(live_server, page, log_in):
    create_demo_users()

    log_in(page, "analyst", "not-the-password")

    assert page.url.startswith(f"{live_server.url}/login/")
    assert "didn't match" in page.get_by_role("alert").inner_text()


def test_logout_returns_to_login(live_server, page, log_in):
    create_demo_users()
    log_in(page, "expert", "expert-demo")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_load_state("networkidle")
    page.goto(f"{live_server.url}/")

    assert page.url.startswith(f"{live_server.url}/login/")
