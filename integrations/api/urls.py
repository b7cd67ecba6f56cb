"""API routes of the integrations."""

from django.urls import path

from integrations.api import views

app_name = "integrations-api"

urlpatterns = [
    path("decisions/", views.DecisionFeedApi.as_view(), name="decision-feed"),
    path(
        "decisions/<int:decision_id>/lineage/",
        views.DecisionLineageApi.as_view(),
        name="decision-lineage",
    ),
    path("decisions/lineage/", views.DecisionLineageExportApi.as_view(), name="lineage-export"),
    path("webhook-endpoints/", views.WebhookEndpointListApi.as_view(), name="endpoint-list"),
    path(
        "webhook-endpoints/<int:endpoint_id>/",
        views.WebhookEndpointDetailApi.as_view(),
        name="endpoint-detail",
    ),
    path(
        "webhook-endpoints/<int:endpoint_id>/rotate-secret/",
        views.WebhookEndpointRotateApi.as_view(),
        name="endpoint-rotate",
    ),
]
