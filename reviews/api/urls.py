"""API routes of the review workflow."""

from django.urls import path

from reviews.api import views

app_name = "reviews-api"

urlpatterns = [
    path("reviews/", views.ReviewListApi.as_view(), name="review-list"),
    path("reviews/<int:review_id>/", views.ReviewDetailApi.as_view(), name="review-detail"),
    path(
        "reviews/<int:review_id>/approve/",
        views.ReviewApproveApi.as_view(),
        name="review-approve",
    ),
    path(
        "reviews/<int:review_id>/override/",
        views.ReviewOverrideApi.as_view(),
        name="review-override",
    ),
    path(
        "reviews/<int:review_id>/blind-answer/",
        views.ReviewBlindAnswerApi.as_view(),
        name="review-blind-answer",
    ),
    path(
        "reviews/<int:review_id>/escalate/",
        views.ReviewEscalateApi.as_view(),
        name="review-escalate",
    ),
]
