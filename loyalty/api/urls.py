"""API routes of the loyalty program's data."""

from django.urls import path

from loyalty.api import views

app_name = "api"

urlpatterns = [
    path("members/", views.MemberListApi.as_view(), name="member-list"),
    path("members/<str:external_id>/", views.MemberDetailApi.as_view(), name="member-detail"),
    path(
        "members/<str:external_id>/events/",
        views.MemberEventListApi.as_view(),
        name="member-events",
    ),
    path("members/<str:external_id>/erase/", views.MemberEraseApi.as_view(), name="member-erase"),
    path(
        "members/<str:external_id>/export/", views.MemberExportApi.as_view(), name="member-export"
    ),
    path("events/batch/", views.EventBatchCreateApi.as_view(), name="event-batch"),
]
