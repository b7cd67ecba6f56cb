"""Policy settings with simulation, and the audit log."""

from django.urls import path

from reviews import audit_views, policy_views

urlpatterns: list = [
    path("policy/<str:kind>/", policy_views.policy_settings, name="policy"),
    path("policy/<str:kind>/simulate/", policy_views.policy_simulation, name="policy_simulate"),
    path("audit/", audit_views.audit_log, name="audit_log"),
]
