"""Routes of the review workspace: the queues and member pages, and the admin's pages."""

from django.urls import include, path

from reviews import notification_views

app_name = "reviews"

urlpatterns = [
    path("notifications/", notification_views.notifications, name="notifications"),
    path("notifications/read/", notification_views.mark_all_read, name="mark_all_read"),
    path("", include("reviews.urls_queue")),
    path("manage/", include("reviews.urls_admin")),
]
