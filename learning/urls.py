"""The learning loop's page and its actions."""

from django.urls import path

from learning import views

app_name = "learning"

urlpatterns = [
    path("", views.loop_page, name="loop"),
    path("quality/", views.review_quality_page, name="review_quality"),
    path("fairness/", views.fairness_page, name="fairness"),
    path(
        "fairness/attributes/",
        views.mark_protected_attribute_page,
        name="mark_protected_attribute",
    ),
    path(
        "fairness/attributes/<slug:key>/remove/",
        views.unmark_protected_attribute_page,
        name="unmark_protected_attribute",
    ),
    path("retrain/<str:kind>/", views.retrain_now, name="retrain_now"),
    path("runs/<int:run_id>/approve/", views.approve_run, name="approve_run"),
    path("resume/<str:kind>/", views.resume_automation, name="resume_automation"),
    path("policy-test/<str:kind>/", views.policy_test_page, name="policy_test"),
    path("policy-test/<str:kind>/start/", views.start_policy_test_page, name="policy_test_start"),
    path("policy-tests/<int:test_id>/end/", views.end_policy_test_page, name="policy_test_end"),
]
