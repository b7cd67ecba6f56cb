"""Queue, member page and decisions."""

from django.urls import path

from reviews import views

urlpatterns = [
    path("", views.queue, name="queue"),
    path("expert/", views.expert_queue, name="expert_queue"),
    path("bulk-approve/", views.bulk_approve, name="bulk_approve"),
    path("<int:review_id>/", views.review, name="review"),
    path("<int:review_id>/decide/", views.decide, name="decide"),
    path("<int:review_id>/quick/", views.quick_decide, name="quick_decide"),
    path("<int:review_id>/what-if/", views.what_if_view, name="what_if"),
]
