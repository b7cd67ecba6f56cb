"""Pages of the integrations."""

from django.urls import path

from integrations import views

app_name = "integrations"

urlpatterns = [
    path("webhooks/", views.webhooks, name="webhooks"),
    path(
        "webhooks/<int:endpoint_id>/<str:action>/",
        views.endpoint_action,
        name="endpoint_action",
    ),
    path("deliveries/", views.delivery_log, name="deliveries"),
    path("deliveries/<int:delivery_id>/", views.delivery_detail, name="delivery"),
    path("deliveries/<int:delivery_id>/redeliver/", views.redeliver, name="redeliver"),
    path("export/queue/<str:route>.csv", views.export_queue, name="export_queue"),
    path("export/decisions/", views.export_decisions, name="export_decisions"),
    path("decisions/<int:decision_id>/lineage/", views.decision_lineage, name="decision_lineage"),
    path("export/lineage/", views.export_lineage, name="export_lineage"),
]
