"""Every kind of page under the Content-Security-Policy in chromium, as the role that uses it:
the policy header is there without 'unsafe-inline' or 'unsafe-eval' for scripts, the charts
are drawn (Plotly's svg inside each figure's div, htmx swaps included), and the browser reports
no CSP violation and no console error."""

import pytest
from playwright.sync_api import expect

from integrations.models import WebhookEndpoint
from integrations.services.endpoints import create_endpoint
from reviews.models import Review
from reviews.services.routing import route_new_predictions
from tests.browser.test_integrations_pages import RECEIVER, _failed_then_delivered
from tests.browser.test_learning_loop import paused_churn  # noqa: F401  (the fixture)
from tests.browser.test_review_flow import EXPLANATION
from tests.conftest import output_dir
from tests.factories import EventFactory, MemberFactory, PredictionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Collects the page's securitypolicyviolation events; init scripts run outside the policy.
WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || "inline"} at ${event.sourceFile}`
  );
});
"""


class PageWatch:
    """What the browser said while the test walked the pages, page by page."""

    def __init__(self, page, live_server, folder):
        self.page, self.base, self.folder = page, live_server.url, folder
        self.console_errors: list[str] = []
        self.policies: dict[str, str] = {}
        page.add_init_script(WATCH_VIOLATIONS)
        page.on(
            "console",
            lambda message: (
                message.type == "error"
                and self.console_errors.append(f"{page.url}: {message.text}")
            ),
        )
        page.on("pageerror", lambda error: self.console_errors.append(f"{page.url}: {error}"))

    def open(self, path: str) -> None:
        response = self.page.goto(f"{self.base}{path}")
        assert response is not None and response.status == 200, path
        self.policies[path] = response.headers.get("content-security-policy", "")
        self.page.wait_for_load_state("networkidle")

    def charts_drawn(self, *selectors: str) -> None:
        for selector in selectors:
            expect(self.page.locator(f"{selector} .main-svg").first).to_be_visible()

    def done(self, name: str) -> None:
        """The page is finished with: no violation so far, and a screenshot of it."""
        violations = self.page.evaluate("window.__cspViolations")
        assert violations == [], f"{name}: {violations}"
        self.page.screenshot(path=str(self.folder / f"{name}.png"), full_page=True)


def _member_reviews() -> list[Review]:
    """Analyst-queue reviews whose predictions carry an explanation (the member page's charts).
    Auto-approval is paused (the loop fixture), so all of them go to people."""
    for i, score in enumerate((0.62, 0.48)):
        member = MemberFactory(tier="gold", points_balance=3200 - 400 * i)
        EventFactory.create_batch(6, member=member)
        PredictionFactory(
            member=member,
            score=score,
            interval_low=score - 0.12,
            interval_high=score + 0.1,
            confidence=0.7,
            explanation=EXPLANATION,
            spend=1840.0,
        )
    route_new_predictions(kind="churn")
    return list(Review.objects.filter(route="analyst", prediction__explanation=EXPLANATION))


def test_every_page_kind_runs_under_the_policy_with_its_charts(
    live_server,
    page,
    log_in,
    request,
    paused_churn,  # noqa: F811
):
    reviews = _member_reviews()
    endpoint = create_endpoint(actor=None, url=RECEIVER).endpoint
    delivery = _failed_then_delivered(WebhookEndpoint.objects.get(pk=endpoint.pk))
    watch = PageWatch(page, live_server, output_dir(request))

    log_in(page, "analyst", "analyst-demo")
    watch.open("/")
    watch.done("home")
    watch.open("/reviews/")
    expect(page.locator("tr.queue-row").first).to_be_visible()
    watch.done("queue")
    watch.open(f"/reviews/{reviews[0].pk}/")
    watch.charts_drawn("#interval-chart", "#waterfall-chart")
    assert page.locator("#waterfall-chart g.point").count() == 8
    watch.done("member")
    watch.open("/reviews/notifications/")
    watch.done("notifications-analyst")
    page.get_by_role("button", name="Log out").click()

    log_in(page, "expert", "expert-demo")
    watch.open("/reviews/expert/")
    watch.done("expert-queue")
    page.get_by_role("button", name="Log out").click()

    log_in(page, "admin", "admin-demo")
    watch.open("/reviews/manage/policy/churn/")
    watch.charts_drawn("#policy-simulation")
    # The simulation is an htmx swap: its new chart is drawn by the static script too.
    with page.expect_response(lambda response: "/simulate/" in response.url) as simulated:
        page.fill("#id_auto_approve_confidence", "0.5")
    assert simulated.value.status == 200
    page.wait_for_load_state("networkidle")
    watch.charts_drawn("#policy-simulation")
    watch.done("policy-simulated")
    watch.open("/reviews/manage/audit/")
    expect(page.get_by_test_id("audit-row").first).to_be_visible()
    watch.done("audit-log")
    watch.open("/reviews/manage/loop/")
    watch.charts_drawn("#churn-labels-fig", "#churn-calibration-fig")
    watch.done("learning-loop")
    watch.open("/reviews/notifications/")
    expect(page.get_by_test_id("notification").first).to_be_visible()
    watch.done("notifications-admin")
    watch.open("/integrations/webhooks/")
    expect(page.get_by_test_id("endpoint-row")).to_have_count(1)
    # The delete button asks first (static/js/confirm.js); dismissing keeps the endpoint.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_test_id("endpoint-row")).to_have_count(1)
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
    watch.done("webhooks")
    watch.open("/integrations/deliveries/")
    expect(page.get_by_test_id("delivery-row")).to_have_count(1)
    watch.done("delivery-log")
    watch.open(f"/integrations/deliveries/{delivery.pk}/")
    watch.done("delivery")
    watch.open("/integrations/export/decisions/")
    expect(page.get_by_test_id("export-form")).to_be_visible()
    watch.done("export-form")
    watch.open("/admin/")
    expect(page.locator("#site-name")).to_be_visible()
    watch.done("admin-index")
    watch.open("/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Loyalty Review API")
    watch.done("api-docs")

    assert watch.console_errors == []
    for path, policy in watch.policies.items():
        directives = dict(
            (part.split(" ", 1) + [""])[:2] for part in policy.strip().split("; ") if part
        )
        assert directives.get("script-src") == "'self'", (path, policy)
        assert directives.get("object-src") == "'none'", (path, policy)

    # The watch sees a violation when there is one: an inline script is blocked and reported.
    ran = page.evaluate(
        """() => {
             const script = document.createElement("script");
             script.textContent = "window.__inlineRan = true";
             document.body.appendChild(script);
             return window.__inlineRan === true;
           }"""
    )
    assert ran is False
    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.__cspViolations")[0].startswith("script-src")
