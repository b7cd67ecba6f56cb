"""API routes of the learning loop: policy tests (admins), fairness (admins, experts)."""

from django.urls import path

from learning.api import quality, views

app_name = "learning-api"

urlpatterns = [
    path("fairness/", views.FairnessApi.as_view(), name="fairness"),
    path("review-quality/", quality.ReviewQualityApi.as_view(), name="review-quality"),
    path("policy-tests/", views.PolicyTestListApi.as_view(), name="policy-test-list"),
    path(
        "policy-tests/<int:test_id>/",
        views.PolicyTestDetailApi.as_view(),
        name="policy-test-detail",
    ),
    path(
        "policy-tests/<int:test_id>/end/",
        views.PolicyTestEndApi.as_view(),
        name="policy-test-end",
    ),
]
