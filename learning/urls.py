"""The learning loop's page and its actions."""

from django.urls import path

from learning import views

app_name = "learning"

urlpatterns = [
    path("", views.loop_page, name="loop"),
    path("quality/", views.review_quality_page, name="review_quality"),
    path("retrain/<str:kind>/", views.retrain_now, name="retrain_now"),
    path("runs/<int:run_id>/approve/", views.approve_run, name="approve_run"),
    path("resume/<str:kind>/", views.resume_automation, name="resume_automation"),
]
