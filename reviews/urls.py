"""Routes of the review workspace: the queues and member pages, and the admin's pages."""

from django.urls import include, path

app_name = "reviews"

urlpatterns = [
    path("", include("reviews.urls_queue")),
    path("manage/", include("reviews.urls_admin")),
]
