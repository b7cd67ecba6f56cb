"""Policy settings with simulation, and the audit log."""

from django.urls import path

from reviews import audit_views, loop_views, policy_views

urlpatterns: list = [
    path("policy/<str:kind>/", policy_views.policy_settings, name="policy"),
    path("policy/<str:kind>/simulate/", policy_views.policy_simulation, name="policy_simulate"),
    path("audit/", audit_views.audit_log, name="audit_log"),
    path("loop/", loop_views.loop_page, name="loop"),
    path("loop/retrain/<str:kind>/", loop_views.retrain_now, name="retrain_now"),
    path("loop/runs/<int:run_id>/approve/", loop_views.approve_run, name="approve_run"),
    path("loop/resume/<str:kind>/", loop_views.resume_automation, name="resume_automation"),
]
